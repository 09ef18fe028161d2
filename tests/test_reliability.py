"""Faults never lose or duplicate data. Each test injects a real fault into a real run:

- an engine actor's process SIGKILLed mid-batch (fake engine; and the real vLLM engine),
- Ctrl-C (SIGINT to the process group of a `synth run` subprocess),
- a full disk (a small tmpfs mounted as the output folder; also a write failure injected
  in-process, which runs where mounting is impossible),
- huge, empty, binary and broken-Unicode seeds and replies through every stage,
- 100,000 seed rows, with the driver's peak RSS measured.

Driver SIGKILL at random points is in tests/test_kill_resume.py. After every fault the
output folder holds only whole shards and a valid manifest, and the same command finishes
the run with every expected row exactly once, kept or in rejects/ with a reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synth.config import load_pipeline
from synth.errors import OutputFailed, SynthError
from synth.io.shards import list_rejects, list_shards
from synth.pipeline.run import run_pipeline
from tests.conftest import SAMPLE, write_pipeline
from tests.test_kill_resume import SYNTH, assert_exact, check_whole, expected_samples


def _fake_pipeline(tmp_path: Path, name: str, *, delay: float = 0.3, batch_size: int = 2,
                   **extra) -> Path:
    return write_pipeline(
        tmp_path / f"{name}.yaml", name=name,
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": batch_size,
               "engine_kwargs": {"delay": delay}},
        sampling={"n": 2}, **extra,
    )


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


# --------------------------------------------------------------------------- engine actor kill


def _engine_key(cfg, model_path: str) -> str:
    from synth.pipeline.run import engine_spec

    return engine_spec(cfg, model_path).key()


def _run_killing_engine(cfg, out: Path, model_path: str, limit: int, after_shards: int,
                        grace: float):
    """Run `cfg` in this process; meanwhile SIGKILL its engine actor's process `grace` seconds
    after `after_shards` shards are on disk (so a batch is in flight). Returns (result, kill)."""
    import psutil
    import ray

    from synth.backends import pool

    key = _engine_key(cfg, model_path)
    kill: dict = {}

    def killer():
        try:
            deadline = time.time() + 900
            while time.time() < deadline and "pid" not in kill:
                handles = [h for k, hs in list(pool._ENGINES.items()) if k.startswith(key)
                           for h in hs]
                if handles and "handle" not in kill:
                    kill["handle"] = handles[0]
                    kill["old_pid"] = ray.get(handles[0].pid.remote())  # waits for the engine
                    kill["children"] = psutil.Process(kill["old_pid"]).children(recursive=True)
                if "handle" in kill and out.exists() and len(list_shards(out)) >= after_shards:
                    time.sleep(grace)
                    os.kill(kill["old_pid"], signal.SIGKILL)
                    kill["pid"] = kill["old_pid"]
                time.sleep(0.05)
        except Exception as e:  # reported by the test
            kill["error"] = repr(e)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = run_pipeline(cfg, out=out, limit=limit)
    t.join(timeout=10)
    assert "error" not in kill, kill["error"]
    assert "pid" in kill, "the run ended before the engine could be killed"
    return result, kill


def _pid_of(handle, patience_s: float = 600) -> int:
    """The engine actor's pid. ActorUnavailableError is transient by Ray's definition (a call
    on a connection to the actor's previous incarnation can meet a reset, and a restarting
    vLLM actor loads its engine again, a minute or more on a loaded machine): ask again."""
    import ray

    deadline = time.time() + patience_s
    while True:
        try:
            return ray.get(handle.pid.remote(), timeout=patience_s)
        except ray.exceptions.ActorUnavailableError:
            if time.time() > deadline:
                raise
            time.sleep(3)


def test_engine_actor_sigkill_fake_engine(tmp_path, ray_session):
    """SIGKILL the engine actor mid-batch: Ray restarts it, the batch waits and is sent again,
    the run finishes with every expected row exactly once."""
    pipe = _fake_pipeline(tmp_path, "actorkill", delay=0.71)  # its own engine actor
    cfg = load_pipeline(pipe)
    out, limit = tmp_path / "out", 16
    expected = expected_samples(pipe, limit)
    r, kill = _run_killing_engine(cfg, out, cfg.model.name, limit, after_shards=2, grace=0.3)
    assert_exact(out, expected)
    assert r.generated_rows == 2 * limit == r.rows  # each row written once
    new_pid = _pid_of(kill["handle"])
    assert new_pid != kill["pid"]  # it really died and came back
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["counts"]["missing_rows"] == 0


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_engine_actor_sigkill_real_vllm(tmp_path, ray_session, model_path):
    """The same with the real vLLM engine (the session's shared one: same spec as
    test_e2e_vllm): the engine reloads (~35 s), the batch is sent again, the run completes
    exactly; the killed actor's vLLM processes (EngineCore, workers) do not outlive it."""
    import psutil

    pipe = write_pipeline(
        tmp_path / "vk.yaml", name="vkill",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "rephrase_list"},
        model={"name": "smollm2-135m", "batch_size": 2},
        sampling={"max_tokens": 24, "n": 1},
    )
    cfg = load_pipeline(pipe)
    out, limit = tmp_path / "out", 8
    expected = expected_samples(pipe, limit, model_path)
    t0 = time.time()
    r, kill = _run_killing_engine(cfg, out, model_path, limit, after_shards=1, grace=1.0)
    print(f"vLLM actor kill: run {time.time() - t0:.0f}s, engine start {r.engine_start_s:.0f}s")
    assert_exact(out, expected)
    assert r.generated_rows == limit
    rows = pq.ParquetDataset([str(f) for f in list_shards(out)]).read().to_pylist()
    assert all(x["response"].strip() and x["completion_tokens"] > 0 for x in rows)
    assert _pid_of(kill["handle"]) != kill["pid"]
    time.sleep(2)
    alive = [c for c in kill["children"]
             if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"vLLM processes of the killed engine left running: {alive}"


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_exits_130_says_how_to_resume_and_resumes(tmp_path, subprocess_env):
    """SIGINT to the process group (what Ctrl-C in a terminal sends) of a running `synth run`
    with its own local Ray: exit 130 within seconds (Ray and the engine shut down, no hang),
    a message with the command that resumes, only whole shards visible (temp files only in
    OUT/.tmp); the resume completes with every row exactly once."""
    import random

    pipe = _fake_pipeline(tmp_path, "ctrlc", delay=0.4)
    out, limit = tmp_path / "out", 20
    expected = expected_samples(pipe, limit)
    argv = [SYNTH, "run", str(pipe), "--out", str(out), "--limit", str(limit)]
    env = subprocess_env
    proc = _start_interruptible(argv, env)
    try:
        deadline, j = time.time() + 300, random.Random(3).randint(1, 4)
        while len(list_shards(out)) < j if out.exists() else True:
            assert time.time() < deadline and proc.poll() is None, "no shard before the interrupt"
            time.sleep(0.05)
        time.sleep(random.Random(4).uniform(0.0, 0.4))
        t_int = time.time()
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
        took = time.time() - t_int
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of our own process group
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, stderr[-3000:]
    assert took < 60, f"exit took {took:.0f}s after Ctrl-C"
    assert f"Resume with: synth run {pipe} --out {out} --limit {limit}\n" in stderr
    kept, rejected = check_whole(out)
    assert 0 < len(kept) < 2 * limit
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["stopped"]["reason"] == "interrupted", m
    assert "counts" not in m  # the counts of a finished run are never claimed
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert_exact(out, expected)


def _start_interruptible(argv, env) -> subprocess.Popen:
    # A foreground job in a terminal has SIGINT's default action; a job that a non-interactive
    # shell started in the background (e.g. a CI runner's `cmd &`) inherits SIGINT ignored and
    # must keep ignoring it, as Python does. Restore the terminal's condition in the child.
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("after_s", [2.0, 6.0, 11.0])
def test_ctrl_c_at_any_moment_gives_the_interrupt_message(tmp_path, subprocess_env, after_s):
    """Ctrl-C while Ray starts, while the dataflow starts and while it runs: always the
    interrupt message and exit 130, never `error: generation failed: ...` (a Ctrl-C inside
    Ray Data's lock handling once surfaced as `release unlocked lock`) and never a traceback;
    the manifest, once written, says `interrupted`."""
    pipe = _fake_pipeline(tmp_path, "ctrlc_at", delay=0.4)
    out = tmp_path / "out"
    argv = [SYNTH, "run", str(pipe), "--out", str(out), "--limit", "40"]
    proc = _start_interruptible(argv, subprocess_env)
    try:
        time.sleep(after_s)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "error:" not in stderr, stderr[-3000:]
    assert any(ln.startswith("interrupted") for ln in stderr.splitlines()), stderr[-3000:]
    if (out / "manifest.json").exists():
        assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"


def test_ray_that_cannot_start_is_one_line(tmp_path, subprocess_env):
    """A local Ray that fails to start (here: its temp folder cannot be made) is one line that
    says so and where to look, exit 1, no traceback; nothing is generated."""
    pipe = _fake_pipeline(tmp_path, "noray", delay=0.0)
    out = tmp_path / "out"
    env = dict(subprocess_env, RAY_TMPDIR="/proc/synth-no-such-dir")
    r = subprocess.run([SYNTH, "run", str(pipe), "--out", str(out), "--limit", "2"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Ray did not start on this machine" in errors[0], r.stderr
    assert "/proc/synth-no-such-dir" in errors[0]
    assert not list_shards(out)
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, nearly filled by a filler file (delete it to free the space)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({r.stderr.strip()}); "
                    "test_write_failure_injected_* covers the same path without a mount")
    try:
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (1024 * 1024 - 96 * 1024))  # ~96 KiB left: 3-5 shards
        yield mnt, filler
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_disk_full_one_line_error_no_corrupt_shard_then_resume(tmp_path, small_disk, ray_session,
                                                               subprocess_env):
    """Output on a tmpfs that fills up mid-run: exit 1 with one line saying the disk is full,
    which file, and how to resume; every shard on disk reads, the manifest is valid JSON,
    no temp file is left outside .tmp; after the space is freed the same command finishes
    with every row exactly once."""
    mnt, filler = small_disk
    pipe = _fake_pipeline(tmp_path, "diskfull", delay=0.05)
    out, limit = mnt / "out", 20
    expected = expected_samples(pipe, limit)
    argv = [SYNTH, "run", str(pipe), "--out", str(out), "--limit", str(limit),
            "--address", ray_session.get_runtime_context().gcs_address]
    env = subprocess_env
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    line = _one_error_line(r.stderr)
    assert "no space left on device (the disk is full)" in line
    assert f"cannot write {out}/" in line and "rerun the same command to resume" in line
    kept, _ = check_whole(out)
    assert 0 < len(kept) < 2 * limit
    assert not (out / ".tmp").exists(), f"temp files left: {list((out / '.tmp').iterdir())}"

    filler.unlink()  # free the space
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert_exact(out, expected)


def test_write_failure_injected_cleans_temp(tmp_path, monkeypatch):
    """The shard writer every worker uses: the Parquet writer fails with ENOSPC on the 4th
    shard after writing part of its temp file. `OutputFailed` names the file in one line, the
    partial temp file is gone, the shards before it are whole. (Shards are written in Ray
    workers, which a monkeypatch here cannot reach; the whole run and its resume after a
    real full disk are `test_disk_full_one_line_error_no_corrupt_shard_then_resume`.)"""
    import errno

    import pyarrow as pa
    import pyarrow.parquet

    import synth.io.shards as sh

    real_write = pyarrow.parquet.write_table
    calls = {"n": 0}

    def failing_write(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            Path(where).write_bytes(b"PAR1 half a shard")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, **kw)

    out = tmp_path / "out"
    monkeypatch.setattr(pyarrow.parquet, "write_table", failing_write)
    for k in range(3):
        sh.write_shard(pa.table({"id": [f"r{k}"]}), out, f"part-{k:06d}.parquet")
    with pytest.raises(OutputFailed) as e:
        sh.write_shard(pa.table({"id": ["r3"]}), out, "part-000003.parquet")
    assert e.value.exit_code == 1
    msg = str(e.value)
    assert msg.startswith(f"cannot write {out}/part-000003.parquet") and "\n" not in msg
    assert "the disk is full" in msg
    assert len(list_shards(out)) == 3
    check_whole(out)
    assert not (out / ".tmp").exists()  # the half-written temp file is gone


def test_manifest_write_failure_keeps_the_old_manifest(tmp_path, monkeypatch):
    """A manifest write that fails leaves the previous manifest whole and no temp file."""
    import synth.io.shards as sh

    sh.write_json_atomic({"status": "running"}, tmp_path / "manifest.json")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputFailed, match="manifest.json: no space left"):
        sh.write_json_atomic({"status": "complete", "big": "x" * 10000}, tmp_path / "manifest.json")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no temp file


# --------------------------------------------------------------------------- dedup reruns


def test_dedup_rerun_and_cut_pass_keep_every_row_once(tmp_path, ray_session, monkeypatch):
    """Dedup rewrites the run's shards in place. A rerun that adds rows (a larger --limit)
    must keep the duplicates an earlier pass moved to rejects/ (it used to overwrite that
    file: rows lost), and a pass cut off between a shard's rejects and the shard itself
    (a kill) must end, after the rerun, with every row in one place."""
    import synth.io.shards as sh

    pipe = write_pipeline(
        tmp_path / "dd.yaml", name="dd",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": 2,
               "engine_kwargs": {"constant": "the same reply every time"}},
        sampling={"n": 1}, dedup={"method": "exact", "column": "response"},
    )
    cfg, out = load_pipeline(pipe), tmp_path / "out"
    for limit in (4, 8):
        run_pipeline(cfg, out=out, limit=limit)
        assert_exact(out, expected_samples(pipe, limit))
        assert len(list_shards(out)) == 1  # one row kept: every reply is the same

    # The dedup pass runs in the driver, after the workers wrote the new units: cut it (the
    # kill) right after it wrote a shard's dedup rejects, before it rewrote or removed that
    # shard, whichever of the two comes next (shards are named by unit, in no fixed order).
    real_write, real_remove, state = sh.write_shard, sh.remove, {"rejects_written": False}

    def cut_write(table, out_dir, name, **kw):
        if name.endswith("-dedup.parquet"):
            state["rejects_written"] = True
        elif state["rejects_written"] and sh.REJECTS not in str(out_dir):
            raise KeyboardInterrupt  # the kill: after a shard's rejects, before the shard
        return real_write(table, out_dir, name, **kw)

    def cut_remove(path):
        if state["rejects_written"] and f"/{sh.REJECTS}/" not in str(path):
            raise KeyboardInterrupt  # the same cut, before an all-duplicates shard is removed
        return real_remove(path)

    monkeypatch.setattr(sh, "write_shard", cut_write)
    monkeypatch.setattr(sh, "remove", cut_remove)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, out=out, limit=12)
    monkeypatch.setattr(sh, "write_shard", real_write)
    monkeypatch.setattr(sh, "remove", real_remove)
    kept, rejected = check_whole(out)
    assert set(kept) & set(rejected)  # the cut left rows in both places...
    run_pipeline(cfg, out=out, limit=12)
    assert_exact(out, expected_samples(pipe, 12))  # ...the rerun puts each in one


# --------------------------------------------------------------------------- adversarial rows

HUGE = 5 * 1024 * 1024
WORDS = "The river flows past the old mill and water boils at one hundred degrees. ".split()
REPLIES = [
    "",                                          # empty
    " \n\t ",                                    # whitespace only
    "a\x00b NUL in the middle. " * 3,            # NUL bytes
    "a lone \ud800 high surrogate.",             # not encodable as UTF-8: stored as U+FFFD
    "an escaped byte \udcff from surrogateescape.",
    "\x1b[31mred\x1b[0m control \x07 \x7f chars \ufeff and \ufffe \U0010ffff.",
    "line\u2028separator\x85next\x1cfield.",
    "```python\ndef f():\n    return 1\n```\nassert f() == 1",
    "So the answer is \\boxed{4}.",
    "big words here, and more. " * (1024 * 1024 // 26),   # ~1 MiB reply
]


def _adversarial_seeds(root: Path) -> Path:
    seeds = root / "seeds"
    seeds.mkdir()
    huge = " ".join(WORDS[i % len(WORDS)] for i in range(HUGE // 5))[:HUGE]
    (seeds / "huge.txt").write_text(huge)  # one 5 MiB prompt (chunking off)
    (seeds / "binary.txt").write_bytes(
        b"head\x00\x01\x02\x1b[31mred\x7f\x08tail \xef\xbf\xbf \xe2\x80\xa8 end\x00")
    rows = [{"id": "empty", "text": ""}, {"id": "blank", "text": " \n\t "},
            {"id": "nul", "text": "a\u0000b\u0001c", "answer": "\u0000"},
            {"id": "math", "text": "What is 2+2?", "answer": "4", "tests": "assert f() == 1\x00"},
            {"id": "bom", "text": "\ufeffbom \ufffe \U0010ffff \u202e rtl"},
            {"id": "huge-row", "text": "word " * (HUGE // 5)}]
    (seeds / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return seeds


@pytest.mark.timeout(600)
def test_huge_empty_binary_rows_flow_through_every_stage(tmp_path, ray_session):
    """5 MiB, empty, NUL/control-character and odd-Unicode seeds, and replies that are empty,
    1 MiB, hold NULs or lone surrogates, through decontam (first, so it sees every row),
    rephrase_clean, quality_filter, verify_math, verify_code and MinHash dedup: the run
    completes and every generated row is kept or rejected with a reason (kept + rejected ==
    generated), none silently lost."""
    seeds = _adversarial_seeds(tmp_path)
    evals = tmp_path / "evals.jsonl"
    evals.write_text(json.dumps({"id": "e1", "problem": "the river flows past the old mill and "
                                 "water boils at one hundred degrees"}) + "\n")
    pipe = write_pipeline(
        tmp_path / "weird.yaml", name="weird",
        seeds={"path": str(seeds), "chunk_tokens": 0},
        prompt={"template": "rephrase_distill"},
        model={"name": "fake", "backend": "fake", "batch_size": 4,
               "engine_kwargs": {"constant": REPLIES}},
        sampling={"n": 2},
        stages=[{"decontam": {"against": [str(evals)], "ngram": 8}},  # first: checks every row
                {"rephrase_clean": {}},
                {"quality_filter": {"groups": ["gen"]}},
                {"verify_math": {"reference_column": "answer", "timeout": 5}},
                {"verify_code": {"tests_column": "tests", "timeout": 5}}],
        dedup={"method": "minhash", "column": "response"},
    )
    cfg = load_pipeline(pipe)
    out = tmp_path / "out"
    expected = expected_samples(pipe, None)
    assert len(expected) == 8  # every seed row makes a prompt, the empty ones too
    r = run_pipeline(cfg, out=out)
    assert_exact(out, expected)
    assert r.rows + r.rejected_rows == r.generated_rows == 16
    rows = [x for f in list_shards(out) + list_rejects(out) for x in pq.read_table(f).to_pylist()]
    rejected = [x for f in list_rejects(out) for x in pq.read_table(f).to_pylist()]
    assert all(x["reject_reason"] for x in rejected)
    kept = [x for f in list_shards(out) for x in pq.read_table(f).to_pylist()]
    assert kept and all(x["reject_reason"] is None and x["cluster_id"] for x in kept)
    responses = [x["response"] for x in rows]
    assert "a lone \ufffd high surrogate." in responses  # a lone surrogate becomes U+FFFD
    assert "a\x00b NUL in the middle. " * 3 in responses  # NULs are kept as they are
    assert max(len(x["seed_text"]) for x in rows) > HUGE - 100  # the 5 MiB prompt went through
    assert any(len(x) > 1_000_000 for x in responses)
    assert {"rephrase.empty", "decontam"} <= {x["reject_reason"] for x in rejected}
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert m["counts"]["rows"] + m["counts"]["rejected_rows"] == 16


@pytest.mark.parametrize("name, data", [
    ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1")),
    ("cut.jsonl", b'{"text": "ok"}\n{"text": "caf\xc3"}\n'),
])
def test_invalid_utf8_seed_is_refused_before_any_work(tmp_path, name, data):
    """Seed bytes that are not UTF-8 are corrupt input: refused before any work with the file
    and byte named, nothing written (see "Corrupt input" in the README's Guarantees)."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "good.txt").write_text("A good seed document.")
    (seeds / name).write_bytes(data)
    pipe = write_pipeline(tmp_path / "p.yaml", name="utf8", seeds={"path": str(seeds)},
                          prompt={"template": "chat"},
                          model={"name": "fake", "backend": "fake"})
    out = tmp_path / "out"
    with pytest.raises(SynthError, match=f"{name}.*UTF-8"):
        run_pipeline(load_pipeline(pipe), out=out)
    assert not out.exists()


# --------------------------------------------------------------------------- memory bound

ROWS_100K = 100_000
# The driver's peak RSS for 100,000 seed rows (fake engine, batch 2048), documented in the
# README: measured 338-351 MB on this 2-core machine (heap ~200 MB, shared libraries ~99 MB,
# Ray object store pages ~44 MB); a 1,000-row run peaks at ~230 MB, so about 1.2 KB per
# prompt on top. It was 351-587 MB for 100k-300k rows before prompts were built in Arrow
# batches and the final counts taken with Arrow.
RSS_BOUND_MB = 450

_MEASURE = """
import json, sys, threading, time
peak = {}
def sample():  # what the peak is made of: the driver's own heap (RssAnon), mapped files
    while True:  # (RssFile: shared libraries) and shared memory (RssShmem: Ray's object store)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon", "RssFile", "RssShmem")):
                    k, v = line.split(":")
                    peak[k] = max(peak.get(k, 0), int(v.split()[0]) / 1024)
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
from synth.config import load_pipeline
from synth.pipeline.run import run_pipeline
r = run_pipeline(load_pipeline(sys.argv[1]), out=sys.argv[2])
# VmHWM is this process image's peak RSS. (ru_maxrss is not: Linux carries it over an execve
# from the parent, so a subprocess of a big pytest process would report the parent's peak.)
hwm = next(int(line.split()[1]) / 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM"))
print(json.dumps({"rows": r.rows, "shards": r.shards, **peak, "peak_rss_mb": hwm}))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_driver_peak_rss_over_100k_seed_rows(tmp_path, subprocess_env):
    """A run over 100,000 seed rows keeps the driver's peak RSS (VmHWM of the driver process,
    a subprocess with its own local Ray) under RSS_BOUND_MB."""
    seeds = tmp_path / "seeds.jsonl"
    with open(seeds, "w") as f:
        for i in range(ROWS_100K):
            f.write(json.dumps({"id": f"d{i}", "text": f"Document {i}: the river flows past "
                                                       f"mill number {i} at dawn."}) + "\n")
    pipe = write_pipeline(tmp_path / "mem.yaml", name="mem",
                          seeds={"path": str(seeds), "chunk_tokens": 0},
                          prompt={"template": "chat"},
                          model={"name": "fake", "backend": "fake", "batch_size": 2048},
                          sampling={"n": 1, "max_tokens": 16})
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(pipe), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=540, env=subprocess_env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"100k seed rows: peak driver RSS {got['peak_rss_mb']:.0f} MB (peaks: heap "
          f"{got['RssAnon']:.0f}, files {got['RssFile']:.0f}, shared memory "
          f"{got['RssShmem']:.0f}), {got['shards']} shards, {time.time() - t0:.0f}s")
    assert got["rows"] == ROWS_100K and got["shards"] == 49
    assert got["peak_rss_mb"] < RSS_BOUND_MB
