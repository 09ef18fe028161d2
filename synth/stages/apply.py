"""Run one stage over existing shards: IN (a shard or a folder) -> OUT (shards + manifest).

IN and OUT are local paths or URIs (`s3://bucket/prefix`, ...): all file access goes through
`synth.io.shards` (pyarrow.fs).

Every input shard is read through (every page decoded) before anything is written, so a
corrupt, truncated or missing input is an error naming the file with nothing left in OUT.
With `skip_bad`, bad shards are left out instead and listed in the manifest's
`skipped_inputs` with the reason. Each output shard is written atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from synth.errors import SynthError
from synth.io import shards as sh


def input_shards(path: str | Path) -> list[Path] | list[str]:
    """The shards at `path` (a file, a folder's part-*.parquet, else its *.parquet); unchecked.
    `Path`s for a local IN, URIs for a remote one."""
    p = sh.join(path)
    if not sh.exists(p):
        raise SynthError(f"{p} does not exist")
    folder = sh.is_dir(p)
    files = sh.list_files(p, sh.SHARD_GLOB) if folder else [p]
    if folder and not files:
        files = sh.list_files(p, "*.parquet")
    if not files:
        raise SynthError(f"{p} holds no Parquet shards (part-*.parquet)")
    return files


def shard_problem(f: str | Path, required: list[str] = (), *, meta_fallback: bool = True) -> str | None:
    """Why shard `f` cannot be used (unreadable, corrupt, a required column missing), or None.

    The whole file is decoded batch by batch (memory stays one batch): a broken data page
    fails here, not half-way through writing OUT."""
    try:
        with sh.parquet_file(f) as pf:
            names = pf.schema_arrow.names
            for col in required:
                if col not in names and not (meta_fallback and "meta" in names):
                    return (f"no column {col!r} (columns: {', '.join(names)}); "
                            f"pick one with --{col.replace('_', '-')}-column")
            for _ in pf.iter_batches(batch_size=65536):
                pass
    except Exception as e:  # pyarrow raises several types (and OSError) for a bad file
        return f"not a readable Parquet shard ({one_line(e)})"
    return None


def one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def check_inputs(in_path: str | Path, out_dir: str | Path, required: list[str] = (), *,
                 meta_fallback: bool = True, skip_bad: bool = False,
                 skipped: list[dict] | None = None) -> list[Path]:
    """The input shards, once each is readable and has the `required` columns (or, with
    `meta_fallback`, a `meta` column to look them up in), and OUT is empty or new.

    With `skip_bad`, a bad shard is left out and appended to `skipped` as `{"path", "reason"}`
    instead of raising; it is still an error when no good shard is left."""
    from synth.io.lock import is_lock_name

    out = sh.join(out_dir)
    if sh.is_file(out):
        raise SynthError(f"output folder {out} is a file; choose a folder")
    if any(n != sh.TMP and not is_lock_name(n) for n in sh.list_names(out)):
        raise SynthError(f"output folder {out} is not empty; choose another or empty it")
    good = []
    bad = skipped if skipped is not None else []
    for f in input_shards(in_path):
        why = shard_problem(f, required, meta_fallback=meta_fallback)
        if why is None:
            good.append(f)
        elif skip_bad:
            bad.append({"path": str(f), "reason": why})
        else:
            raise SynthError(f"{f}: {why}")
    if not good:
        raise SynthError(f"{in_path}: no readable shards ({len(bad)} skipped, e.g. "
                         f"{bad[0]['path']}: {bad[0]['reason']})")
    return good


def apply_stage(stage, in_path: str | Path, out_dir: str | Path, *, name: str,
                params: dict, required: list[str] = (),
                on_progress: Callable[[int, int], None] | None = None,
                skip_bad: bool = False, checked: tuple[list[Path], list[dict]] | None = None) -> dict:
    """Apply `stage` (a callable over a pyarrow Table) to every shard; returns the manifest.

    `skip_bad`: see `check_inputs`; the manifest's `skipped_inputs` lists what was left out.
    `checked`: (good files, skipped) from an earlier `check_inputs` over the same IN, so the
    inputs are not read through twice."""
    if checked is not None:
        files, skipped = checked
    else:
        skipped = []
        files = check_inputs(in_path, out_dir, required, skip_bad=skip_bad, skipped=skipped)
    out = sh.join(out_dir)
    t0 = time.time()
    if on_progress:
        on_progress(0, len(files))
    rows = rejected = 0
    reasons: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    written, kept_shards = [], 0
    try:
        for i, f in enumerate(files):
            try:
                table = sh.read_table(f)
            except Exception as e:
                raise SynthError(f"{f}: cannot read ({one_line(e)})") from None
            result = stage(table)
            name_i = f"part-{i:06d}.parquet"
            kept, dropped, why = sh.write_split(result, out, name_i)
            for p in (sh.join(out, name_i), sh.join(out, sh.REJECTS, name_i)):
                if sh.exists(p):
                    written.append(p)
                    kept_shards += p == sh.join(out, name_i)
            rows += kept
            rejected += dropped
            for k, v in why.items():
                reasons[k] = reasons.get(k, 0) + v
            for c in result.column_names:
                if c.endswith("_verdict"):
                    d = counts.setdefault(c, {})
                    for v in result.column(c).to_pylist():
                        d[str(v)] = d.get(str(v), 0) + 1
            if on_progress:
                on_progress(i + 1, len(files))
    except BaseException:
        for w in written:  # nothing half-done is left behind
            sh.remove(w)
        sh.clean_tmp(out)
        raise
    sh.clean_tmp(out)
    manifest = {
        "stage": name, "params": params, "input": str(in_path),
        "inputs": [str(f) for f in files],
        "skipped_inputs": skipped,
        "counts": {"rows": rows, "rejected_rows": rejected, "reject_reasons": reasons,
                   "shards": kept_shards, "verdicts": counts},
        "elapsed_s": round(time.time() - t0, 2),
    }
    sh.write_json_atomic(manifest, sh.join(out, sh.MANIFEST))
    return manifest
