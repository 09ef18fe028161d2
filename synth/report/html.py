"""Write the report page: one self-contained HTML file (inline CSS, plots as base64 PNG).

Layout: a summary table (one row per folder) and summary plots, then one section per folder
with its facts and plots. Every plot is a `<figure id=...>` with an `<h3>` title and either an
`<img alt=...>` or a `<p class="note">` saying why it is absent. A five-line inline script
marks each image the browser decoded (`data-rendered="WxH"`), so a headless browser's DOM dump
shows the page rendered.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from collections import Counter
from html import escape

from synth.report import plots as P
from synth.report.collect import DataFacts, TrainFacts

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430;
       margin: 0 auto; padding: 24px 32px; max-width: 1200px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px;
  border-bottom: 2px solid #e3e7ee; padding-bottom: 4px; } h3 { font-size: 14px; margin: 0 0 6px; }
h2 small { color: #6b7785; font-weight: normal; font-size: 13px; }
.meta { color: #6b7785; margin: 0 0 16px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #e3e7ee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
figure.plot { margin: 0; padding: 10px; border: 1px solid #e3e7ee; border-radius: 6px;
  flex: 1 1 520px; max-width: 100%; box-sizing: border-box; }
figure.plot img { max-width: 100%; height: auto; display: block; }
figure.absent { background: #fafbfc; flex-basis: 300px; }
p.note { color: #6b7785; font-style: italic; margin: 4px 0; }
p.error { color: #b42318; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 12px; }
dl.facts dt { color: #6b7785; } dl.facts dd { margin: 0; }
details pre { background: #f4f6f9; padding: 8px; overflow: auto; max-height: 360px; font-size: 12px; }
"""

MARK_RENDERED = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { var im = imgs[i];
    if (im.complete && im.naturalWidth > 0) { ok++; im.setAttribute("data-rendered", im.naturalWidth + "x" + im.naturalHeight); } }
  document.body.setAttribute("data-images-rendered", ok + "/" + imgs.length);
});
"""

SUMMARY_COLUMNS = ["folder", "kind", "status", "rows kept", "rows dropped", "tokens", "verdicts",
                   "pass@k", "final train loss", "final eval loss"]


def render(facts: list[DataFacts | TrainFacts], title: str) -> str:
    data = [f for f in facts if isinstance(f, DataFacts)]
    runs = [f for f in facts if isinstance(f, TrainFacts)]
    ids = _Ids()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>synth report: {escape(title)}</title><style>{CSS}</style>",
        f"<script>{MARK_RENDERED}</script></head><body>",
        f"<h1>synth report: {escape(title)}</h1>",
        f'<p class="meta">{len(data)} data folder(s), {len(runs)} training run(s); '
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
        '<section id="summary"><h2>Summary</h2>', _summary_table(facts),
        "<p class=\"note\">Verdict rates count kept rows; pass@k (unbiased, Chen et al. 2021) counts "
        "every sample with a verdict, kept or dropped, and averages over prompts with at least k samples.</p>",
        '<div class="plots">',
    ]
    if data:
        parts.append(_figure(P.summary_rows_plot(data, "summary-rows")))
    if runs:
        parts.append(_figure(P.summary_loss_plot(runs, "summary-loss")))
    parts.append("</div></section>")
    for f in facts:
        parts.append(_data_section(f, ids) if isinstance(f, DataFacts) else _train_section(f, ids))
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- summary


def _summary_table(facts) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in SUMMARY_COLUMNS)
    rows = []
    for f in facts:
        if isinstance(f, DataFacts):
            cells = [f.name, f.kind, "error" if f.error else f.status, f.kept, f.dropped,
                     _num(f.tokens), verdict_summary(f), pass_k_summary(f), "-", "-"]
        else:
            cells = [f.name, f"train ({f.mode})", "-", "-", "-", _num(f.tokens), "-", "-",
                     _loss(f.final_loss), _loss(f.final_eval_loss)]
        tds = "".join(f'<td class="num">{c}</td>' if isinstance(c, int) else f"<td>{escape(str(c))}</td>"
                      for c in cells)
        rows.append(f"<tr>{tds}</tr>")
    return f'<table id="summary-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def verdict_summary(f: DataFacts) -> str:
    """e.g. `math_verdict: correct 3 (25.0%), incorrect 9 (75.0%)`, over all tasks."""
    out = []
    for c, per_task in sorted(f.verdicts.items()):
        total = Counter()
        for counts in per_task.values():
            total.update(counts)
        n = sum(total.values()) or 1
        out.append(f"{c}: " + ", ".join(f"{v} {k} ({100 * k / n:.1f}%)" for v, k in total.most_common()))
    return "; ".join(out) or "-"


def pass_k_summary(f: DataFacts) -> str:
    """e.g. `math_verdict: pass@1 0.250, pass@4 0.400` (all tasks together)."""
    out = []
    for c, per_task in sorted(f.pass_k.items()):
        table = per_task.get("(all)") or next(iter(per_task.values()), {})
        if table:
            out.append(f"{c}: " + ", ".join(f"{k} {v:.3f}" for k, v in table.items()))
    return "; ".join(out) or "-"


# --------------------------------------------------------------------------- sections


def _data_section(f: DataFacts, ids: "_Ids") -> str:
    slug = ids.new(f.name)
    m = f.manifest
    facts = {"path": str(f.path), "written by": f.kind, "status": f.status, "shards": f.shards,
             "rows kept": f.kept, "rows dropped": f.dropped, "completion tokens (kept)": _num(f.tokens)}
    if isinstance(m.get("model"), dict):
        facts["model"] = f"{m['model'].get('name')} ({m['model'].get('backend')})"
    run = m.get("last_run") or {}
    if run:
        facts["last run"] = (f"{run.get('generated_rows', 0)} rows, {run.get('generated_tokens', 0)} tokens in "
                             f"{run.get('generation_s', 0)} s ({run.get('tokens_per_s', 0)} tokens/s), "
                             f"{run.get('resumed_prompts', 0)} prompts resumed")
    if m.get("input"):
        facts["input"] = m["input"]
    if m.get("params"):
        facts["params"] = json.dumps(m["params"], ensure_ascii=False)
    parts = [f'<section id="data-{slug}"><h2>{escape(f.name)} <small>{escape(f.kind)}</small></h2>', _dl(facts)]
    if f.error:
        parts.append(f'<p class="error">could not read this folder: {escape(f.error)}</p>')
    else:
        parts.append('<div class="plots">')
        for fn, key in ((P.rows_plot, "rows"), (P.lengths_plot, "lengths"), (P.verdicts_plot, "verdicts"),
                        (P.pass_k_plot, "passk"), (P.clusters_plot, "clusters"), (P.teachers_plot, "teachers")):
            parts.append(_figure(fn(f, f"{slug}-{key}")))
        parts.append("</div>")
    parts.append(_json_details("manifest.json", m))
    parts.append("</section>")
    return "\n".join(parts)


def _train_section(t: TrainFacts, ids: "_Ids") -> str:
    slug = ids.new(t.name)
    last = t.train[-1] if t.train else {}
    facts = {"path": str(t.path), "mode": t.mode, "train lines": len(t.train), "eval lines": len(t.eval),
             "last step": last.get("step", "-"), "tokens": _num(t.tokens),
             "final train loss": _loss(t.final_loss), "final eval loss": _loss(t.final_eval_loss),
             "tokens/s (last)": last.get("tok_per_s", "-")}
    if t.bad_lines:
        facts["unreadable lines"] = t.bad_lines
    parts = [f'<section id="train-{slug}"><h2>{escape(t.name)} <small>training ({escape(t.mode)})</small></h2>',
             _dl(facts), '<div class="plots">', _figure(P.loss_plot(t, f"{slug}-loss")), "</div>"]
    parts.append(_json_details("train.json", t.config) if t.config else '<p class="note">no train.json</p>')
    parts.append("</section>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- pieces


def _figure(p: P.Plot) -> str:
    head = f'<figure id="{escape(p.id)}" class="plot{" absent" if p.png is None else ""}"><h3>{escape(p.title)}</h3>'
    if p.png is None:
        return f'{head}<p class="note">{escape(p.note or "no data")}</p></figure>'
    w, h = png_size(p.png)
    src = "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")
    return f'{head}<img alt="{escape(p.alt or p.title)}" width="{w}" height="{h}" src="{src}"></figure>'


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def _dl(items: dict) -> str:
    return '<dl class="facts">' + "".join(
        f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in items.items()) + "</dl>"


def _json_details(label: str, obj: dict, limit: int = 20000) -> str:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + "\n… (cut)"
    return f"<details><summary>{escape(label)}</summary><pre>{escape(text)}</pre></details>"


def _num(x) -> int | str:
    return "-" if x is None else int(x)


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


class _Ids:
    """HTML-safe, unique slugs from folder names ("." is the report root)."""

    def __init__(self):
        self.seen: Counter = Counter()

    def new(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "root"
        self.seen[base] += 1
        return base if self.seen[base] == 1 else f"{base}-{self.seen[base]}"
