"""Seed readers (.txt, .md, .jsonl, .parquet; a file or a folder) and token-budget chunking.

Each seed document becomes a `Seed`: a stable `seed_id`, the `source` file (relative to the
seeds root), its `text`, and for jsonl/parquet the row's other columns in `fields` (usable as
`{slots}` in prompts and kept in the shard's `meta` column).

Seed ids: a .txt/.md file is its relative path; a jsonl/parquet row is the value of the id
column when there is one, else `<relative path>:<row number>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from synth.errors import SynthError

SUFFIXES = (".txt", ".md", ".jsonl", ".parquet")


@dataclass
class Seed:
    seed_id: str
    source: str
    text: str
    fields: dict = field(default_factory=dict)
    explicit_id: bool = False  # the id came from the id column (not the file and line)


_GLOB_CHARS = re.compile(r"[*?[]")


def seeds_base(path: str | Path) -> Path:
    """The folder seed ids and `source` are relative to: the folder itself, a file's folder,
    or the part of a glob before its first wildcard."""
    p = Path(path)
    if _GLOB_CHARS.search(str(p)) and not p.exists():
        parts = []
        for part in p.parts:
            if _GLOB_CHARS.search(part):
                break
            parts.append(part)
        return Path(*parts) if parts else Path(".")
    return p if p.is_dir() else p.parent


def seed_files(path: str | Path, *, recursive: bool = True) -> list[Path]:
    """The seed files under `path` (a file, a folder, or a glob such as `data/*.jsonl`) in a
    stable order; errors name the path and the fix."""
    p = Path(path)
    try:
        if not p.exists() and _GLOB_CHARS.search(str(p)):
            base = seeds_base(p)
            pattern = str(p.relative_to(base)) if p.is_absolute() == base.is_absolute() else str(p)
            files = sorted(f for f in base.glob(pattern)
                           if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not files:
                raise SynthError(f"seed glob {p} matches no {', '.join(SUFFIXES)} files")
            return files
        if not p.exists():
            raise SynthError(f"seed path {p} does not exist")
        if p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise SynthError(f"seed file {p} has an unsupported type; use one of {', '.join(SUFFIXES)}")
            return [p]
        pattern = "**/*" if recursive else "*"
        files = sorted(
            f for f in p.glob(pattern)
            if f.is_file() and f.suffix.lower() in SUFFIXES
            and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
    except OSError as e:  # a name too long, a folder we may not list, ...
        raise SynthError(f"seed path {p}: {e.strerror or e}") from None
    if not files:
        raise SynthError(f"seed folder {p} holds no {', '.join(SUFFIXES)} files")
    return files


def read_seeds(path: str | Path, *, text_column: str = "text", id_column: str | None = "id",
               recursive: bool = True, skip_bad: bool = False,
               skipped: list[dict] | None = None) -> Iterator[Seed]:
    """Yield every seed document under `path`. Raises SynthError naming the bad file.

    With `skip_bad`, a file that cannot be read (corrupt, not UTF-8, a broken jsonl line, a
    missing text column, ...) is left out whole and recorded in `skipped` as
    `{"path", "reason"}`; each file is then read completely before its seeds are yielded, so
    no part of a bad file gets through. Duplicate ids across files are still an error."""
    root = Path(path)
    files = seed_files(root, recursive=recursive)  # SynthError for a path that cannot be used
    base = seeds_base(root)
    seen: dict[str, str] = {}
    any_rows = False
    for f in files:
        rel = f.relative_to(base).as_posix()
        rows = _read_file(f, rel, text_column, id_column)
        if skip_bad:
            try:
                rows = list(rows)
            except SynthError as e:
                if skipped is not None:
                    skipped.append({"path": str(f), "reason": _reason(f, e)})
                continue
        for seed in rows:
            if seed.seed_id in seen:
                raise SynthError(
                    f"{f}: seed id {seed.seed_id!r} also appears in {seen[seed.seed_id]}; "
                    "ids in the id column must be unique"
                )
            seen[seed.seed_id] = rel
            any_rows = True
            yield seed
    if not any_rows:
        if skip_bad and skipped:
            raise SynthError(f"no readable seed documents in {root} ({len(skipped)} bad file(s) "
                             f"skipped, e.g. {skipped[0]['path']}: {skipped[0]['reason']})")
        raise SynthError(f"no seed documents found in {root} (all files are empty)")


def _read_file(f: Path, rel: str, text_column: str, id_column: str | None) -> Iterator[Seed]:
    suffix = f.suffix.lower()
    if suffix in (".txt", ".md"):
        return _read_text(f, rel)
    if suffix == ".jsonl":
        return _read_jsonl(f, rel, text_column, id_column)
    return _read_parquet(f, rel, text_column, id_column)


def _reason(f: Path, e: SynthError) -> str:
    """The error message, without the file name it starts with (the entry names the file)."""
    msg = str(e)
    return msg[len(f"{f}: "):] if msg.startswith(f"{f}: ") else msg


def _read_bytes(f: Path) -> bytes:
    try:
        return f.read_bytes()
    except OSError as e:
        raise SynthError(f"{f}: cannot read the file ({e.strerror or e})") from None


_BOM = b"\xef\xbb\xbf"


def _decode(f: Path, data: bytes, offset: int = 0) -> str:
    """`data` (bytes of `f` from byte `offset` on) as text; a byte-order mark at the start of
    the file is not part of the text."""
    bom = len(_BOM) if offset == 0 and data.startswith(_BOM) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise SynthError(
            f"{f}: not valid UTF-8 (byte {offset + bom + e.start}); convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def _read_text(f: Path, rel: str) -> Iterator[Seed]:
    text = _decode(f, _read_bytes(f)).strip()
    if text:
        yield Seed(seed_id=rel, source=rel, text=text)


def _read_jsonl(f: Path, rel: str, text_column: str, id_column: str | None) -> Iterator[Seed]:
    for _, _, seed in _jsonl_seeds(f, _read_bytes(f), rel, text_column, id_column):
        yield seed


def _jsonl_seeds(f: Path, data: bytes, rel: str, text_column: str, id_column: str | None,
                 offset: int = 0, first_line: int = 1) -> Iterator[tuple[int, int, Seed]]:
    """(byte offset of the line in the file, line number, seed) for each non-blank line of
    `data`, which starts at byte `offset` of `f` on line `first_line` (a whole file, or a
    range of it that starts and ends at line boundaries)."""
    bom = len(_BOM) if offset == 0 and data.startswith(_BOM) else 0
    _decode(f, data, offset)  # the whole range must be UTF-8 before any line is used
    pos = offset + bom
    # Lines end at \n only: str.splitlines() would also cut at U+2028, U+0085, \x1c, ...,
    # which JSON allows unescaped inside strings. A trailing \r is JSON whitespace. (\n is
    # one byte in UTF-8 and never inside a multi-byte character, so bytes split the same.)
    for lineno, raw in enumerate(data[bom:].split(b"\n"), first_line):
        start, pos = pos, pos + len(raw) + 1
        if not raw.strip():
            continue
        line = raw.decode("utf-8")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise SynthError(f"{f}:{lineno}: invalid JSON ({e.msg}); fix or remove the line") from None
        except RecursionError:
            raise SynthError(f"{f}:{lineno}: JSON nested too deeply; fix or remove the line") from None
        except ValueError as e:  # an integer longer than sys.get_int_max_str_digits()
            raise SynthError(f"{f}:{lineno}: unreadable JSON ({e}); fix or remove the line") from None
        if not isinstance(obj, dict):
            raise SynthError(f"{f}:{lineno}: each line must be a JSON object")
        if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(obj):
            raise SynthError(f"{f}:{lineno}: a \\u escape is half of a surrogate pair, not a "
                             "character (shards need valid UTF-8); fix or remove the line")
        yield start, lineno, _row_seed(obj, f"{f}:{lineno}", rel, f"{rel}:{lineno}", text_column,
                                       id_column)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(obj) -> bool:
    """Does any string (or key) in a parsed JSON value hold a lone surrogate? (iterative:
    the value may be as deep as the JSON parser allows)"""
    todo = [obj]
    while todo:
        x = todo.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(x, dict):
            todo.extend(x.keys())
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
    return False


def _read_parquet(f: Path, rel: str, text_column: str, id_column: str | None) -> Iterator[Seed]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise SynthError(f"{f}: not a readable Parquet file ({_one_line(e)})") from None
    if text_column not in pf.schema_arrow.names:
        raise SynthError(
            f"{f}: no column {text_column!r} (columns: {', '.join(pf.schema_arrow.names)}); "
            "set seeds.text_column"
        )
    i = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for obj in batch.to_pylist():
                yield _row_seed(obj, f"{f} row {i}", rel, f"{rel}:{i}", text_column, id_column)
                i += 1
    except SynthError:
        raise
    except Exception as e:
        raise SynthError(f"{f}: corrupt Parquet data at row {i} ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def _row_seed(obj: dict, where: str, rel: str, default_id: str, text_column: str,
              id_column: str | None) -> Seed:
    if text_column not in obj:
        raise SynthError(f"{where}: no {text_column!r} field (has: {', '.join(obj)}); set seeds.text_column")
    text = obj[text_column]
    if not isinstance(text, str):
        raise SynthError(f"{where}: field {text_column!r} must be a string")
    sid = obj.get(id_column) if id_column else None
    seed_id = str(sid) if sid is not None and str(sid) != "" else default_id
    fields = {k: v for k, v in obj.items() if k not in (text_column,)}
    return Seed(seed_id=seed_id, source=rel, text=text, fields=fields,
                explicit_id=seed_id != default_id)


# --------------------------------------------------------------------------- scan, segments
# A streaming run never holds the seeds in one process: Ray tasks scan each file once (the
# same checks as `read_seeds`, plus where each run of `unit_seeds` seeds starts), and workers
# read back only their segment of a file.


def seed_kind(f: Path) -> str:
    suffix = f.suffix.lower()
    return "text" if suffix in (".txt", ".md") else suffix[1:]


def id_hash(seed_id: str) -> int:
    """A 64-bit hash of a seed id: the cross-file duplicate check compares these, not ids."""
    return int.from_bytes(hashlib.blake2b(seed_id.encode("utf-8", "surrogatepass"),
                                          digest_size=8).digest(), "little")


def scan_file(f: Path, rel: str, text_column: str, id_column: str | None, unit_seeds: int,
              check: Callable[[Seed], None] | None = None):
    """Read one seed file through and say how to split it. Returns (info, id hashes):

    info: {"seeds": n, "marks": [...], "end": e, "error": None | message, "fatal": bool}.
    `marks[i]` is where seed `i * unit_seeds` starts: (byte offset, line number) in a jsonl
    file, (row, 0) in a Parquet file, (0, 0) for a text file (one seed, or none if empty);
    `end` is the file's size (jsonl) or rows (Parquet). `error` is the SynthError a reader
    raised (a bad file: `skip_bad` may leave it out); `fatal` marks errors that no option
    skips (`check`'s, e.g. a template slot the seeds lack; a duplicate id inside the file).
    The id hashes (numpy uint64) are those of ids taken from the id column, for the
    cross-file duplicate check."""
    import numpy as np

    kind = seed_kind(f)
    info = {"seeds": 0, "marks": [], "end": 0, "error": None, "fatal": False}
    hashes: list[int] = []
    seen: set[str] = set()
    try:
        if kind == "jsonl":
            data = _read_bytes(f)
            info["end"] = len(data)
            rows = ((start, line, seed) for start, line, seed in
                    _jsonl_seeds(f, data, rel, text_column, id_column))
        elif kind == "parquet":
            rows = ((i, 0, seed) for i, seed in
                    enumerate(_read_parquet(f, rel, text_column, id_column)))
        else:
            rows = ((0, 0, seed) for seed in _read_text(f, rel))
        for n, (start, line, seed) in enumerate(rows):
            if n % unit_seeds == 0:
                info["marks"].append((start, line))
            info["seeds"] = n + 1
            if seed.explicit_id:
                if seed.seed_id in seen:
                    info.update(error=f"{f}: seed id {seed.seed_id!r} also appears in {rel}; "
                                      "ids in the id column must be unique", fatal=True)
                    break
                seen.add(seed.seed_id)
                hashes.append(id_hash(seed.seed_id))
            if check is not None:
                try:
                    check(seed)
                except SynthError as e:
                    info.update(error=str(e), fatal=True)
                    break
        if kind == "parquet":
            info["end"] = info["seeds"]
    except SynthError as e:
        info.update(error=str(e), fatal=False)
    return info, np.array(hashes, dtype=np.uint64)


def read_segment(f: Path, rel: str, start: int, stop: int, first_line: int, text_column: str,
                 id_column: str | None) -> Iterator[Seed]:
    """The seeds of one segment of a scanned file: bytes [start, stop) of a jsonl file
    (starting on line `first_line`), rows [start, stop) of a Parquet file, or a whole text
    file. Raises SynthError like `read_seeds` (the file may have changed since the scan)."""
    kind = seed_kind(f)
    if kind == "text":
        yield from _read_text(f, rel)
    elif kind == "jsonl":
        try:
            with open(f, "rb") as fh:
                fh.seek(start)
                data = fh.read(stop - start)
        except OSError as e:
            raise SynthError(f"{f}: cannot read the file ({e.strerror or e})") from None
        for _, _, seed in _jsonl_seeds(f, data, rel, text_column, id_column, start, first_line):
            yield seed
    else:
        yield from _parquet_rows(f, rel, start, stop, text_column, id_column)


def _parquet_rows(f: Path, rel: str, start: int, stop: int, text_column: str,
                  id_column: str | None) -> Iterator[Seed]:
    """Rows [start, stop) of a Parquet seed file, reading only the row groups they are in."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
        first = 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if first + n > start and first < stop:
                rows = pf.read_row_group(g).to_pylist()
                for i in range(max(start, first), min(stop, first + n)):
                    yield _row_seed(rows[i - first], f"{f} row {i}", rel, f"{rel}:{i}",
                                    text_column, id_column)
            first += n
    except SynthError:
        raise
    except Exception as e:
        raise SynthError(f"{f}: corrupt Parquet data ({_one_line(e)})") from None


# --------------------------------------------------------------------------- chunking

Counter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters per token for English BPE vocabularies)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def load_token_counter(model_path: str | None) -> Counter:
    """Counts tokens with the model's own `tokenizer.json` when the model is a local folder."""
    if model_path:
        tj = Path(model_path) / "tokenizer.json"
        if tj.exists():
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tj))
            return lambda s: len(tok.encode(s, add_special_tokens=False).ids)
    return approx_tokens


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def chunk_text(text: str, budget: int, count: Counter = approx_tokens) -> list[str]:
    """Split `text` into pieces of at most `budget` tokens, on paragraph, then sentence, then
    word boundaries, packing neighbours together greedily. `budget <= 0` keeps it whole."""
    if budget <= 0 or count(text) <= budget:
        return [text]
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if count(para) <= budget:
            units.append(para)
            continue
        for sent in _SENTENCE.split(para):
            if count(sent) <= budget:
                units.append(sent)
            else:
                units.extend(_split_words(sent, budget, count))
    chunks: list[str] = []
    cur: list[str] = []
    for u in units:
        candidate = "\n\n".join(cur + [u])
        if cur and count(candidate) > budget:
            chunks.append("\n\n".join(cur))
            cur = [u]
        else:
            cur.append(u)
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def _split_words(sentence: str, budget: int, count: Counter) -> list[str]:
    out, cur = [], []
    for w in sentence.split():
        if cur and count(" ".join(cur + [w])) > budget:
            out.append(" ".join(cur))
            cur = [w]
        else:
            cur.append(w)
    if cur:
        out.append(" ".join(cur))
    return out
