"""Running the sandbox as an ordinary user, from a root test or benchmark: a world-readable
copy of the `verifiers` package (and, for pytest runs, pytest itself), an interpreter that
user can run, and a `preexec_fn` that becomes the user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def become(uid: int):
    """A `preexec_fn`: drop every group and switch to `uid` for good (the child is then an
    ordinary user: no capability)."""
    def drop() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    return drop


def python_for(uid: int) -> str | None:
    """An interpreter `uid` can run: this one if it can (a pyenv build under a 0700 /root it
    cannot), else the system's python3; None if neither."""
    for exe in (sys.executable, "/usr/bin/python3"):
        try:
            ok = subprocess.run([exe, "-c", "import sys"], preexec_fn=become(uid),
                                capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return exe
    return None


def stage(files: list[Path] = (), with_pytest: bool = False) -> Path:
    """A fresh world-readable directory holding `verifiers/`, `files` (copied to their paths
    relative to the project root) and, with `with_pytest`, pytest and its dependencies
    under `site/`. The caller removes it."""
    work = Path(tempfile.mkdtemp(prefix="synth-rootless-"))
    shutil.copytree(ROOT / "verifiers", work / "verifiers", ignore=_SKIP)
    for f in files:
        dst = work / Path(f).resolve().relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    if with_pytest:
        import pytest

        site = Path(pytest.__file__).resolve().parents[1]
        for pkg in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py.py"):
            if (site / pkg).is_dir():
                shutil.copytree(site / pkg, work / "site" / pkg, ignore=_SKIP)
            elif (site / pkg).is_file():
                shutil.copy(site / pkg, work / "site" / pkg)
        (work / "pytest.ini").write_text("[pytest]\n")
    for path in [work, *work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return work


def env_for(work: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{work}:{work / 'site'}", "HOME": str(work),
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
