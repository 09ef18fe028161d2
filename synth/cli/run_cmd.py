"""`synth run PIPELINE.yaml`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from synth.cli.common import exit_interrupted, stderr_console, user_errors


def run(
    pipeline: Annotated[Path, typer.Argument(help="A pipeline file, e.g. pipelines/quickstart.yaml.")],
    out: Annotated[Optional[str], typer.Option(help="Output folder or object-store URI (s3://, gs://; default: output.dir, else out/<name>).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster address (host:port). Default: $RAY_ADDRESS, else a local Ray on this machine.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N prompts (after chunking; per teacher).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--fresh", help="Resume a run in the output folder, or replace it.")] = True,
    skip_bad_inputs: Annotated[bool, typer.Option(
        "--skip-bad-inputs", help="Leave out unreadable seed files (listed in manifest.json as "
        "skipped_inputs) instead of stopping.")] = False,
) -> None:
    """Run a pipeline: seeds -> prompts -> generation on Ray -> Parquet shards + manifest.

    A chain file (a `steps:` list of pipelines, training and the report) runs every step."""
    from synth.pipeline.chain import is_chain_file

    if is_chain_file(pipeline):
        from synth.cli.chain_cmd import run_chain_file

        if out is not None or limit is not None or skip_bad_inputs:
            with user_errors():
                from synth.errors import SynthError

                raise SynthError("--out, --limit and --skip-bad-inputs apply to pipeline files; "
                                 "a chain sets them per step")
        return run_chain_file(pipeline, address=address or os.environ.get("RAY_ADDRESS") or None,
                              fresh=not resume)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from synth.config import load_pipeline
    from synth.pipeline.run import run_pipeline

    console = stderr_console()
    with user_errors():
        cfg = load_pipeline(pipeline)
        address = address or os.environ.get("RAY_ADDRESS") or None
        progress = Progress(
            TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("seeds · {task.fields[tokens]} tokens · {task.fields[rate]} tok/s"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        task_id = None

        def on_progress(p: dict) -> None:
            nonlocal task_id
            rate = f"{p['tokens'] / p['elapsed']:.1f}" if p["elapsed"] > 0 else "-"
            if task_id is None:
                progress.start()
                task_id = progress.add_task("gen", total=p["total"], tokens=0, rate="-")
            progress.update(task_id, completed=p["done"], tokens=p["tokens"], rate=rate)

        def interrupted() -> None:
            if task_id is not None:
                progress.stop()
            target = out or cfg.output.dir or f"out/{cfg.name}"
            again = ["synth", "run", str(pipeline), "--out", str(target)]  # the same run again
            if limit is not None:
                again += ["--limit", str(limit)]
            if address:
                again += ["--address", address]
            if skip_bad_inputs:
                again.append("--skip-bad-inputs")
            exit_interrupted("interrupted; finished shards are kept. Resume with: "
                             + shlex.join(again))

        from synth.cli import common

        try:
            result = run_pipeline(cfg, out=out, address=address, limit=limit, resume=resume,
                                  on_progress=on_progress, skip_bad_inputs=skip_bad_inputs,
                                  # the `synth` command ends at the Ctrl-C (see exit_interrupted)
                                  on_interrupt=interrupted if common.STANDALONE else None)
        except KeyboardInterrupt:
            interrupted()
        finally:
            if task_id is not None:
                progress.stop()

    from synth.io.shards import join

    r = result
    if skip_bad_inputs:
        from synth.io.shards import read_manifest

        manifest = read_manifest(r.out_dir) or {}
        for s in manifest.get("skipped_inputs", []):
            typer.echo(f"skipped {s['path']}: {s['reason']}")
    typer.echo(
        f"{cfg.name}: {r.rows} rows in {r.shards} shards at {r.out_dir} "
        f"({r.generated_rows} generated now, {r.resumed_prompts} prompts already done)"
    )
    if r.generated_rows:
        typer.echo(
            f"generated tokens: {r.generated_tokens} in {r.generation_s:.1f}s = "
            f"{r.tokens_per_s:.1f} tokens/s (engine start {r.engine_start_s:.1f}s, total {r.elapsed_s:.1f}s)"
        )
    else:
        typer.echo("nothing left to generate: every prompt is done (--fresh starts over)")
    if r.rejected_rows:
        top = sorted(r.reject_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{k} {v}" for k, v in top[:6]) + (", ..." if len(top) > 6 else "")
        typer.echo(f"rejected: {r.rejected_rows} rows in {join(r.out_dir, 'rejects')} ({shown})")
    for task, table in r.pass_at_k.items():
        scores = ", ".join(f"{k} {v:.3f}" for k, v in table.items() if k.startswith("pass@"))
        typer.echo(f"{task}: {scores} ({table['correct']} of {table['samples']} samples correct, "
                   f"{table['prompts']} prompts)")
    typer.echo(f"manifest: {join(r.out_dir, 'manifest.json')}")
