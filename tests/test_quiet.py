"""What a user sees: synth's own progress and summary, not Ray's log lines (issue 16 item 6);
`synth --verbose` shows them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SYNTH = str(Path(sys.executable).with_name("synth"))
# A line of Ray's Python loggers ("2026-12-04 00:37:43,341<TAB>WARNING file.py:85 -- ...") or
# a Python warning raised in one of Ray's modules (".../site-packages/ray/...: SomeWarning:").
RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING)\s")
RAY_WARNING = re.compile(r"/ray/.*\.py:\d+: \w*Warning:|RayDeprecationWarning")


def _quickstart_on_fake_engine(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "pipelines" / "quickstart.yaml").read_text())
    cfg["seeds"]["path"] = str(ROOT / "sample_data" / "seeds")
    cfg["model"] = {"name": "fake", "backend": "fake", "batch_size": 2}
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(tmp_path: Path, env: dict, *pre: str) -> subprocess.CompletedProcess:
    pipe = _quickstart_on_fake_engine(tmp_path)
    out = tmp_path / f"out{len(pre)}"
    return subprocess.run([SYNTH, *pre, "run", str(pipe), "--out", str(out), "--limit", "4"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_default_output_has_no_ray_log_lines_and_verbose_shows_them(tmp_path, subprocess_env):
    r = _run(tmp_path, subprocess_env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 rows in" in r.stdout
    noisy = [ln for ln in r.stderr.splitlines() if RAY_LOG_LINE.match(ln) or RAY_WARNING.search(ln)]
    assert not noisy, "\n".join(noisy)
    assert "Traceback" not in r.stderr
    v = _run(tmp_path, subprocess_env, "--verbose")
    assert v.returncode == 0, v.stderr[-3000:]
    shown = [ln for ln in v.stderr.splitlines() if RAY_LOG_LINE.match(ln)]
    assert shown, v.stderr[-3000:]  # Ray Data's INFO lines are back with --verbose
