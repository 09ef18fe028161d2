"""`synth report`: one self-contained HTML page showing what a run did.

    from synth.report import build_report
    build_report("out/full")            # -> out/full/report.html

collect.py reads the run folders (only the columns it needs), plots.py draws (matplotlib, Agg),
html.py writes the page, browser.py renders it in headless Chromium (screenshots, checks).
"""

from __future__ import annotations

import os
from pathlib import Path

from synth.errors import SynthError

__all__ = ["build_report"]

REPORT = "report.html"


def build_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Collect every run folder below `path`, write the page, return where it is."""
    from synth.report.collect import collect
    from synth.report.html import render

    path = Path(path)
    facts = collect(path)  # SynthError when the path is missing or holds nothing to report
    root = path.parent if path.is_file() else path
    out = Path(out) if out is not None else root / REPORT
    if out.is_dir():
        raise SynthError(f"--out {out} is a folder; give a file name like {out / REPORT}")
    from synth.paths import make_dir

    make_dir(out.parent, f"--out {out}: folder")  # one line when a folder on the way is a file
    page = render(facts, title=str(path))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a page
    return out
