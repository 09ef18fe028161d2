"""Render a report in headless Chromium: a screenshot (for docs/report.png) or the DOM after
the page's scripts ran (the report marks each decoded image with `data-rendered`).

Chromium is the Debian package `chromium` (`make browser` installs it); nothing here is needed
to write a report.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from synth.errors import SynthError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(page: str | Path, *flags: str, timeout: float = 60.0) -> str:
    exe = find_chromium()
    if exe is None:
        raise SynthError("no Chromium found; install it with `make browser` "
                         "(apt-get install -y --no-install-recommends chromium)")
    page = Path(page).resolve()
    if not page.is_file():
        raise SynthError(f"{page} does not exist")
    with tempfile.TemporaryDirectory(prefix="synth-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", f"--user-data-dir={profile}", *flags, page.as_uri()]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"chromium did not finish within {timeout:.0f}s") from None
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise SynthError(f"chromium failed (exit {r.returncode}): {tail[:300]}")
    return r.stdout


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 2400) -> Path:
    """Save a `width` x `height` screenshot of the page's top as PNG."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _run(page, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.is_file() or png.stat().st_size == 0:
        raise SynthError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(page: str | Path) -> str:
    """The page's DOM as serialized after load (its scripts have run)."""
    return _run(page, "--dump-dom", "--virtual-time-budget=5000")
