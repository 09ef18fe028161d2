"""Decontamination: drop rows that overlap an evaluation set, and say which item they overlap.

A row stage on `synth.stages.base.Stage` (a callable over a `pyarrow.Table` returning a Table;
its parameters checked when the pipeline file loads). The evaluation files are read and indexed once, when the stage is built; each batch is then one
pass over its words.

How a row is matched (the word n-gram test of GPT-3's contamination analysis: Brown et al.
2020, "Language Models are Few-Shot Learners", appendix C, which used 13-grams):

1. Normalize both sides the same way: lowercase (`str.casefold`), every run of punctuation or
   other non-word characters becomes one space, whitespace is collapsed. "3/5" -> "3 5",
   "km/h" -> "km h", "Don't" -> "don t".
2. An evaluation item of at least `ngram` words is indexed by its word `ngram`-grams. A row
   matches it when it shares at least `min_matches` distinct n-grams with it (or all of the
   item's n-grams, when the item has fewer than `min_matches`).
3. An evaluation item shorter than `ngram` words has no n-gram; it is matched as a whole
   normalized string, on word boundaries: the row must contain all of its words, in order,
   next to each other ("what is 12 of 360" is found in "... so what is 12 of 360 ? ...", not in
   "what is 112 of 3600"). Short generic items ("what is x") will therefore match often;
   keep them out of the evaluation files or raise `ngram` knowingly.
4. The text checked is `text_column` and, on the prompt side, every column of `also_columns`
   that the batch has (a missing one is skipped: not every table carries `seed_text`).
   N-grams never span two columns.

Columns written:
  decontam_match  "file_name:item_id" of the first evaluation item matched (in the order of
                  `against`, then of the items in each file), null otherwise
  reject_reason   "decontam" on matching rows. A row that already has a reject reason keeps
                  it and is not checked (its decontam_match is left as it was, null if new).

An evaluation item's text is the first field of `eval_text_fields` that it has as a non-empty
string; its id is `eval_id_field`, or its 1-based line (jsonl) / row (parquet) number if it
has none. Items whose text normalizes to nothing (e.g. "?") are skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError
from synth.stages.base import ParamError, Result, Stage

REASON = "decontam"
MATCH_COLUMN = "decontam_match"
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class DecontamParams:
    against: list = field(default_factory=list)
    """Evaluation files (.jsonl or .parquet)."""
    text_column: str = "response"
    also_columns: list = field(default_factory=lambda: ["seed_text"])
    """Prompt-side columns checked too, when the batch has them."""
    eval_text_fields: list = field(default_factory=lambda: ["problem", "question", "text", "prompt"])
    eval_id_field: str = "id"
    ngram: int = 13
    min_matches: int = 1

    def check(self) -> None:
        if not self.against:
            raise ParamError("against", "no evaluation files; set against: [path.jsonl, ...]")
        if not self.eval_text_fields:
            raise ParamError("eval_text_fields", "must name at least one field")
        for key in ("ngram", "min_matches"):
            if getattr(self, key) < 1:
                raise ParamError(key, f"must be >= 1; got {getattr(self, key)}")


def normalize(text: str | None) -> list[str]:
    """The words of `text`: lowercased, punctuation removed, whitespace collapsed."""
    if not text:
        return []
    return _NON_WORD.sub(" ", text.casefold()).split()


def read_eval_items(path: str | Path, text_fields: list, id_field: str) -> list[tuple[str, str]]:
    """(item id, text) for every item of one evaluation file (jsonl or parquet)."""
    p = Path(path)
    if not p.is_file():
        raise SynthError(f"decontam: evaluation file {p} does not exist; fix the path in `against`")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _read_jsonl(p)
    elif suffix == ".parquet":
        rows = _read_parquet(p, text_fields, id_field)
    else:
        raise SynthError(f"decontam: {p}: unknown evaluation file type {p.suffix!r}; "
                         "give a .jsonl or .parquet file")
    items = []
    for n, row in rows:
        text = next((row[f] for f in text_fields if isinstance(row.get(f), str) and row[f].strip()), None)
        if text is None:
            raise SynthError(f"decontam: {p}: item {n} has none of the text fields "
                             f"{', '.join(text_fields)} (it has: {', '.join(map(str, row)) or 'nothing'}); "
                             "set eval_text_fields to the field that holds the question")
        item_id = row.get(id_field)
        items.append((str(n) if item_id is None else str(item_id), text))
    return items


def _read_jsonl(p: Path) -> list[tuple[int, dict]]:
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SynthError(f"decontam: cannot read {p} ({e}); give a UTF-8 jsonl file") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise SynthError(f"decontam: {p}:{n}: not valid JSON ({e.msg}); "
                             "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise SynthError(f"decontam: {p}:{n}: a JSON {type(obj).__name__}, not an object; "
                             "each line must be one JSON object")
        rows.append((n, obj))
    return rows


def _read_parquet(p: Path, text_fields: list, id_field: str) -> list[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(p).names
        wanted = [c for c in (*text_fields, id_field) if c in names]
        if not any(c in names for c in text_fields):
            raise SynthError(f"decontam: {p} has none of the text columns {', '.join(text_fields)} "
                             f"(columns: {', '.join(names)}); set eval_text_fields to the one that "
                             "holds the question")
        rows = pq.read_table(p, columns=list(dict.fromkeys(wanted))).to_pylist()
    except SynthError:
        raise
    except Exception as e:
        raise SynthError(f"decontam: cannot read {p} ({str(e).splitlines()[0][:200]}); "
                         "give a readable Parquet file") from None
    return list(enumerate(rows, 1))


class Decontam(Stage):
    name = "decontam"
    Params = DecontamParams
    reasons = (REASON,)
    skip_rejected = True  # a row rejected before keeps its reason and its decontam_match

    def __init__(self, **params):
        super().__init__(**params)
        # Items are numbered in load order, so "first matched" is the smallest number.
        self.labels: list[str] = []  # item number -> "file_name:item_id"
        self.required: list[int] = []  # item number -> distinct shared grams needed
        self.index: dict[str, list[int]] = {}  # " ".join(words) -> item numbers
        lengths = set()
        for path in self.params.against:
            for item_id, text in read_eval_items(path, self.params.eval_text_fields, self.params.eval_id_field):
                words = normalize(text)
                if not words:
                    continue
                k = len(self.labels)
                self.labels.append(f"{Path(path).name}:{item_id}")
                n = min(len(words), self.params.ngram)
                grams = {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
                self.required.append(min(self.params.min_matches, len(grams)))
                for g in grams:
                    self.index.setdefault(g, []).append(k)
                lengths.add(n)
        self.lengths = sorted(lengths)

    def match(self, texts: list) -> str | None:
        """The label of the first evaluation item that `texts` (one row's columns) overlaps."""
        grams: set[str] = set()
        for text in texts:
            words = normalize(text)
            for n in self.lengths:
                grams.update(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        counts: dict[int, int] = {}
        for g in grams:
            for k in self.index.get(g, ()):
                counts[k] = counts.get(k, 0) + 1
        hits = [k for k, c in counts.items() if c >= self.required[k]]
        return self.labels[min(hits)] if hits else None

    def compute(self, batch) -> Result:
        import pyarrow as pa

        if self.params.text_column not in batch.column_names:
            raise SynthError(f"decontam: no column {self.params.text_column!r} "
                             f"(columns: {', '.join(batch.column_names)}); set text_column")
        cols = [self.params.text_column] + [c for c in self.params.also_columns
                                       if c in batch.column_names and c != self.params.text_column]
        values = [batch.column(c).to_pylist() for c in cols]
        matches = [self.match([v[r] for v in values]) for r in range(batch.num_rows)]
        return Result({MATCH_COLUMN: (matches, pa.string())},
                      [REASON if m else None for m in matches])
