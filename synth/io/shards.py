"""Parquet shards: one Arrow schema, zstd, written atomically, with a manifest beside them.

A shard is written to `OUT/.tmp/<name>` and renamed into `OUT/` only once complete and
fsynced, so a reader (or a resumed run) never sees a half-written shard. The manifest is
rewritten the same way. A write the system refuses (disk full) removes its temp file and
raises `OutputFailed` naming the file; temp files live only under `.tmp/` folders.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from synth.errors import OutputFailed, SynthError

SHARD_GLOB = "part-*.parquet"
MANIFEST = "manifest.json"
TMP = ".tmp"
REJECTS = "rejects"  # OUT/rejects/: dropped rows, same schema plus a non-null reject_reason
REJECT_COLUMN = "reject_reason"


def generation_schema():
    """The schema of generated rows (documented in the README)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),  # sample_id(...): see below
            pa.field("prompt_id", pa.string(), nullable=False),  # prompt_id(...)
            pa.field("seed_id", pa.string(), nullable=False),
            pa.field("source", pa.string()),  # seed file, relative to the seeds root
            pa.field("chunk_index", pa.int32()),
            pa.field("sample_index", pa.int32()),
            pa.field("task", pa.string()),
            pa.field("seed_text", pa.string()),  # the chunk of the seed document used
            pa.field("messages", pa.string()),  # the chat messages sent, as JSON
            pa.field("response", pa.string()),  # the generated text
            pa.field("model", pa.string()),
            pa.field("teacher", pa.string()),  # the teacher's name in a multi-teacher run, else null
            pa.field("finish_reason", pa.string()),  # "stop" | "length" | "error"
            pa.field("prompt_tokens", pa.int32()),
            pa.field("completion_tokens", pa.int32()),
            pa.field("token_ids", pa.list_(pa.int32())),  # generated token ids (null if unknown)
            pa.field("top_logprob_ids", pa.list_(pa.list_(pa.int32()))),  # per token, top-k ids
            pa.field("top_logprobs", pa.list_(pa.list_(pa.float32()))),  # per token, top-k logprobs
            pa.field("meta", pa.string()),  # the seed row's other columns, as JSON
            pa.field("worker", pa.string()),  # the Ray node (ip) that generated the row
        ]
    )


def row_id(*parts: object) -> str:
    """A deterministic id: the first 16 hex digits of SHA-256 over the parts."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:16]


def prompt_id(pipeline: str, seed_id: str, chunk_index: int, variant: str = "") -> str:
    """A prompt's id: hash(pipeline, [variant], seed_id, chunk_index).

    `variant` tells apart prompts made from the same chunk in one run: the template's name
    when the pipeline lists several (`prompt.templates`), `teacher=<name>` in a multi-teacher
    run, both joined by `/`. It is empty for a plain pipeline, whose ids stay as they were."""
    return row_id(pipeline, *([variant] if variant else []), seed_id, chunk_index)


def sample_id(pipeline: str, seed_id: str, chunk_index: int, sample_index: int,
              variant: str = "") -> str:
    """A row's id: hash(pipeline, [variant], seed_id, chunk_index, sample_index)."""
    return row_id(pipeline, *([variant] if variant else []), seed_id, chunk_index, sample_index)


def list_shards(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    return sorted(p.glob(SHARD_GLOB))


def expand_shards(paths, label: str = "") -> list[Path]:
    """Every shard named by `paths` (shard files, or folders of part-*.parquet), each path
    checked to exist and to hold shards; `label` (e.g. "--data ") prefixes the errors."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise SynthError(f"{label}{p}: no such file or folder")
        found = list_shards(p)
        if not found:
            raise SynthError(f"{label}{p}: no shards (part-*.parquet) in this folder")
        files.extend(found)
    return files


def read_shards(path: str | Path, columns: list[str] | None = None):
    """All shards of an output folder (or one shard) as one Table.

    (`pq.read_table(folder)` would also try to read `manifest.json`; read the `part-*.parquet`
    files, as polars, DuckDB and HF datasets do with that glob.)"""
    import pyarrow.parquet as pq

    files = list_shards(path)
    if not files:
        raise SynthError(f"no shards ({SHARD_GLOB}) in {path}")
    return pq.ParquetDataset([str(f) for f in files]).read(columns=columns)


def with_columns(table, columns: dict):
    """`table` with each `name: (values, arrow type)` set, replacing a column of that name."""
    import pyarrow as pa

    for name, (values, typ) in columns.items():
        arr = pa.array(values, type=typ)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


def split_rejects(table):
    """(kept, rejected): rows whose `reject_reason` is null are kept."""
    import pyarrow.compute as pc

    if REJECT_COLUMN not in table.column_names:
        return table, table.slice(0, 0)
    dropped = pc.is_valid(table.column(REJECT_COLUMN))
    return table.filter(pc.invert(dropped)), table.filter(dropped)


def write_split(table, out_dir: str | Path, name: str, reject_name: str | None = None
                ) -> tuple[int, int, dict]:
    """Write kept rows to `out_dir/name` and dropped rows to `out_dir/rejects/name` (each
    atomically; the rejects first, so a kept shard never appears without its rejects).
    Returns (kept rows, rejected rows, {reason: count})."""
    kept, rejected = split_rejects(table)
    reasons: dict[str, int] = {}
    if rejected.num_rows:
        for r in rejected.column(REJECT_COLUMN).to_pylist():
            reasons[r] = reasons.get(r, 0) + 1
        write_shard(rejected, Path(out_dir) / REJECTS, reject_name or name)
    if kept.num_rows or not rejected.num_rows:
        write_shard(kept, out_dir, name)
    return kept.num_rows, rejected.num_rows, reasons


def write_shard(table, out_dir: str | Path, name: str, metadata: dict | None = None) -> Path:
    """Write `table` as `out_dir/name` atomically: to `out_dir/.tmp/`, fsync, rename.

    `metadata`: JSON-able key-values stored in the Parquet footer under `synth` (read back
    with `read_footer`). On any failure the temp file is removed and nothing appears under
    `name`; an OS error (disk full, quota, I/O) becomes `OutputFailed` naming the file."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    final = out_dir / name
    if metadata is not None:
        kv = dict(table.schema.metadata or {})
        kv[b"synth"] = json.dumps(metadata, default=str).encode("utf-8")
        table = table.replace_schema_metadata(kv)

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    _atomic(final, write)
    return final


def write_json_atomic(obj: dict, path: str | Path) -> None:
    """Write `obj` as JSON to `path` atomically (temp file under `.tmp/` beside it, fsync,
    rename): a reader sees the old file or the new one, never a part."""
    path = Path(path)
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def _atomic(final: Path, write) -> None:
    """`write(tmp)` a temp file in `final.parent/.tmp/`, then rename it to `final`. The temp
    file never survives a failure (a SIGKILL leaves it in `.tmp/`, which `clean_tmp` empties);
    an `OSError` becomes `OutputFailed`."""
    tmp_dir = final.parent / TMP
    tmp = tmp_dir / f"{final.name}.{os.getpid()}.tmp"
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) or _is_arrow_io_error(e):
            raise OutputFailed(f"cannot write {final}: {_os_reason(e)}") from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_dir.rmdir()  # only when empty: no `.tmp/` left in a finished folder


def _is_arrow_io_error(e: BaseException) -> bool:
    """pyarrow reports a failed write as OSError, or (some paths) ArrowException with the
    errno text in the message."""
    return type(e).__module__.startswith("pyarrow") and "errno" in str(e).lower()


def _os_reason(e: BaseException) -> str:
    no = getattr(e, "errno", None)
    text = str(e)
    if no in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "Disk quota" in text:
        return "no space left on device (the disk is full)"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    return text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(out_dir: str | Path) -> dict | None:
    p = Path(out_dir) / MANIFEST
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynthError(f"{p}: corrupt manifest ({e}); remove it or rerun with --fresh") from None


def clean_tmp(out_dir: str | Path) -> None:
    """Remove leftovers of writes that were cut off (never visible as shards)."""
    shutil.rmtree(Path(out_dir) / TMP, ignore_errors=True)
    shutil.rmtree(Path(out_dir) / REJECTS / TMP, ignore_errors=True)


def list_rejects(out_dir: str | Path) -> list[Path]:
    return sorted((Path(out_dir) / REJECTS).glob(SHARD_GLOB))


def read_column(shards: Iterable[Path], column: str) -> list:
    """One column from many shards; a corrupt shard is an error naming the file."""
    import pyarrow.parquet as pq

    values: list = []
    for s in shards:
        try:
            values.extend(pq.read_table(s, columns=[column]).column(column).to_pylist())
        except Exception as e:
            raise SynthError(f"{s}: cannot read column {column!r} ({e}); remove the shard or rerun with --fresh") from None
    return values


# --------------------------------------------------------------------------- storage helpers
# The dataflow (synth.pipeline.run) touches the output location only through these, so that a
# local folder and an object-store URI behave alike.


def join(base: str | Path, *parts: str) -> Path:
    """`base/part/...`."""
    return Path(base).joinpath(*parts)


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def list_files(folder: str | Path, pattern: str) -> list[Path]:
    """Files directly in `folder` matching the glob `pattern`, sorted; [] for a missing folder."""
    return sorted(p for p in Path(folder).glob(pattern) if p.is_file())


def read_json(path: str | Path) -> dict | None:
    """A JSON file's content, or None when it does not exist (or is not valid JSON: a marker
    is written atomically, so that only happens to a file someone else put there)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def remove(path: str | Path) -> None:
    """Delete a file; a missing one is fine."""
    Path(path).unlink(missing_ok=True)


def read_footer(path: str | Path) -> dict | None:
    """The `metadata` given to `write_shard` for this shard (None when there was none)."""
    import pyarrow.parquet as pq

    kv = pq.read_schema(path).metadata or {}
    blob = kv.get(b"synth")
    return json.loads(blob) if blob else None
