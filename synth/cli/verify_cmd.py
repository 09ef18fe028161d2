"""`synth verify math` and `synth verify code`: one answer, or a folder of shards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from synth.cli.common import user_errors
from synth.errors import SynthError

app = typer.Typer(help="Check math answers (SymPy) and code (sandboxed execution).",
                  no_args_is_help=True)


def _shards(stage, name, params, in_path, out, required):
    from synth.cli.curate_cmd import run_stage
    from synth.io.lock import output_lock

    with output_lock(out, f"synth verify {name.removeprefix('verify_')}"):
        manifest = run_stage(stage, name, params, in_path, out, required)
    for col, counts in manifest["counts"]["verdicts"].items():
        typer.echo(f"{col}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))


@app.command("math")
def math(
    in_path: Annotated[Optional[Path], typer.Argument(help="A shard or folder of shards to verify.")] = None,
    out: Annotated[Optional[Path], typer.Argument(help="Output folder for the verified shards.")] = None,
    response: Annotated[Optional[str], typer.Option(help="Check one response (with --reference).")] = None,
    reference: Annotated[Optional[str], typer.Option(help="The gold answer for --response.")] = None,
    response_column: Annotated[str, typer.Option(help="Column with the model's response.")] = "response",
    reference_column: Annotated[str, typer.Option(
        help="Column with the gold answer (looked up in `meta` when not a column).")] = "answer",
    timeout: Annotated[float, typer.Option(help="Seconds per check before 'unverifiable'.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="One answer: print the result as JSON.")] = False,
) -> None:
    """Check final answers against references: correct, incorrect or unverifiable.

    One answer: exit 0 when correct, 1 otherwise. Shards: verdict columns added, counts printed."""
    with user_errors():
        if response is not None or reference is not None:
            if response is None or reference is None or in_path is not None:
                raise SynthError("give --response and --reference together (and no shard path)")
            from verifiers.math import check_math

            r = check_math(response, reference, timeout=timeout)
            if as_json:
                typer.echo(json.dumps(dataclasses.asdict(r)))
            else:
                typer.echo(f"{r.verdict}: predicted {r.predicted!r}, reference {r.reference!r} ({r.reason})")
            raise typer.Exit(0 if r.verdict == "correct" else 1)
        if in_path is None or out is None:
            raise SynthError("give IN and OUT (shards), or --response and --reference")
        from synth.stages.verify import VerifyMath

        params = dict(response_column=response_column, reference_column=reference_column, timeout=timeout)
        _shards(VerifyMath(**params), "verify_math", params, in_path, out, [response_column])


@app.command("code")
def code(
    in_path: Annotated[Optional[Path], typer.Argument(help="A shard or folder of shards to verify.")] = None,
    out: Annotated[Optional[Path], typer.Argument(help="Output folder for the verified shards.")] = None,
    program: Annotated[Optional[Path], typer.Option(help="Check one program file (with --tests).")] = None,
    tests: Annotated[Optional[Path], typer.Option(
        help="Tests for --program: Python asserts, or a JSON list of {input, output} with --mode stdio.")] = None,
    mode: Annotated[str, typer.Option(help="assert or stdio (default for rows without a mode).")] = "assert",
    response_column: Annotated[str, typer.Option(help="Column with the response holding the code.")] = "response",
    tests_column: Annotated[str, typer.Option(help="Column with the tests (or a `meta` field).")] = "tests",
    mode_column: Annotated[str, typer.Option(help="Column with each row's mode (or a `meta` field).")] = "mode",
    timeout: Annotated[float, typer.Option(help="Seconds per program.")] = 10.0,
    memory_mb: Annotated[int, typer.Option(help="Address-space limit per program (MiB).")] = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="One program: print the result as JSON.")] = False,
) -> None:
    """Run code with its tests in the sandbox: passed, failed, error, timeout, memory, unverifiable.

    One program: exit 0 when passed, 1 otherwise. Shards: verdict columns added, counts printed."""
    with user_errors():
        if mode not in ("assert", "stdio"):
            raise SynthError(f"--mode must be assert or stdio, got {mode!r}")
        if program is not None or tests is not None:
            if program is None or tests is None or in_path is not None:
                raise SynthError("give --program and --tests together (and no shard path)")
            for f in (program, tests):
                if not f.is_file():
                    raise SynthError(f"{f} does not exist")
            from verifiers.code import check_code

            t = tests.read_text(encoding="utf-8", errors="replace")
            if mode == "stdio":
                try:
                    t = json.loads(t)
                except ValueError as e:
                    raise SynthError(f"{tests}: --mode stdio needs a JSON list of {{input, output}} ({e})") from None
            r = check_code(program.read_text(encoding="utf-8", errors="replace"), t,
                           mode=mode, timeout=timeout, memory_mb=memory_mb)
            if as_json:
                typer.echo(json.dumps(dataclasses.asdict(r), default=str))
            else:
                typer.echo(f"{r.verdict} ({r.elapsed_s:.2f}s)" + (f": {r.reason}" if r.reason else ""))
                failed = [c for c in r.tests if not c.passed]
                if r.verdict != "passed" and len(failed) > 1:  # the reason names the first
                    for case in failed:
                        typer.echo(f"  failed {case.name}" + (f": {case.error}" if case.error else ""))
            raise typer.Exit(0 if r.verdict == "passed" else 1)
        if in_path is None or out is None:
            raise SynthError("give IN and OUT (shards), or --program and --tests")
        from synth.stages.verify import VerifyCode

        params = dict(response_column=response_column, tests_column=tests_column,
                      mode_column=mode_column, mode=mode, timeout=timeout, memory_mb=memory_mb)
        _shards(VerifyCode(**params), "verify_code", params, in_path, out, [response_column])
