"""Look inside shards: schema, row and shard counts, per-column stats and sample rows.

`inspect_shards(path)` reads one Parquet shard or a folder of them and returns a plain,
JSON-serializable report; `synth inspect` prints it. A folder means its `part-*.parquet`
shards, or, if it has none (a rejects folder, say), every `*.parquet` in it. The path may be a
local one or a URI (`s3://bucket/out`, see `synth.io.shards`).

Every problem a user can fix (missing path, no shards, a corrupt shard, shards whose schemas
do not agree, an unknown column, a bad `--where`) is a `SynthError` naming the file or column.
With `skip_bad`, unreadable or corrupt shards are left out and listed in the report's
`skipped` (path and reason) instead.
Not covered: shards too big for memory (the selected columns of all shards are read at once).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from synth.errors import SynthError
from synth.io import shards as sh

__all__ = ["inspect_shards", "find_shards", "MAX_DISTINCT", "SAMPLE_CHARS"]

MAX_DISTINCT = 20  # report the values of a column with at most this many distinct values
LONG_TEXT = 100  # a string column whose longest value exceeds this is text, not a category
SAMPLE_CHARS = 200  # sample strings are cut to this many characters
_ROW = "__synth_inspect_row__"  # row-number column used to apply --where


def inspect_shards(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    head: int = 5,
    full: bool = False,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """A report on the shard or folder of shards at `path`.

    `columns` limits the columns reported and sampled (the schema stays whole); `where` is
    a SQL boolean expression (DuckDB) that keeps only matching rows; `head` is the number
    of sample rows, cut to be read (`SAMPLE_CHARS`; lists summarized) unless `full`. `rows`
    counts rows after `where`, `total_rows` before it.
    """
    if head < 0:
        raise SynthError(f"--head must be 0 or more, not {head}")
    shards = find_shards(path)
    skipped: list[dict[str, str]] = []
    if skip_bad:
        from synth.stages.apply import shard_problem

        problems = {s: shard_problem(s) for s in shards}
        skipped = [{"path": str(s), "reason": why} for s, why in problems.items() if why]
        shards = [s for s, why in problems.items() if not why]
        if not shards:
            raise SynthError(f"{path}: no readable shards ({len(skipped)} skipped, e.g. "
                             f"{skipped[0]['path']}: {skipped[0]['reason']})")
    schemas, total_rows = _read_schemas(shards)
    schema = _unify(shards, schemas)
    selected = _select_columns(schema, columns)

    # Without --where only the selected columns are read; the expression may use any column.
    table = _read_tables(shards, schemas, schema, None if where else selected)
    if where:
        table = _filter(table, where)
    table = table.select(selected)

    return {
        "path": str(path),
        "shards": len(shards),
        "rows": table.num_rows,
        "total_rows": total_rows,
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "columns": {name: column_stats(table.column(name)) for name in selected},
        "verdicts": {
            name: _counts(table.column(name), keep_nulls=True)
            for name in selected
            if _is_verdict(name) and _countable(table.schema.field(name).type)
        },
        "sample": [{k: _full_value(v) if full else _sample_value(v) for k, v in row.items()}
                   for row in table.slice(0, head).to_pylist()],
        "skipped": skipped,
    }


def find_shards(path: str | Path) -> list[Path] | list[str]:
    """The shards at `path`: the file itself, a folder's `part-*.parquet`, else its `*.parquet`
    (`Path`s for a local path, URIs for a remote one)."""
    p = sh.join(path)
    if not sh.exists(p):
        raise SynthError(f"{p}: no such file or folder")
    shards = sh.list_shards(p)
    if not shards and sh.is_dir(p):
        shards = sh.list_files(p, "*.parquet")
    if not shards:
        raise SynthError(f"{p}: no parquet shards (part-*.parquet or *.parquet) in this folder")
    return shards


def column_stats(col: pa.ChunkedArray) -> dict[str, Any]:
    """Type, nulls, and length / value stats of one column (see the module docstring)."""
    stats: dict[str, Any] = {"type": str(col.type), "nulls": col.null_count}
    col = _decoded(col)
    t = col.type
    is_text = False
    if _is_string(t) or _is_binary(t):
        lengths = pc.utf8_length(col) if _is_string(t) else pc.binary_length(col)
        stats.update(_min_mean_max(lengths, "min_len", "mean_len", "max_len"))
        is_text = (stats["max_len"] or 0) > LONG_TEXT
    elif _is_list(t):
        stats.update(_min_mean_max(pc.list_value_length(col), "min_len", "mean_len", "max_len"))
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        stats.update(_min_mean_max(col, "min", "mean", "max"))
    elif pa.types.is_temporal(t):
        lo_hi = pc.min_max(col).as_py()
        stats.update(min=_jsonable(lo_hi["min"]), max=_jsonable(lo_hi["max"]))
    if _countable(t) and not is_text and pc.count_distinct(col, mode="only_valid").as_py() <= MAX_DISTINCT:
        stats["distinct"] = _counts(col, keep_nulls=False)
    return stats


def _read_schemas(shards: list[Path]) -> tuple[list[pa.Schema], int]:
    schemas, rows = [], 0
    for s in shards:
        try:
            with sh.parquet_file(s) as pf:
                schemas.append(pf.schema_arrow)
                rows += pf.metadata.num_rows
        except Exception as e:
            raise SynthError(f"{s}: not a readable parquet file ({_one_line(e)})") from None
    return schemas, rows


def _unify(shards: list[Path], schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for all shards; a column whose type differs between shards is an error."""
    schema = schemas[0]
    for s, other in zip(shards[1:], schemas[1:]):
        try:
            schema = pa.unify_schemas([schema, other], promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise SynthError(
                f"{s}: schema does not match {sh.name_of(shards[0])} and the shards before it ({_one_line(e)})"
            ) from None
    return schema.remove_metadata()


def _select_columns(schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    if not columns:
        return list(schema.names)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise SynthError(
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            f" (available: {', '.join(schema.names)})"
        )
    return list(dict.fromkeys(columns))


def _read_tables(shards: list[Path], schemas: list[pa.Schema], schema: pa.Schema,
                 columns: list[str] | None) -> pa.Table:
    tables = []
    for s, own in zip(shards, schemas):
        wanted = [c for c in (columns or schema.names) if c in own.names]
        try:
            with sh.parquet_file(s) as pf:
                tables.append(pf.read(columns=wanted).replace_schema_metadata(None))
        except Exception as e:
            raise SynthError(f"{s}: cannot read shard ({_one_line(e)})") from None
    # Columns missing from a shard come back as nulls; the order follows the unified schema.
    table = pa.concat_tables(tables, promote_options="default")
    return table.select([c for c in schema.names if c in table.schema.names])


def _filter(table: pa.Table, where: str) -> pa.Table:
    """Rows of `table` for which the DuckDB SQL expression `where` is true, in order."""
    import duckdb

    numbered = table.append_column(_ROW, pa.array(range(table.num_rows), pa.int64()))
    con = duckdb.connect()
    try:
        con.register("shards", numbered)
        keep = con.execute(f'SELECT "{_ROW}" FROM shards WHERE ({where}) ORDER BY 1').fetchnumpy()[_ROW]
    except duckdb.Error as e:
        raise SynthError(f"--where {where!r}: {_one_line(e)}") from None
    finally:
        con.close()
    return table.take(pa.array(keep, pa.int64()))


def _min_mean_max(values: pa.ChunkedArray, lo: str, avg: str, hi: str) -> dict[str, Any]:
    lo_hi = pc.min_max(values).as_py()
    mean = pc.mean(values).as_py()
    return {
        lo: _jsonable(lo_hi["min"]),
        avg: None if mean is None else _jsonable(round(float(mean), 3)),
        hi: _jsonable(lo_hi["max"]),
    }


def _counts(col: pa.ChunkedArray, *, keep_nulls: bool) -> dict[str, int]:
    """{value: count}, most frequent first; keys are strings (JSON keys), nulls as "null"."""
    pairs = [(p["values"], p["counts"]) for p in pc.value_counts(_decoded(col)).to_pylist()]
    pairs = [(v, n) for v, n in pairs if keep_nulls or v is not None]
    pairs.sort(key=lambda vn: (-vn[1], vn[0] is None, vn[0] if vn[0] is not None else 0))
    return {_key(v): n for v, n in pairs}


def _key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_jsonable(value))


def _sample_value(value: Any) -> Any:
    """A sample cell, short enough to print: long strings cut, lists summarized."""
    if isinstance(value, str) and len(value) > SAMPLE_CHARS:
        return value[:SAMPLE_CHARS] + f"… [{len(value)} chars]"
    if isinstance(value, (bytes, bytearray)):
        return f"[{len(value)} bytes]"
    if isinstance(value, list):
        return f"[list of {len(value)}]"
    if isinstance(value, dict):
        return {k: _sample_value(v) for k, v in value.items()}
    return _jsonable(value)


def _full_value(value: Any) -> Any:
    """A sample cell whole (`synth inspect --full`): strings and lists as they are."""
    if isinstance(value, list):
        return [_full_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _full_value(v) for k, v in value.items()}
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return f"[{len(value)} bytes]"
    return str(value)


def _one_line(e: BaseException) -> str:
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return line if len(line) <= 300 else line[:300] + "…"


def _is_verdict(name: str) -> bool:
    return name == "verdict" or name.endswith("_verdict") or name.endswith("finish_reason")


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column as plain values (stats do not care about the encoding)."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _type_test(*names: str):
    # The *_view types are newer than the oldest pyarrow we support; skip tests it lacks.
    tests = [getattr(pa.types, n) for n in names if hasattr(pa.types, n)]
    return lambda t: any(test(t) for test in tests)


_is_string = _type_test("is_string", "is_large_string", "is_string_view")
_is_binary = _type_test("is_binary", "is_large_binary", "is_binary_view", "is_fixed_size_binary")
_is_list = _type_test("is_list", "is_large_list", "is_fixed_size_list", "is_list_view", "is_large_list_view")


def _countable(t: pa.DataType) -> bool:
    """Whether values of this type can be counted (not nested, not binary, not null)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return not (pa.types.is_nested(t) or _is_binary(t) or pa.types.is_null(t))
