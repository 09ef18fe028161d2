"""The stage contract, in code: one small base class every row stage derives from.

In the manner of datatrove's `BaseFilter` (a filter implements one method; the base class
counts and routes the drops), but over Arrow batches. A stage:

  - declares `name` (as written in pipeline files), `Params` (a frozen dataclass of its
    parameters, with an optional `check()` raising `ParamError` for bad values) and `reasons`
    (every reject reason it can emit);
  - is built as `Stage(**params)`: the parameters are checked by `synth.config.build_params`,
    the same code the pipeline loader and the CLI use (unknown keys, types, `check()`); a
    stateful stage loads what it needs in its `__init__` after `super().__init__(**params)`;
  - implements `compute(batch) -> Result`: new columns and/or a reject reason per row of
    `batch`, a `pyarrow.Table`.

The base class's `__call__(table) -> table` (what Ray Data's `map_batches` calls) does the rest,
once for every stage:

  - with `skip_rejected = True`, rows that already have a `reject_reason` are not passed to
    `compute`; their new columns keep the value the table had (null for a new column);
    with `skip_rejected = False`, `compute` sees every row (verify: pass@k counts every sample);
  - merges the reasons: a row's earlier reason wins, else the one `compute` gave;
  - sets each column once (replacing a column of that name, else appended; `reject_reason`
    last), and leaves `reject_reason` alone when `compute` returns `reasons=None` (a stage
    that rejects nothing here, e.g. verify without `drop`);
  - counts rows, kept rows, rows rejected before and rows rejected here per reason in
    `self.counts` (summed over every batch this instance saw).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from synth.config import ParamError, build_params, suggest
from synth.io.shards import with_columns

__all__ = ["REJECT_COLUMN", "Counts", "ParamError", "Result", "Stage", "check_names", "suggest"]

REJECT_COLUMN = "reject_reason"


@dataclass
class Result:
    """What `Stage.compute` returns for a batch of n rows."""

    columns: dict[str, tuple[list, Any]] = field(default_factory=dict)
    """New or replaced columns: name -> (n values, pyarrow type)."""
    reasons: list | None = None
    """n reject reasons (None keeps the row); None: this stage does not set `reject_reason`."""


@dataclass
class Counts:
    """Rows a stage saw: kept, rejected before it, and rejected by it per reason."""

    rows: int = 0
    kept: int = 0
    rejected_before: int = 0
    rejected: Counter = field(default_factory=Counter)

    def add(self, other: "Counts") -> "Counts":
        self.rows += other.rows
        self.kept += other.kept
        self.rejected_before += other.rejected_before
        self.rejected.update(other.rejected)
        return self

    def to_dict(self) -> dict:
        return {"rows": self.rows, "kept": self.kept, "rejected_before": self.rejected_before,
                "rejected": dict(sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0])))}


def check_names(key: str, value, allowed, what: str) -> list[str]:
    """`value` as a list of names from `allowed` (a single string is a list of one); a
    `ParamError` on `key` otherwise, with a "did you mean" for a misspelled name."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParamError(key, f"must be a list of names; got {value!r}")
    for v in value:
        if v not in allowed:
            raise ParamError(key, f"unknown {what} {v!r}; {suggest(v, allowed, what + 's')}")
    return list(value)


class Stage:
    """Base class of row stages: see the module docstring. Subclasses set `name`, `Params`,
    `reasons` (and `skip_rejected`), and implement `compute`."""

    name: ClassVar[str] = "stage"
    Params: ClassVar[type]
    reasons: ClassVar[tuple[str, ...]] = ()
    """Every reject reason `compute` can give; any other is a bug (RuntimeError)."""
    skip_rejected: ClassVar[bool] = True

    def __init__(self, **params):
        allowed = [f.name for f in dataclasses.fields(self.Params)]
        unknown = [k for k in params if k not in allowed]
        if unknown:  # a Python call with a wrong keyword: a TypeError, as for any function
            raise TypeError(f"{self.name}: unexpected parameter {unknown[0]!r}; "
                            f"{suggest(unknown[0], allowed, 'parameters')}")
        self.params = self.validate(params)
        self.counts = Counts()

    @classmethod
    def validate(cls, raw: dict, where: str | None = None, prefix: str = ""):
        """`cls.Params` from `raw`, checked; a SynthError `{where}: {prefix}{key}: ...`
        (`where` defaults to the stage's name)."""
        return build_params(cls.Params, raw, where or cls.name, prefix)

    def compute(self, batch) -> Result:
        """New columns and/or reject reasons for every row of `batch` (a pyarrow.Table)."""
        raise NotImplementedError

    def __call__(self, table):
        import pyarrow as pa

        n = table.num_rows
        prior = (table.column(REJECT_COLUMN).to_pylist() if REJECT_COLUMN in table.column_names
                 else [None] * n)
        if self.skip_rejected:
            todo = [i for i, p in enumerate(prior) if p is None]
        else:
            todo = list(range(n))
        batch = table if len(todo) == n else table.take(pa.array(todo, pa.int64()))
        result = self.compute(batch)
        columns = {}
        for col, (values, typ) in result.columns.items():
            self._check_length(col, values, len(todo))
            if len(todo) < n:  # rows skipped keep what the table had
                full = table.column(col).to_pylist() if col in table.column_names else [None] * n
                for j, i in enumerate(todo):
                    full[i] = values[j]
                values = full
            columns[col] = (values, typ)
        merged = prior
        if result.reasons is not None:
            self._check_length(REJECT_COLUMN, result.reasons, len(todo))
            merged = list(prior)
            for j, i in enumerate(todo):
                if merged[i] is None:
                    merged[i] = result.reasons[j]
            columns[REJECT_COLUMN] = (merged, pa.string())
        self._count(prior, merged)
        return with_columns(table, columns)

    def _check_length(self, col: str, values, want: int) -> None:
        if len(values) != want:
            raise RuntimeError(f"{self.name}: compute gave {len(values)} values for {col!r}, "
                               f"not one per row ({want})")

    def _count(self, prior: list, merged: list) -> None:
        c = self.counts
        declared = set(self.reasons)
        for before, now in zip(prior, merged):
            c.rows += 1
            if before is not None:
                c.rejected_before += 1
            elif now is None:
                c.kept += 1
            else:
                if now not in declared:
                    raise RuntimeError(f"{self.name}: reject reason {now!r} is not declared in "
                                       f"{type(self).__name__}.reasons")
                c.rejected[now] += 1

