"""Gather the facts a report shows from run folders, reading only the columns it needs.

Two kinds of folder are found below a path:
  data   a pipeline or curation output: `manifest.json`, `part-*.parquet`, `rejects/`
  train  a training run: `metrics.jsonl` (train and eval lines), `train.json` (its config)

Counts come from the files on disk (row counts from Parquet metadata, no rows read).
Verdict rates are over kept rows, as in the manifest. pass@k is over every sample that has a
verdict, kept or dropped: the estimator needs all n samples a prompt received, and a filter or
dedup dropping some must not change the model's score. A sample counts as solved when its
verdict is `correct` (math) or `passed` (code); `unverifiable` counts as unsolved.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError
from synth.io import shards as sh
from synth.metrics import pass_at_k_from_counts

METRICS = "metrics.jsonl"
TRAIN_CONFIG = "train.json"
SOLVED = {"correct", "passed"}
SKIP_DIRS = {sh.REJECTS, sh.TMP}


@dataclass
class DataFacts:
    """One pipeline or curation output folder."""

    path: Path
    name: str  # relative to the report root (the root itself: its folder name)
    kind: str  # the pipeline name, or the curation stage that wrote it
    status: str
    manifest: dict
    kept: int = 0
    dropped: int = 0
    shards: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # reject reason -> rows
    tokens: int | None = None  # completion tokens of kept rows (None: no such column)
    length_unit: str = "tokens"  # or "characters" when completion_tokens is absent
    lengths: dict = field(default_factory=dict)  # task -> numpy array of response lengths
    verdicts: dict[str, dict[str, Counter]] = field(default_factory=dict)  # column -> task -> counts
    pass_k: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # column -> task -> table
    samples_per_prompt: dict[str, int] = field(default_factory=dict)  # column -> most samples of a prompt
    cluster_sizes: object = None  # numpy array: rows per dedup cluster (kept + dropped)
    teacher_column: str | None = None  # `teacher` when any row has one, else `model`
    teachers: Counter = field(default_factory=Counter)
    error: str | None = None  # why this folder could not be read


@dataclass
class TrainFacts:
    """One training folder (`synth train pretrain|distill`)."""

    path: Path
    name: str
    config: dict
    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    bad_lines: int = 0  # lines that are not a JSON object (e.g. cut off by a kill)

    @property
    def mode(self) -> str:
        return str(self.config.get("mode", "train"))

    @property
    def final_loss(self) -> float | None:
        return next((r["loss"] for r in reversed(self.train) if _num(r.get("loss"))), None)

    @property
    def final_eval_loss(self) -> float | None:
        return next((r["eval_loss"] for r in reversed(self.eval) if _num(r.get("eval_loss"))), None)

    @property
    def tokens(self) -> int | None:
        seen = [r["tokens"] for r in self.train + self.eval if _num(r.get("tokens"))]
        return int(max(seen)) if seen else None


def discover(root: str | Path) -> list[Path]:
    """Every folder at or below `root` holding a manifest.json or metrics.jsonl, sorted."""
    root = Path(root)
    if not root.exists():
        raise SynthError(f"{root} does not exist")
    if root.is_file():
        if root.name in (sh.MANIFEST, METRICS):
            return [root.parent]
        raise SynthError(f"{root} is a file; give a run folder (with manifest.json or metrics.jsonl)")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if sh.MANIFEST in filenames or METRICS in filenames:
            found.append(Path(dirpath))
    if not found:
        raise SynthError(f"nothing to report in {root}: no manifest.json or metrics.jsonl below it")
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def collect(root: str | Path) -> list[DataFacts | TrainFacts]:
    """Facts for every folder `discover` finds (a folder with both files gives both)."""
    root = Path(root)
    base = root.parent if root.is_file() else root
    facts: list[DataFacts | TrainFacts] = []
    for folder in discover(root):
        rel = folder.relative_to(base).as_posix()
        name = rel if rel != "." else folder.resolve().name  # the root folder by its own name
        if (folder / sh.MANIFEST).exists():
            facts.append(collect_data(folder, name))
        if (folder / METRICS).exists():
            facts.append(collect_train(folder, name))
    return facts


# --------------------------------------------------------------------------- data folders


def collect_data(folder: Path, name: str) -> DataFacts:
    try:
        manifest = sh.read_manifest(folder) or {}
    except SynthError as e:
        return DataFacts(folder, name, "?", "unreadable", {}, error=str(e))
    kind = str(manifest.get("pipeline") or manifest.get("stage") or "output")
    facts = DataFacts(folder, name, kind, str(manifest.get("status", "complete")), manifest)
    try:
        _read_shards(facts, sh.list_shards(folder), sh.list_rejects(folder))
    except SynthError as e:
        facts.error = str(e)
    return facts


def _read_shards(facts: DataFacts, kept_files: list[Path], reject_files: list[Path]) -> None:
    """Count per shard with Arrow group-bys; only small tallies stay in Python."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    facts.shards = len(kept_files)
    clusters = []  # cluster_id arrays, counted once at the end
    lengths: dict[str, list] = {}
    graded: dict[str, dict[tuple, list[int]]] = {}  # column -> (task, prompt_id) -> [n, c]
    for f, is_kept in [(f, True) for f in kept_files] + [(f, False) for f in reject_files]:
        names = _schema(f)
        vcols = sorted(c for c in names if c.endswith("_verdict"))
        want = ["task", "cluster_id", *vcols, *(["prompt_id"] if vcols else [])]
        if is_kept:
            want += ["completion_tokens", "teacher", "model"]
            if "completion_tokens" not in names:
                want.append("response")  # lengths in characters instead
        else:
            want.append(sh.REJECT_COLUMN)
        t = _read(f, [c for c in dict.fromkeys(want) if c in names])
        task = pc.fill_null(t["task"], "(none)") if "task" in names else pa.repeat("(none)", t.num_rows)
        t = t.drop_columns([c for c in ["task"] if c in t.column_names]).append_column("task", task)
        if "cluster_id" in names:
            clusters.append(t["cluster_id"])
        for c in vcols if "prompt_id" in names else []:  # pass@k needs to know the prompt
            _tally_samples(graded.setdefault(c, {}), t, c)
        if not is_kept:
            facts.dropped += t.num_rows
            why = _counts(t, [sh.REJECT_COLUMN]) if sh.REJECT_COLUMN in names else [("(unknown)", t.num_rows)]
            for reason, n in why:
                facts.reasons[str(reason)] = facts.reasons.get(str(reason), 0) + n
            continue
        facts.kept += t.num_rows
        if "completion_tokens" in names:
            size = t["completion_tokens"]
            facts.tokens = (facts.tokens or 0) + int(pc.sum(size).as_py() or 0)
        elif "response" in names:
            facts.length_unit = "characters"
            size = pc.utf8_length(t["response"])
        else:
            size = None
        for name in pc.unique(task).to_pylist() if size is not None else []:
            vals = pc.filter(size, pc.equal(task, name)).drop_null()
            lengths.setdefault(name, []).append(vals.to_numpy())
        _tally_teachers(facts, t)
        for c in vcols:
            per_task = facts.verdicts.setdefault(c, {})
            for name, v, n in _counts(t, ["task", c]):
                per_task.setdefault(name, Counter())[str(v)] += n  # str(None): as the manifest
    facts.lengths = {k: np.concatenate(v) for k, v in sorted(lengths.items())}
    if clusters:
        vc = pc.value_counts(pa.chunked_array(clusters).drop_null())
        facts.cluster_sizes = vc.field("counts").to_numpy() if len(vc) else None
    for c, prompts in graded.items():
        _pass_k(facts, c, prompts)


def _tally_teachers(facts: DataFacts, t) -> None:
    """Rows per teacher: the `teacher` column where set (distillation data), else `model`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = [c for c in ("teacher", "model") if c in t.column_names]
    if not cols:
        return
    if "teacher" in cols and t["teacher"].null_count < t.num_rows:
        facts.teacher_column = "teacher"
    elif facts.teacher_column is None:
        facts.teacher_column = "model"
    who = pc.coalesce(*(t[c] for c in cols)) if len(cols) > 1 else t[cols[0]]
    for name, n in _counts(pa.table({"who": who}), ["who"]):
        facts.teachers[str(name)] += n


def _tally_samples(prompts: dict[tuple, list[int]], t, column: str) -> None:
    """Add each (task, prompt)'s samples with a verdict, and how many were solved."""
    import pyarrow as pa
    import pyarrow.compute as pc

    g = t.select(["task", "prompt_id", column])
    g = g.filter(pc.and_(pc.is_valid(g[column]), pc.is_valid(g["prompt_id"])))
    solved = pc.cast(pc.is_in(g[column], value_set=pa.array(sorted(SOLVED))), pa.int64())
    g = g.append_column("solved", solved).group_by(["task", "prompt_id"], use_threads=False)
    agg = g.aggregate([("solved", "count"), ("solved", "sum")])
    for task, pid, n, c in zip(*(agg[k].to_pylist() for k in ("task", "prompt_id", "solved_count", "solved_sum"))):
        nc = prompts.setdefault((task, pid), [0, 0])
        nc[0] += n
        nc[1] += c


def _pass_k(facts: DataFacts, column: str, prompts: dict[tuple, list[int]]) -> None:
    n_max = max((n for n, _ in prompts.values()), default=0)
    facts.samples_per_prompt[column] = n_max
    ks = ks_for(n_max)
    by_task: dict[str, list[tuple[int, int]]] = {}
    for (task, _), (n, c) in prompts.items():
        by_task.setdefault(task, []).append((n, c))
    table = {task: pass_at_k_from_counts(nc, ks) for task, nc in sorted(by_task.items())}
    if len(by_task) > 1:
        table["(all)"] = pass_at_k_from_counts(list(prompts.values()), ks)
    facts.pass_k[column] = table


def ks_for(n_max: int) -> tuple[int, ...]:
    """1, the powers of two below the most samples a prompt has, and that number itself."""
    if n_max < 1:
        return ()
    return tuple(sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k < n_max} | {n_max}))


def _schema(f: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(f).names
    except Exception as e:
        raise SynthError(f"{f}: not a readable Parquet shard ({str(e).splitlines()[0][:200]})") from None


def _read(f: Path, columns: list[str]):
    """The columns asked for; with none, an empty-column table of the right length (from the
    Parquet metadata, no data read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if columns:
            return pq.read_table(f, columns=columns)
        return pa.table({}).append_column("_", pa.nulls(pq.ParquetFile(f).metadata.num_rows))
    except Exception as e:
        raise SynthError(f"{f}: cannot read ({str(e).splitlines()[0][:200]})") from None


def _counts(t, keys: list[str]) -> list[tuple]:
    """(key values..., rows) per distinct key (null is its own group)."""
    g = t.select(keys).group_by(keys, use_threads=False).aggregate([([], "count_all")])
    return list(zip(*(g[k].to_pylist() for k in [*keys, "count_all"])))


# --------------------------------------------------------------------------- training folders


def collect_train(folder: Path, name: str) -> TrainFacts:
    cfg_path = folder / TRAIN_CONFIG
    config: dict = {}
    if cfg_path.exists():
        try:
            loaded = json.loads(cfg_path.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            config = {}
    facts = TrainFacts(folder, name, config)
    with open(folder / METRICS, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                facts.bad_lines += 1
                continue
            if not isinstance(rec, dict):
                facts.bad_lines += 1
            elif rec.get("split") == "eval" or "eval_loss" in rec:
                facts.eval.append(rec)
            elif rec.get("split", "train") == "train":
                facts.train.append(rec)
    return facts


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # not NaN
