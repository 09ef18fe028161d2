"""Where synth keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$SYNTH_CACHE`, else `$XDG_CACHE_HOME/synth`, else `~/.cache/synth`."""
    if os.environ.get("SYNTH_CACHE"):
        return Path(os.environ["SYNTH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "synth"


def file_in_the_way(path: str | Path) -> Path | None:
    """The existing file at `path` or at one of the folders on the way to it, if any (then
    the folder cannot be made)."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            return None if q.is_dir() else q
    return None


def refuse_file_in_the_way(path: str | Path, what: str = "output folder") -> None:
    """One `SynthError` line when the folder `path` cannot be made because it, or a folder on
    the way to it, is an existing file."""
    from synth.errors import SynthError

    p = Path(path)
    f = file_in_the_way(p)
    if f == p:
        raise SynthError(f"{what} {p} is a file; give a folder")
    if f is not None:
        raise SynthError(f"{what} {p} cannot be made: {f} is a file; give another folder")


def make_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create the folder `path` (and its parents) or raise one `SynthError` line: when it, or
    a folder on the way to it, is an existing file, or it cannot be created (permissions, a
    read-only filesystem)."""
    from synth.errors import SynthError

    p = Path(path)
    refuse_file_in_the_way(p, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SynthError(f"{what} {p} cannot be made: {e.strerror or e}") from None
    return p
