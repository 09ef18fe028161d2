"""`synth filter`, `synth dedup`, `synth decontam`: curation over existing shards.

Each reads IN (a shard or a folder of shards) and writes OUT/ (kept rows + manifest.json) and
OUT/rejects/ (dropped rows with `reject_reason`); inputs are all checked before anything is
written. IN and OUT are local paths or URIs (`s3://bucket/prefix`, `gs://...`, `file://...`;
see `synth.io.shards`). The work is in `synth.stages`; these commands only parse options and
print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from synth.cli.common import stderr_console, user_errors
from synth.errors import SynthError
from synth.io.lock import output_lock

# str, not Path: a Path would fold the `//` of a URI (s3://b/x -> s3:/b/x).
InPath = Annotated[str, typer.Argument(help="A shard or a folder of shards (a path or a URI such as s3://bucket/in).")]
OutPath = Annotated[str, typer.Argument(help="Output folder (a path or a URI): kept shards, rejects/, manifest.json.")]
Column = Annotated[Optional[str], typer.Option(
    help="Text column to use (default: `text` if the shards have it, else `response`).")]
SkipBad = Annotated[bool, typer.Option(
    "--skip-bad-inputs", help="Leave out unreadable or corrupt shards (listed in manifest.json "
    "as skipped_inputs) instead of stopping.")]


def pick_column(in_path: str | Path, column: str | None, skip_bad: bool = False) -> str:
    from synth.io.shards import read_schema
    from synth.stages.apply import input_shards, one_line

    if column:
        return column
    names = None
    for f in input_shards(in_path):  # the first shard whose schema reads (skip_bad: a later one)
        try:
            names = read_schema(f).names
            break
        except Exception as e:
            if not skip_bad:
                raise SynthError(f"{f}: not a readable Parquet shard ({one_line(e)})") from None
    if names is None:
        raise SynthError(f"{in_path}: no readable shards")
    for c in ("text", "response"):
        if c in names:
            return c
    raise SynthError(f"{in_path}: no `text` or `response` column (columns: {', '.join(names)}); use --column")


def run_stage(stage, name: str, params: dict, in_path: str | Path, out: str | Path, required: list[str],
              skip_bad: bool = False, checked=None) -> dict:
    """Apply a row stage with a progress bar, then print the summary table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from synth.stages.apply import apply_stage

    bar = Progress(TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("shards"), console=stderr_console())
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(name, total=total)
        bar.update(task, completed=done, total=total)

    try:
        manifest = apply_stage(stage, in_path, out, name=name, params=params, required=required,
                               on_progress=progress, skip_bad=skip_bad, checked=checked)
    finally:
        if task is not None:
            bar.stop()
    summary(manifest, out)
    return manifest


def summary(manifest: dict, out: str | Path) -> None:
    from rich.console import Console
    from rich.table import Table

    c = manifest["counts"]
    t = Table(title=f"{manifest['stage']} -> {out}")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("in", str(c["rows"] + c["rejected_rows"]))
    t.add_row("kept", str(c["rows"]))
    for reason, n in sorted(c["reject_reasons"].items(), key=lambda kv: -kv[1]):
        t.add_row(f"dropped: {reason}", str(n))
    Console(width=100).print(t)
    for s in manifest.get("skipped_inputs", []):
        typer.echo(f"skipped {s['path']}: {s['reason']}")


def filter_(
    in_path: InPath,
    out: OutPath,
    column: Column = None,
    groups: Annotated[str, typer.Option(
        help="Rule groups, comma-separated: gen, gopher, gopher_rep, c4, fineweb.")] = "gen",
    require_final_answer: Annotated[bool, typer.Option(help="Drop responses with no final answer.")] = False,
    min_words: Annotated[int, typer.Option(help="gen.too_short: fewest words kept.")] = 1,
    skip_bad_inputs: SkipBad = False,
) -> None:
    """Quality filters: drop rows that break a rule; each dropped row keeps its reason."""
    with user_errors():
        from synth.stages.filters import QualityFilter

        params = dict(groups=[g.strip() for g in groups.split(",") if g.strip()],
                      require_final_answer=require_final_answer, min_words=min_words)
        QualityFilter.validate(params, "synth filter")  # the pipeline loader's check, before reading IN
        col = pick_column(in_path, column, skip_bad_inputs)
        params = dict(text_column=col, **params)
        with output_lock(out, "synth filter"):
            run_stage(QualityFilter(**params), "quality_filter", params, in_path, out, [col],
                      skip_bad=skip_bad_inputs)


def decontam(
    in_path: InPath,
    out: OutPath,
    against: Annotated[list[Path], typer.Option(help="Evaluation set (jsonl or parquet); repeat for several.")],
    column: Column = None,
    ngram: Annotated[int, typer.Option(help="Word n-gram length of an overlap.")] = 13,
    skip_bad_inputs: SkipBad = False,
) -> None:
    """Drop rows that overlap an evaluation set; each records the item it matched."""
    with user_errors():
        from synth.stages.decontam import Decontam

        params = dict(against=[str(a) for a in against], ngram=ngram)
        Decontam.validate(params, "synth decontam")  # the pipeline loader's check, before reading IN
        col = pick_column(in_path, column, skip_bad_inputs)
        params = dict(text_column=col, **params)
        with output_lock(out, "synth decontam"):
            run_stage(Decontam(**params), "decontam", params, in_path, out, [col],
                      skip_bad=skip_bad_inputs)


def dedup(
    in_path: InPath,
    out: OutPath,
    threshold: Annotated[float, typer.Option(help="Jaccard (minhash) or cosine (semantic) threshold.")] = 0.8,
    column: Column = None,
    method: Annotated[str, typer.Option(help="exact, minhash or semantic.")] = "minhash",
    num_perm: Annotated[int, typer.Option(help="minhash: permutations.")] = 128,
    shingle: Annotated[str, typer.Option(help="minhash: word or char shingles.")] = "word",
    ngram: Annotated[int, typer.Option(help="minhash: shingle size.")] = 5,
    quality_column: Annotated[Optional[str], typer.Option(
        help="Keep the row with the highest value in each cluster (then the smallest id).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster for exact/minhash dedup (default: $RAY_ADDRESS, else a local Ray).")] = None,
    skip_bad_inputs: SkipBad = False,
) -> None:
    """Exact, MinHash-LSH or semantic dedup; every row gets its cluster id, duplicates go to rejects/."""
    with user_errors():
        import dataclasses

        from synth.config import DedupConfig, build_params
        from synth.stages.apply import check_inputs
        from synth.stages.dedup_apply import ApplyDecisions, decisions_for

        # the same checks as a pipeline file's dedup block
        d = build_params(DedupConfig, dict(method=method, threshold=threshold, num_perm=num_perm,
                                           shingle=shingle, ngram=ngram, quality_column=quality_column),
                         "synth dedup")
        col = pick_column(in_path, column, skip_bad_inputs)
        d = dataclasses.replace(d, column=col)
        with output_lock(out, "synth dedup"):  # held from the check of OUT to the manifest
            # Checked once, before the (costly) dedup pass; apply_stage reuses the result.
            skipped: list[dict] = []
            files = check_inputs(in_path, out, [col, "id", *([quality_column] if quality_column else [])],
                                 meta_fallback=False, skip_bad=skip_bad_inputs, skipped=skipped)
            if method != "semantic":
                import os

                from synth.ray_runtime import init_ray

                init_ray(address or os.environ.get("RAY_ADDRESS") or None)
            with stderr_console().status(f"{method} dedup: finding duplicates in {len(files)} shards"):
                decisions = decisions_for(files, d)
            params = dict(method=method, threshold=threshold, column=col, num_perm=num_perm,
                          shingle=shingle, ngram=ngram, quality_column=quality_column)
            run_stage(ApplyDecisions(decisions), f"{method}_dedup", params, in_path, out, [col],
                      checked=(files, skipped))
