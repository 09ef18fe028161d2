"""The report's plots: each function takes collected facts and returns a `Plot`, a PNG or a
short note saying why there is nothing to draw.

Matplotlib's object API (`Figure`, no pyplot) draws with Agg: no global backend switch, no
display needed, nothing left open between plots. It is imported only when a plot is drawn.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from synth.report.collect import DataFacts, TrainFacts

VERDICT_COLORS = {  # solved green, failed red, the rest neutral or warning colors
    "correct": "#2e9d5b", "passed": "#2e9d5b", "incorrect": "#d0433a", "failed": "#d0433a",
    "error": "#f08c2e", "timeout": "#8e5bc4", "memory": "#9b6b43", "unverifiable": "#9aa3ad",
}
STAGE_COLORS = {"kept": "#2e9d5b", "quality_filter": "#f08c2e", "dedup": "#3b7dd8",
                "decontam": "#d0433a", "other": "#9aa3ad"}
PALETTE = ["#3b7dd8", "#f08c2e", "#2e9d5b", "#d0433a", "#8e5bc4", "#9b6b43", "#d46fb2", "#6b7785"]


@dataclass
class Plot:
    id: str  # the HTML id of the figure (or of the note)
    title: str
    png: bytes | None = None
    note: str | None = None  # shown instead of the plot when its data is absent
    alt: str = ""


def stage_of(reason: str) -> str:
    """Which step drops rows for this reason (quality filter reasons are `group.rule`)."""
    if reason.endswith("_duplicate"):
        return "dedup"
    if reason == "decontam":
        return "decontam"
    return "quality_filter" if "." in reason else "other"


# --------------------------------------------------------------------------- data folders


def rows_plot(d: DataFacts, pid: str) -> Plot:
    title = "Rows kept and dropped, by stage and reason"
    if d.kept + d.dropped == 0:
        return Plot(pid, title, note="no rows: the folder holds no shards")
    bars = [("kept", d.kept, "kept")]
    bars += [(r, n, stage_of(r)) for r, n in sorted(d.reasons.items(), key=lambda kv: -kv[1])]
    fig, ax = _figure(height=0.9 + 0.32 * len(bars))
    y = list(range(len(bars)))[::-1]
    ax.barh(y, [n for _, n, _ in bars], color=[STAGE_COLORS[s] for _, _, s in bars])
    ax.set_yticks(y, [f"{label}" if s == "kept" else f"{label} ({s})" for label, _, s in bars])
    _label_bars(ax, [n for _, n, _ in bars], y)
    ax.set_xlabel("rows")
    alt = f"kept {d.kept} rows, dropped {d.dropped}" + "".join(f"; {r}: {n}" for r, n, _ in bars[1:])
    return Plot(pid, title, _png(fig), alt=alt)


def lengths_plot(d: DataFacts, pid: str) -> Plot:
    title = "Response length per task"
    sizes = {task: v for task, v in d.lengths.items() if len(v)}
    if not sizes:
        return Plot(pid, title, note="no response lengths: no completion_tokens or response column in the kept rows")
    import numpy as np

    hi = max(int(v.max()) for v in sizes.values())
    # one bin per value for short ranges (token counts are integers), else 40 bins
    bins = np.arange(0, hi + 2) - 0.5 if hi <= 60 else np.linspace(0, hi, 41)
    fig, ax = _figure()
    for i, (task, v) in enumerate(sizes.items()):
        ax.hist(v, bins=bins, histtype="stepfilled", alpha=0.45, color=PALETTE[i % len(PALETTE)],
                label=f"{task} (n={len(v)}, median {int(np.median(v))})", edgecolor=PALETTE[i % len(PALETTE)])
    ax.set_xlabel(f"response length ({'completion tokens' if d.length_unit == 'tokens' else 'characters'})")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    alt = "; ".join(f"{t}: {len(v)} rows, median {int(np.median(v))} {d.length_unit}" for t, v in sizes.items())
    return Plot(pid, title, _png(fig), alt=alt)


def verdicts_plot(d: DataFacts, pid: str) -> Plot:
    title = "Verdicts per task (kept rows)"
    groups = [(c, task, counts) for c, per_task in sorted(d.verdicts.items())
              for task, counts in sorted(per_task.items()) if sum(counts.values())]
    if not groups:
        return Plot(pid, title, note="no verdicts: no math_verdict or code_verdict column (run a verify stage)")
    names = sorted({v for _, _, counts in groups for v in counts},
                   key=lambda v: (list(VERDICT_COLORS).index(v) if v in VERDICT_COLORS else 99, v))
    fig, ax = _figure(height=1.2 + 0.4 * len(groups))
    y = list(range(len(groups)))[::-1]
    left = [0.0] * len(groups)
    for j, v in enumerate(names):
        frac = [counts.get(v, 0) / sum(counts.values()) for _, _, counts in groups]
        color = VERDICT_COLORS.get(v, PALETTE[(j + 5) % len(PALETTE)])
        ax.barh(y, frac, left=left, color=color, label=v)
        for yi, l, f in zip(y, left, frac):
            if f >= 0.08:
                ax.text(l + f / 2, yi, f"{100 * f:.0f}%", ha="center", va="center", fontsize=8, color="white")
        left = [a + b for a, b in zip(left, frac)]
    ax.set_yticks(y, [f"{task}\n{c}" for c, task, _ in groups], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of rows")
    ax.legend(fontsize=8, ncols=min(len(names), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    alt = "; ".join(f"{c} {task}: " + ", ".join(f"{v} {n}" for v, n in counts.most_common())
                    for c, task, counts in groups)
    return Plot(pid, title, _png(fig), alt=alt)


def pass_k_plot(d: DataFacts, pid: str) -> Plot:
    title = "pass@k per task"
    if not d.pass_k:
        return Plot(pid, title, note="no pass@k: no verdict column with prompt ids")
    if max(d.samples_per_prompt.values(), default=0) < 2:
        return Plot(pid, title, note="no pass@k for k > 1: one sample per prompt (set sampling.n > 1)")
    groups = [(c, task, table) for c, per_task in sorted(d.pass_k.items())
              for task, table in per_task.items() if table]
    ks = list(dict.fromkeys(k for _, _, table in groups for k in table))
    if not ks:
        return Plot(pid, title, note="no pass@k: no prompt has a verdict")
    fig, ax = _figure(height=3.0)
    width = 0.8 / len(ks)
    for j, k in enumerate(ks):
        xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(groups))]
        vals = [table.get(k, 0.0) for _, _, table in groups]
        ax.bar(xs, vals, width=width, color=PALETTE[j % len(PALETTE)], label=k)
        for x, v in zip(xs, vals):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), [f"{task}\n{c}" for c, task, _ in groups], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("pass@k (unbiased)")
    ax.legend(fontsize=8, ncols=len(ks))
    alt = "; ".join(f"{c} {task}: " + ", ".join(f"{k} {v:.3f}" for k, v in table.items())
                    for c, task, table in groups)
    return Plot(pid, title, _png(fig), alt=alt)


def clusters_plot(d: DataFacts, pid: str) -> Plot:
    title = "Dedup cluster sizes"
    if d.cluster_sizes is None or not len(d.cluster_sizes):
        return Plot(pid, title, note="no dedup clusters: no cluster_id column (run dedup)")
    import numpy as np

    counts = np.bincount(d.cluster_sizes)
    sizes = np.nonzero(counts)[0]
    fig, ax = _figure()
    ax.bar(sizes, counts[sizes], color=PALETTE[0], width=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("rows in the cluster (1 = unique)")
    ax.set_ylabel("clusters")
    ax.set_xlim(0.4, sizes.max() + 0.6)
    if len(sizes) <= 20:
        ax.set_xticks(sizes)
    multi = int((d.cluster_sizes > 1).sum())
    alt = f"{len(d.cluster_sizes)} clusters, {multi} with duplicates, largest {int(d.cluster_sizes.max())} rows"
    return Plot(pid, title, _png(fig), alt=alt)


def teachers_plot(d: DataFacts, pid: str) -> Plot:
    title = "Teacher mix (rows per teacher)" if d.teacher_column == "teacher" else "Rows per model"
    if not d.teachers:
        return Plot(pid, title, note="no teacher or model column in the kept rows")
    items = d.teachers.most_common()
    fig, ax = _figure(height=0.9 + 0.32 * len(items))
    y = list(range(len(items)))[::-1]
    ax.barh(y, [n for _, n in items], color=[PALETTE[i % len(PALETTE)] for i in range(len(items))])
    ax.set_yticks(y, [_short(t) for t, _ in items], fontsize=8)
    _label_bars(ax, [n for _, n in items], y)
    ax.set_xlabel(f"rows (column `{d.teacher_column}`)")
    return Plot(pid, title, _png(fig), alt="; ".join(f"{t}: {n}" for t, n in items))


# --------------------------------------------------------------------------- training


def loss_plot(t: TrainFacts, pid: str) -> Plot:
    title = f"Training loss ({t.mode})"
    if not t.train and not t.eval:
        return Plot(pid, title, note="no loss yet: metrics.jsonl has no train or eval lines")
    fig, ax = _figure(height=3.4)
    xkey = _x_key(t.train + t.eval)
    for key, style, label in (("loss", "-", "train objective"), ("ce", ":", "train cross-entropy"),
                              ("mtp", ":", "multi-token"), ("kd", "--", "distillation (KD)")):
        pts = [(r[xkey], r[key]) for r in t.train if _is_num(r.get(key)) and _is_num(r.get(xkey))]
        if pts:
            ax.plot(*zip(*pts), style, lw=1.8 if key == "loss" else 1.0, label=label)
    ev = [(r[xkey], r["eval_loss"]) for r in t.eval if _is_num(r.get("eval_loss")) and _is_num(r.get(xkey))]
    if ev:
        ax.plot(*zip(*ev), "o-", color="#d0433a", ms=5, lw=1.2, label="eval cross-entropy")
    ax.set_xlabel("tokens" if xkey == "tokens" else "step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    alt = f"{len(t.train)} train points, {len(ev)} eval points; final train loss {_fmt(t.final_loss)}, " \
          f"final eval loss {_fmt(t.final_eval_loss)}"
    return Plot(pid, title, _png(fig), alt=alt)


# --------------------------------------------------------------------------- summary


def summary_rows_plot(data: list[DataFacts], pid: str) -> Plot:
    title = "Rows kept and dropped per folder"
    data = [d for d in data if d.kept + d.dropped]
    if not data:
        return Plot(pid, title, note="no pipeline output with rows")
    fig, ax = _figure(height=1.0 + 0.36 * len(data))
    y = list(range(len(data)))[::-1]
    ax.barh(y, [d.kept for d in data], color=STAGE_COLORS["kept"], label="kept")
    ax.barh(y, [d.dropped for d in data], left=[d.kept for d in data], color=STAGE_COLORS["decontam"], label="dropped")
    ax.set_yticks(y, [d.name for d in data], fontsize=8)
    ax.set_xlabel("rows")
    ax.legend(fontsize=8, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return Plot(pid, title, _png(fig), alt="; ".join(f"{d.name}: kept {d.kept}, dropped {d.dropped}" for d in data))


def summary_loss_plot(runs: list[TrainFacts], pid: str) -> Plot:
    title = "Training runs: loss"
    runs = [t for t in runs if t.train or t.eval]
    if not runs:
        return Plot(pid, title, note="no training run with loss lines")
    fig, ax = _figure(height=3.2)
    xkey = _x_key([r for t in runs for r in t.train + t.eval])
    for i, t in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        tr = [(r[xkey], r["loss"]) for r in t.train if _is_num(r.get("loss")) and _is_num(r.get(xkey))]
        ev = [(r[xkey], r["eval_loss"]) for r in t.eval if _is_num(r.get("eval_loss")) and _is_num(r.get(xkey))]
        if tr:
            ax.plot(*zip(*tr), "-", color=color, lw=1.5, label=f"{t.name} train")
        if ev:
            ax.plot(*zip(*ev), "o--", color=color, ms=4, lw=1.0, label=f"{t.name} eval")
    ax.set_xlabel("tokens" if xkey == "tokens" else "step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Plot(pid, title, _png(fig), alt="; ".join(
        f"{t.name}: final train {_fmt(t.final_loss)}, eval {_fmt(t.final_eval_loss)}" for t in runs))


# --------------------------------------------------------------------------- helpers


def _figure(width: float = 7.5, height: float = 3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(height, 1.8)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _label_bars(ax, values, ys) -> None:
    top = max(values, default=0) or 1
    for v, y in zip(values, ys):
        ax.text(v + top * 0.01, y, str(v), va="center", fontsize=8)
    ax.set_xlim(0, top * 1.12)


def _x_key(records: list[dict]) -> str:
    """Tokens on the x axis when every line has them, else steps."""
    return "tokens" if records and all(_is_num(r.get("tokens")) for r in records) else "step"


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _short(s: str, n: int = 48) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1):]
