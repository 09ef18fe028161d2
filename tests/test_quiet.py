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
# A line of Ray's C++ core worker ("[2026-12-04 06:15:02,488 E 13063 13063] core_worker.cc:2465: ...").
RAY_NATIVE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z] \d+ \d+\] \w+\.cc:\d+")


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
    noisy = [ln for ln in r.stderr.splitlines()
             if RAY_LOG_LINE.match(ln) or RAY_WARNING.search(ln) or RAY_NATIVE.match(ln)]
    assert not noisy, "\n".join(noisy)
    assert "Traceback" not in r.stderr
    v = _run(tmp_path, subprocess_env, "--verbose")
    assert v.returncode == 0, v.stderr[-3000:]
    shown = [ln for ln in v.stderr.splitlines() if RAY_LOG_LINE.match(ln)]
    assert shown, v.stderr[-3000:]  # Ray Data's INFO lines are back with --verbose
    # and so is the core worker's line about the actor pools' constructor arguments
    assert any(RAY_NATIVE.match(ln) for ln in v.stderr.splitlines()), v.stderr[-3000:]


FILTER_PROBE = r"""
import os, sys, time
from synth import native_stderr
assert native_stderr.install()
os.write(2, b"[2026-12-04 06:15:02,488 E 13063 13063] core_worker.cc:2465: Actor with class name\n")
os.write(2, b"[2026-12-04 06:15:02,489 W 13063 13070] gcs_client.h:12: a warning\n")
os.write(2, b"plain native text\n[not a log line] kept\n")
os.write(2, b"[2026-12-04 06:15:02,490 I 1 2] ")
time.sleep(0.2)  # the rest of a log line written later is still recognised
os.write(2, b"logging.cc:303: Set ray log level\n")
os.write(2, b"[2026-12-04 06:15:02,491 F 13063 13063] raylet_client.cc:9: fatal, kept\n")
print("python stderr", file=sys.stderr, flush=True)
os.write(2, b"*** SIGSEGV received, stack trace kept\n")
os.write(2, b"progress 1/2\r")
os._exit(3)  # what a crash leaves in the pipe still arrives
"""


def test_native_stderr_filter_drops_ray_core_worker_lines_only(subprocess_env):
    r = subprocess.run([sys.executable, "-c", FILTER_PROBE], capture_output=True, text=True,
                       timeout=60, env=subprocess_env, cwd=ROOT)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.splitlines()
    assert not any("core_worker.cc" in ln or "gcs_client.h" in ln or "logging.cc" in ln
                   for ln in lines), r.stderr
    for kept in ("plain native text", "[not a log line] kept", "fatal, kept", "python stderr",
                 "*** SIGSEGV received, stack trace kept"):
        assert any(ln.endswith(kept) for ln in lines), (kept, r.stderr)
    assert lines[-1] == "progress 1/2"  # a line without its end (a "\\r" progress line) passes
