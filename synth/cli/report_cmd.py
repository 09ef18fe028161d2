"""`synth report PATH`: a self-contained HTML page with plots of what a run did (synth/report/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from synth.cli.common import user_errors


def report(
    path: Annotated[Path, typer.Argument(
        help="A pipeline or curation output, a training folder, or a folder holding several.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="The HTML file to write (default: PATH/report.html).")] = None,
    screenshot: Annotated[Optional[Path], typer.Option(
        help="Also save a PNG screenshot of the page (needs Chromium: `make browser`).")] = None,
    width: Annotated[int, typer.Option(min=320, help="Screenshot width in pixels.")] = 1280,
    height: Annotated[int, typer.Option(min=240, help="Screenshot height in pixels.")] = 2400,
) -> None:
    """Summary table and plots (rows kept and dropped, lengths, verdicts, pass@k, dedup
    clusters, teacher mix, loss curves) for every run folder found below PATH."""
    with user_errors():
        from synth.report import build_report

        page = build_report(path, out)
        typer.echo(f"report: {page}")
        if screenshot is not None:
            from synth.report.browser import screenshot as take

            typer.echo(f"screenshot: {take(page, screenshot, width=width, height=height)}")
