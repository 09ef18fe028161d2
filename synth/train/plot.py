"""The loss curve beside the checkpoints: like with like, the next-token cross-entropy of
training (and its moving average) and of the held-out eval documents. The training objective
(`loss` in metrics.jsonl: CE + the multi-token-prediction loss, or the distillation mix) is
larger than the CE by construction, so it is not drawn against the eval CE."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return rows


def loss_curve(metrics: list[dict], png: Path, title: str) -> Path | None:
    train = [m for m in metrics if m.get("split") == "train"]
    ev = [m for m in metrics if m.get("split") == "eval"]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = [m["tokens"] for m in train]
    y = [m["ce"] if m.get("ce") is not None else m["loss"] for m in train]
    ax.plot(x, y, color="#9ecae1", lw=1, label="train cross-entropy")
    w = max(1, len(y) // 20)
    if len(y) > w > 1:
        avg = [sum(y[max(0, i - w + 1) : i + 1]) / len(y[max(0, i - w + 1) : i + 1]) for i in range(len(y))]
        ax.plot(x, avg, color="#3182bd", lw=2, label=f"train (mean of {w})")
    if ev:
        ax.plot([m["tokens"] for m in ev], [m["eval_loss"] for m in ev], "o-", color="#e6550d",
                label="eval cross-entropy")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("next-token cross-entropy (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
    return png
