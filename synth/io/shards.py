"""Parquet shards: one Arrow schema, zstd, written atomically, with a manifest beside them.

Every function here takes a location as a local path (`str` or `Path`) or a URI:
`s3://bucket/prefix`, `gs://bucket/prefix`, `file:///abs/path`, or any other scheme
`pyarrow.fs.FileSystem.from_uri` knows. Locations come back in the caller's kind: a `Path`
for a local location (a `file://` URI is local too), a `str` URI for an object store
(`s3://bucket/out/part-000000.parquet`). `open_fs(location)` gives the pyarrow filesystem and
the path inside it, for code that calls pyarrow (or Ray Data) itself.

Whole shard or nothing. Locally a shard is written to `OUT/.tmp/<name>` and renamed into
`OUT/` only once complete and fsynced, so a reader (or a resumed run) never sees a
half-written shard; the manifest is rewritten the same way. On an object store there is no
rename: the file is built in memory and uploaded as one object, which the store makes visible
only once the upload has completed (a single PUT, or a multipart upload that is completed only
after every part succeeded), so no temp objects exist. A write the system refuses (disk full,
an upload error) raises `OutputFailed` naming the file; local temp files live only under
`.tmp/` folders.

S3: an endpoint set in the standard `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` variable
(MinIO, a local S3 server) is used, with the region from `AWS_REGION` / `AWS_DEFAULT_REGION`
(default us-east-1); credentials come from the AWS SDK's usual chain (the `AWS_ACCESS_KEY_ID`
/ `AWS_SECRET_ACCESS_KEY` variables, a profile, an instance role). Options written in the URI's
query (`s3://b/p?endpoint_override=host:9000&scheme=http`) take precedence.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Union
from urllib.parse import unquote, urlsplit

from synth.errors import OutputFailed, SynthError

SHARD_GLOB = "part-*.parquet"
MANIFEST = "manifest.json"
TMP = ".tmp"
REJECTS = "rejects"  # OUT/rejects/: dropped rows, same schema plus a non-null reject_reason
REJECT_COLUMN = "reject_reason"

Location = Union[str, os.PathLike]
"""A local path (str or Path) or a URI (`s3://...`, `gs://...`, `file://...`)."""


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


# --------------------------------------------------------------------------- locations
# A location is a `Path` (local) or a `str` URI (remote). Everything below goes through
# `_loc`, so local paths keep the plain os/pathlib code and URIs go through pyarrow.fs.

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: Location) -> bool:
    """Whether `location` is a remote URI (`s3://`, `gs://`, ...); `file://` counts as local."""
    return isinstance(location, str) and bool(_URI.match(location)) and not location.startswith("file://")


def _loc(location: Location) -> Path | str:
    """`Path` for a local location (a `file://` URI becomes its path), else the URI (no
    trailing slash)."""
    if isinstance(location, str) and _URI.match(location):
        if location.startswith("file://"):
            return Path(unquote(urlsplit(location).path))
        base, query = _split_query(location)
        return (base if base.endswith("://") else base.rstrip("/")) + query
    return Path(location)


def _split_query(uri: str) -> tuple[str, str]:
    """(`scheme://netloc/path`, `?query` or "")."""
    i = uri.find("?")
    return (uri, "") if i < 0 else (uri[:i], uri[i:])


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3_settings() -> tuple:
    """(endpoint, region, access key, secret key, session token) from the AWS variables."""
    env = os.environ.get
    return (_s3_endpoint(), env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
            env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN"))


@functools.lru_cache(maxsize=64)
def _filesystem(scheme: str, netloc: str, query: str, s3: tuple):
    """(filesystem, root path inside it) for `scheme://netloc?query`, cached per process."""
    from pyarrow import fs

    endpoint, region, key, secret, token = s3 or (None,) * 5
    if scheme == "s3" and endpoint and not query:
        # Pass the endpoint ourselves: pyarrow 26 reads AWS_ENDPOINT_URL in `from_uri`, older
        # versions (pyproject allows >= 15) do not, and a plain S3FileSystem() never does.
        # Keys from the environment are passed too, so that the filesystem carries them when
        # pickled into Ray tasks whose workers were started without them.
        u = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        creds = dict(access_key=key, secret_key=secret, session_token=token) if key and secret else {}
        return fs.S3FileSystem(endpoint_override=u.netloc, scheme=u.scheme or "https",
                               region=region or "us-east-1", **creds), ""
    filesystem, root = fs.FileSystem.from_uri(f"{scheme}://{netloc}{query}")
    return filesystem, root


def open_fs(location: Location):
    """`(pyarrow filesystem, path inside it)` for a local path or a URI.

    Local: `(LocalFileSystem, absolute path)`. URI: the filesystem for its scheme (S3 with the
    endpoint from `AWS_ENDPOINT_URL[_S3]`, see the module docstring) and `bucket/key` for
    s3/gs. The filesystem pickles, so it can be handed to Ray tasks: the endpoint travels with
    it (and, with an endpoint set, the keys from the AWS variables); otherwise credentials come
    from the environment where it is unpickled (see `synth.ray_runtime.init_ray`)."""
    loc = _loc(location)
    if isinstance(loc, Path):
        return _local_fs(), os.path.abspath(loc)
    base, query = _split_query(loc)
    u = urlsplit(base)
    s3 = _s3_settings() if u.scheme == "s3" and _s3_endpoint() and not query else ()
    # With an endpoint the S3 filesystem is the same for every bucket (cached once).
    with _remote(loc):
        filesystem, root = _filesystem(u.scheme, "" if s3 else u.netloc, query, s3)
    path = unquote(u.path).strip("/")
    if s3:
        root = u.netloc
    if not root:
        return filesystem, "/" + path
    return filesystem, (root.rstrip("/") + "/" + path) if path else root.rstrip("/")


@contextlib.contextmanager
def _remote(uri: str):
    """An error of the store (unknown scheme, refused credentials, no connection) as one
    `SynthError` line naming the URI; a missing file stays `FileNotFoundError`."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as e:
        if isinstance(e, OSError) or type(e).__module__.startswith("pyarrow"):
            raise SynthError(f"{uri}: {_os_reason(e)}") from None
        raise


@functools.lru_cache(maxsize=1)
def _local_fs():
    from pyarrow import fs

    return fs.LocalFileSystem()


def join(base: Location, *parts: str) -> Path | str:
    """`base/part/...`: a `Path` for a local base, a URI string (query kept) for a remote one."""
    loc = _loc(base)
    if isinstance(loc, Path):
        return loc.joinpath(*parts)
    b, query = _split_query(loc)
    return "/".join([b.rstrip("/"), *(p.strip("/") for p in parts)]) + query


def name_of(location: Location) -> str:
    """The last component of a location (a file's name)."""
    loc = _loc(location)
    if isinstance(loc, Path):
        return loc.name
    return _split_query(loc)[0].rstrip("/").rsplit("/", 1)[-1]


def _info(location: Location):
    from pyarrow import fs

    filesystem, path = open_fs(location)
    with _remote(str(location)):
        return filesystem.get_file_info(path).type, fs.FileType


def exists(location: Location) -> bool:
    """Whether a file or folder (for an object store: an object or a prefix with objects) is there."""
    loc = _loc(location)
    if isinstance(loc, Path):
        return loc.exists()
    kind, types = _info(loc)
    return kind != types.NotFound


def is_dir(location: Location) -> bool:
    loc = _loc(location)
    if isinstance(loc, Path):
        return loc.is_dir()
    kind, types = _info(loc)
    return kind == types.Directory


def is_file(location: Location) -> bool:
    loc = _loc(location)
    if isinstance(loc, Path):
        return loc.is_file()
    kind, types = _info(loc)
    return kind == types.File


def list_names(folder: Location) -> list[str]:
    """Names of the entries (files and folders) directly in `folder`, sorted; [] when missing."""
    loc = _loc(folder)
    if isinstance(loc, Path):
        return sorted(p.name for p in loc.iterdir()) if loc.is_dir() else []
    from pyarrow import fs

    filesystem, path = open_fs(loc)
    with _remote(loc):
        infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True, recursive=False))
    return sorted(i.base_name for i in infos)


def list_files(folder: Location, pattern: str) -> list[Path] | list[str]:
    """Files directly in `folder` whose name matches the glob `pattern`, sorted by name; [] for
    a missing folder. `Path`s for a local folder, URIs for a remote one."""
    loc = _loc(folder)
    if isinstance(loc, Path):
        return sorted(p for p in loc.glob(pattern) if p.is_file())
    from pyarrow import fs

    filesystem, path = open_fs(loc)
    with _remote(loc):
        infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True, recursive=False))
    names = sorted(i.base_name for i in infos
                   if i.type == fs.FileType.File and fnmatch.fnmatchcase(i.base_name, pattern))
    return [join(loc, n) for n in names]


def list_shards(path: Location) -> list[Path] | list[str]:
    """The shard at `path` (a file), or the `part-*.parquet` files in the folder `path`."""
    loc = _loc(path)
    if is_file(loc):
        return [loc]
    return list_files(loc, SHARD_GLOB)


def list_rejects(out_dir: Location) -> list[Path] | list[str]:
    return list_files(join(out_dir, REJECTS), SHARD_GLOB)


def expand_shards(paths, label: str = "") -> list[Path] | list[str]:
    """Every shard named by `paths` (shard files, or folders of part-*.parquet), each path
    checked to exist and to hold shards; `label` (e.g. "--data ") prefixes the errors."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list = []
    for p in paths:
        p = _loc(p)
        if not exists(p):
            raise SynthError(f"{label}{p}: no such file or folder")
        found = list_shards(p)
        if not found:
            raise SynthError(f"{label}{p}: no shards (part-*.parquet) in this folder")
        files.extend(found)
    return files


def fs_paths(files) -> tuple[object, list[str]]:
    """`(filesystem, [path inside it, ...])` for `files` (locations), e.g. for
    `ray.data.read_parquet(paths, filesystem=...)`; a SynthError when they are on several."""
    pairs = [open_fs(f) for f in files]
    filesystem = pairs[0][0]
    for (other, _), f in zip(pairs[1:], files[1:]):
        if other is not filesystem and not other.equals(filesystem):
            raise SynthError(f"{f}: shards read together must be on one filesystem "
                             f"(this one is not on the filesystem of {files[0]})")
    return filesystem, [p for _, p in pairs]


def _parquet(fn: str, path: Location, **kw):
    """`pyarrow.parquet.<fn>` on a local path or, through its filesystem, a URI."""
    import pyarrow.parquet as pq

    loc = _loc(path)
    if isinstance(loc, Path):
        return getattr(pq, fn)(loc, **kw)
    filesystem, p = open_fs(loc)
    return getattr(pq, fn)(p, filesystem=filesystem, **kw)


def read_table(path: Location, columns: list[str] | None = None):
    """One Parquet file as a Table (the named columns)."""
    return _parquet("read_table", path, columns=columns)


def read_schema(path: Location):
    """The Arrow schema of one Parquet file (with its footer metadata)."""
    return _parquet("read_schema", path)


def read_metadata(path: Location):
    """The Parquet footer (`pyarrow.parquet.FileMetaData`) of one file."""
    return _parquet("read_metadata", path)


def parquet_file(path: Location):
    """A `pyarrow.parquet.ParquetFile` (use it as a context manager)."""
    return _parquet("ParquetFile", path)


def read_shards(path: Location, columns: list[str] | None = None):
    """All shards of an output folder (or one shard) as one Table.

    (`pq.read_table(folder)` would also try to read `manifest.json`; read the `part-*.parquet`
    files, as polars, DuckDB and HF datasets do with that glob.)"""
    import pyarrow.parquet as pq

    files = list_shards(path)
    if not files:
        raise SynthError(f"no shards ({SHARD_GLOB}) in {path}")
    if isinstance(files[0], Path):
        return pq.ParquetDataset([str(f) for f in files]).read(columns=columns)
    filesystem, paths = fs_paths(files)
    return pq.ParquetDataset(paths, filesystem=filesystem).read(columns=columns)


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


def write_split(table, out_dir: Location, name: str, reject_name: str | None = None
                ) -> tuple[int, int, dict]:
    """Write kept rows to `out_dir/name` and dropped rows to `out_dir/rejects/name` (each
    atomically; the rejects first, so a kept shard never appears without its rejects).
    Returns (kept rows, rejected rows, {reason: count})."""
    kept, rejected = split_rejects(table)
    reasons: dict[str, int] = {}
    if rejected.num_rows:
        for r in rejected.column(REJECT_COLUMN).to_pylist():
            reasons[r] = reasons.get(r, 0) + 1
        write_shard(rejected, join(out_dir, REJECTS), reject_name or name)
    if kept.num_rows or not rejected.num_rows:
        write_shard(kept, out_dir, name)
    return kept.num_rows, rejected.num_rows, reasons


def write_shard(table, out_dir: Location, name: str, metadata: dict | None = None) -> Path | str:
    """Write `table` as `out_dir/name`, whole or not at all, and return its location (a `Path`
    locally, a URI remotely).

    Locally: to `out_dir/.tmp/`, fsync, rename. On an object store: the file is built in
    memory and uploaded as one object (see the module docstring). `metadata`: JSON-able
    key-values stored in the Parquet footer under `synth` (read back with `read_footer`). On
    any failure nothing appears under `name` (locally the temp file is removed); an OS or
    upload error (disk full, quota, I/O, network) becomes `OutputFailed` naming the file."""
    import pyarrow.parquet as pq

    final = join(out_dir, name)
    if metadata is not None:
        kv = dict(table.schema.metadata or {})
        kv[b"synth"] = json.dumps(metadata, default=str).encode("utf-8")
        table = table.replace_schema_metadata(kv)

    if not isinstance(final, Path):
        import pyarrow as pa

        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd")
        _upload(final, buf.getvalue())
        return final

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    _atomic(final, write)
    return final


def write_json_atomic(obj: dict, path: Location) -> None:
    """Write `obj` as JSON to `path` atomically: locally a temp file under `.tmp/` beside it,
    fsync, rename; on an object store one upload. A reader sees the old file or the new one,
    never a part."""
    path = _loc(path)
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    if not isinstance(path, Path):
        _upload(path, data)
        return

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def _upload(uri: str, data) -> None:
    """Put `data` (bytes or a pyarrow Buffer) at `uri` as one object. Arrow's S3 stream sends a
    small object with one PUT and a big one as a multipart upload that it completes in `close`
    only after every part succeeded (arrow/cpp/src/arrow/filesystem/s3fs.cc), so the object
    appears whole or not at all; GCS likewise finalizes the object on close."""
    filesystem, path = open_fs(uri)
    try:
        out = filesystem.open_output_stream(path)
        out.write(data)
        out.close()
    except BaseException as e:
        if isinstance(e, OSError) or _is_arrow_io_error(e) or type(e).__module__.startswith("pyarrow"):
            raise OutputFailed(f"cannot write {uri}: {_os_reason(e)}") from None
        raise


def _atomic(final: Path, write) -> None:
    """`write(tmp)` a temp file in `final.parent/.tmp/`, then rename it to `final`. The temp
    file never survives a failure (a SIGKILL leaves it in `.tmp/`, which `clean_tmp` empties);
    an `OSError` becomes `OutputFailed`."""
    tmp_dir = final.parent / TMP
    tmp = tmp_dir / f"{final.name}.{os.getpid()}.tmp"
    for attempt in range(5):
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            break
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if attempt < 4 and not tmp_dir.exists() and not isinstance(e, KeyboardInterrupt):
                continue  # a concurrent writer removed the (then empty) temp folder: again
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


def read_bytes(path: Location) -> bytes:
    """A whole file's bytes; `FileNotFoundError` when it is not there."""
    loc = _loc(path)
    if isinstance(loc, Path):
        return loc.read_bytes()
    filesystem, p = open_fs(loc)
    with _remote(loc), filesystem.open_input_stream(p) as fh:
        return fh.read()


def read_manifest(out_dir: Location) -> dict | None:
    p = join(out_dir, MANIFEST)
    try:
        data = read_bytes(p)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynthError(f"{p}: corrupt manifest ({e}); remove it or rerun with --fresh") from None


def clean_tmp(out_dir: Location) -> None:
    """Remove leftovers of writes that were cut off (never visible as shards). Object stores
    have none (no temp objects are written), so this does nothing there."""
    loc = _loc(out_dir)
    if not isinstance(loc, Path):
        return
    shutil.rmtree(loc / TMP, ignore_errors=True)
    shutil.rmtree(loc / REJECTS / TMP, ignore_errors=True)


def read_column(shards: Iterable[Location], column: str) -> list:
    """One column from many shards; a corrupt shard is an error naming the file."""
    values: list = []
    for s in shards:
        try:
            values.extend(read_table(s, columns=[column]).column(column).to_pylist())
        except Exception as e:
            raise SynthError(f"{s}: cannot read column {column!r} ({e}); remove the shard or rerun with --fresh") from None
    return values


def read_json(path: Location) -> dict | None:
    """A JSON file's content, or None when it does not exist (or is not valid JSON: a marker
    is written atomically, so that only happens to a file someone else put there)."""
    try:
        return json.loads(read_bytes(path).decode("utf-8"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def remove(path: Location) -> None:
    """Delete a file; a missing one is fine."""
    loc = _loc(path)
    if isinstance(loc, Path):
        loc.unlink(missing_ok=True)
        return
    filesystem, p = open_fs(loc)
    with contextlib.suppress(FileNotFoundError), _remote(loc):
        filesystem.delete_file(p)


def read_footer(path: Location) -> dict | None:
    """The `metadata` given to `write_shard` for this shard (None when there was none)."""
    kv = read_schema(path).metadata or {}
    blob = kv.get(b"synth")
    return json.loads(blob) if blob else None
