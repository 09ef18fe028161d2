"""One writer per output (synth/io/lock.py): the lock itself, its stale takeover, and two real
`synth filter` processes racing for one OUT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.errors import SynthError
from synth.io import lock as lk
from synth.io.lock import LOCK_NAME, output_lock
from synth.io.shards import list_rejects, list_shards, write_shard

ROOT = Path(__file__).resolve().parents[1]


def _foreign_lock(out: Path, *, age_s: float = 0.0, **fields) -> Path:
    """A lock file as another command would have left it, heartbeat `age_s` seconds ago."""
    out.mkdir(parents=True, exist_ok=True)
    info = {"host": "elsewhere", "host_id": "elsewhere/boot/1", "pid": 4242, "pid_start": None,
            "command": "synth filter", "started": "2026-01-01T00:00:00Z", "token": "t" * 32}
    info.update(fields)
    p = out / LOCK_NAME
    p.write_text(json.dumps(info))
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def _dead_pid() -> tuple[int, str | None]:
    """The pid (and start time) of a process of this host that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    start = lk._pid_start(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


# --------------------------------------------------------------------------- the lock


def test_held_lock_names_its_holder_and_is_released(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, "synth filter") as held:
        info = json.loads((out / LOCK_NAME).read_text())
        assert info == held.info
        assert info["pid"] == os.getpid() and info["command"] == "synth filter"
        assert set(info) >= {"host", "pid", "command", "started", "token"}
        with pytest.raises(SynthError) as e:
            with output_lock(out, "synth dedup"):
                pass
        msg = str(e.value)
        assert "\n" not in msg
        assert f"in use by `synth filter` (pid {os.getpid()} on " in msg and info["started"] in msg
        (out / "part-000000.parquet").write_bytes(b"x")
    assert sorted(p.name for p in out.iterdir()) == ["part-000000.parquet"]  # lock gone, work kept


def test_released_on_exception_and_ctrl_c(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with output_lock(out, "synth filter"):
                assert (out / LOCK_NAME).exists()
                raise exc
        assert not (out / LOCK_NAME).exists()
    with output_lock(out, "synth filter"):  # free again
        pass


def test_an_out_made_by_the_lock_is_removed_when_nothing_was_written(tmp_path):
    out = tmp_path / "a" / "out"
    with pytest.raises(SynthError):
        with output_lock(out, "synth filter"):
            raise SynthError("bad input")
    assert not out.exists()
    made = tmp_path / "made"
    made.mkdir()
    with output_lock(made, "synth filter"):
        pass
    assert made.is_dir()  # a folder that was there before stays


def test_out_that_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(SynthError, match="is a file"):
        with output_lock(f, "synth filter"):
            pass


def test_live_lock_of_another_host_wins(tmp_path):
    out = tmp_path / "out"
    _foreign_lock(out, age_s=30)
    with pytest.raises(SynthError, match=r"in use by `synth filter` \(pid 4242 on elsewhere, since 2026"):
        with output_lock(out, "synth dedup", stale_after=120):
            pass
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == 4242  # untouched


def test_old_heartbeat_is_taken_over(tmp_path):
    out = tmp_path / "out"
    _foreign_lock(out, age_s=200)
    with output_lock(out, "synth dedup", stale_after=120) as held:
        assert json.loads((out / LOCK_NAME).read_text())["token"] == held.info["token"]
    assert sorted(os.listdir(out)) == []  # the stale file is not left under another name


def test_dead_process_of_this_host_is_taken_over_at_once(tmp_path):
    out = tmp_path / "out"
    pid, start = _dead_pid()
    _foreign_lock(out, host_id=lk.host_id(), pid=pid, pid_start=start)
    with output_lock(out, "synth filter") as held:
        assert json.loads((out / LOCK_NAME).read_text())["token"] == held.info["token"]


def test_live_process_of_this_host_is_not_taken_over(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        _foreign_lock(out, host_id=lk.host_id(), pid=proc.pid, pid_start=lk._pid_start(proc.pid))
        with pytest.raises(SynthError, match=f"pid {proc.pid}"):
            with output_lock(out, "synth filter"):
                pass
        # The same pid with another start time is a reused pid: its holder is gone.
        _foreign_lock(out, host_id=lk.host_id(), pid=proc.pid, pid_start="1")
        with output_lock(out, "synth filter"):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_unreadable_lock_being_written_counts_as_held(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("")  # made by O_EXCL, its JSON not written yet
    with pytest.raises(SynthError, match="in use by another synth command"):
        with output_lock(out, "synth filter"):
            pass
    t = time.time() - 1000
    os.utime(out / LOCK_NAME, (t, t))  # ... and never written: stale
    with output_lock(out, "synth filter"):
        pass


def test_heartbeat_refreshes_mtime(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, "synth filter", heartbeat=0.05):
        t = time.time() - 1000
        os.utime(out / LOCK_NAME, (t, t))
        time.sleep(0.5)
        assert time.time() - os.stat(out / LOCK_NAME).st_mtime < 5


def test_lock_taken_over_while_held_fails_at_the_end(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SynthError, match="taken over by another command"):
        with output_lock(out, "synth filter", heartbeat=0.05):
            (out / LOCK_NAME).unlink()  # as a taker does once this process looked dead
            _foreign_lock(out)
            time.sleep(0.5)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == 4242  # the new holder's lock stays


@pytest.mark.parametrize("trial", range(20))
def test_racing_takers_of_a_stale_lock_one_wins(tmp_path, trial):
    """Eight threads take over one stale lock at once: exactly one holds it; the rest see it
    held (same pid: live) and lose. Never two holders at once, also when a thread is so
    slow (a loaded machine) that it tries only after the winner has let go."""
    out = tmp_path / "out"
    _foreign_lock(out, age_s=1000)
    n = 8
    barrier = threading.Barrier(n)
    won, lost, release = [], [], threading.Event()
    holding, most = [0], [0]
    count = threading.Lock()

    def take():
        barrier.wait()
        try:
            with output_lock(out, "synth filter", stale_after=120) as held:
                with count:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                won.append(held.info["token"])
                release.wait(60)
                with count:
                    holding[0] -= 1
        except SynthError as e:
            lost.append(str(e))

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(won) + len(lost) < n and time.time() < deadline:
        time.sleep(0.01)
    all_tried_while_held = len(won) + len(lost) == n
    release.set()
    for t in threads:
        t.join()
    assert most[0] == 1, (won, lost)
    assert len(won) + len(lost) == n and all("in use by `synth filter`" in m for m in lost), lost
    if all_tried_while_held:
        assert len(won) == 1, (won, lost)
    assert os.listdir(out) == []


def test_takeover_left_half_done_by_a_dead_taker_is_cleared(tmp_path):
    out = tmp_path / "out"
    _foreign_lock(out, age_s=1000)
    mutex = out / (LOCK_NAME + ".takeover")
    mutex.write_text("")  # a taker died between its two exclusive creates a minute ago
    t = time.time() - 60
    os.utime(mutex, (t, t))
    with output_lock(out, "synth filter", stale_after=120):
        assert not mutex.exists()
    assert os.listdir(out) == []


def test_object_store_lock_best_effort(tmp_path):
    """The object-store path, through pyarrow's local filesystem (same calls as s3://)."""
    from pyarrow import fs as pafs

    root = str(tmp_path / "bucket" / "out")

    def store(cmd):
        return lk._StoreLock(pafs.LocalFileSystem(), root, "s3://bucket/out", cmd, 120, settle=0.05)

    a = store("synth filter")
    a.acquire()
    assert json.loads(Path(root, LOCK_NAME).read_text())["token"] == a.info["token"]
    with pytest.raises(SynthError, match=r"s3://bucket/out is in use by `synth filter`"):
        store("synth dedup").acquire()
    assert a.heartbeat()
    a.release()
    assert not Path(root, LOCK_NAME).exists()
    _foreign_lock(Path(root), age_s=1000)  # stale: overwritten
    b = store("synth dedup")
    b.acquire()
    _foreign_lock(Path(root))  # replaced under its holder: the heartbeat says so
    assert not b.heartbeat()
    b.release()
    assert Path(root, LOCK_NAME).exists()  # another's lock is not deleted


# --------------------------------------------------------------------------- real commands


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", "from synth.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


@pytest.fixture(scope="module")
def many_rows(tmp_path_factory):
    """30 shards of 1,500 small rows (45,000 ids); every 7th row is a refusal (a reject)."""
    src = tmp_path_factory.mktemp("many") / "in"
    ids = []
    for k in range(30):
        rows = [f"r{k}-{i}" for i in range(1500)]
        text = [("I'm sorry, but I can't help with that request." if i % 7 == 0 else
                 f"row {k} {i}: a few words of text for the quality filter to read")
                for i in range(1500)]
        write_shard(pa.table({"id": rows, "response": text, "finish_reason": ["stop"] * 1500}),
                    src, f"part-{k:06d}.parquet")
        ids += rows
    return src, sorted(ids)


@pytest.mark.parametrize("trial", range(3))
def test_two_concurrent_filters_one_wins_nothing_lost(tmp_path, many_rows, trial):
    src, ids = many_rows
    out = tmp_path / "out"
    procs = [_cli("filter", str(src), str(out)) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser_err = next(err for code, _, err in results if code == 2)
    lines = [line for line in loser_err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), loser_err
    # Started together, the loser meets the lock; started late, an already finished OUT.
    assert "is in use by `synth filter` (pid" in lines[0] or "is not empty" in lines[0], lines[0]
    kept = [i for f in list_shards(out) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    rejected = [i for f in list_rejects(out) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert sorted(kept + rejected) == ids  # every row exactly once
    assert len(rejected) == sum(1 for i in ids if int(i.split("-")[1]) % 7 == 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["rows"] == len(kept)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == ["manifest.json", "rejects"]


def test_filter_into_a_locked_out_exits_2_and_writes_nothing(tmp_path, many_rows):
    """Deterministic overlap: OUT is held (here by this test) while `synth filter` starts."""
    src, ids = many_rows
    out = tmp_path / "out"
    with output_lock(out, "synth dedup"):
        p = _cli("filter", str(src), str(out))
        code, _, err = p.wait(timeout=120), *p.communicate()
        assert code == 2, err
        assert err.strip().count("\n") == 0 and err.startswith("error: output "), err
        assert f"in use by `synth dedup` (pid {os.getpid()} on " in err
        assert os.listdir(out) == [LOCK_NAME]  # nothing written, the holder's lock untouched
    p = _cli("filter", str(src), str(out))
    assert p.wait(timeout=120) == 0, p.communicate()
    kept = [i for f in list_shards(out) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    rejected = [i for f in list_rejects(out) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert sorted(kept + rejected) == ids


def test_two_concurrent_fake_runs_one_wins_exact(tmp_path, request):
    """Two `synth run`s of one pipeline into one OUT (fake engine, on this session's Ray):
    one finishes with every row exactly once, the other exits 2 naming it."""
    ray_session = request.getfixturevalue("ray_session")
    from tests.conftest import SAMPLE, write_pipeline
    from tests.test_kill_resume import _env, assert_exact, expected_samples

    pipe = write_pipeline(
        tmp_path / "f.yaml", name="lockfake",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": 2, "engine_kwargs": {"delay": 0.1}},
        sampling={"n": 2}, stages=[{"quality_filter": {"min_words": 6}}],
    )
    out = tmp_path / "out"
    env = _env(tmp_path)
    address = ray_session.get_runtime_context().gcs_address
    args = ("run", str(pipe), "--out", str(out), "--limit", "12", "--address", address)
    procs = [subprocess.Popen([sys.executable, "-c", "from synth.cli import main; main()", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(env, PYTHONPATH=str(ROOT)), cwd=ROOT) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in results) == [0, 2], results
    err = next(e for c, _, e in results if c == 2)
    lines = [line for line in err.splitlines() if line.strip()]
    # Started together the loser meets the lock; a loser slower than a whole run resumes
    # a finished run instead (exit 0), which this pair did not do.
    assert len(lines) == 1 and "is in use by `synth run` (pid" in lines[0], err
    assert_exact(out, expected_samples(pipe, 12))
    assert not (out / LOCK_NAME).exists()
