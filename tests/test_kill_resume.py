"""Kill -9 a real `synth run` mid-way, start it again: every row exactly once, and finished
work is not generated again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.config import load_pipeline
from synth.io.shards import list_shards, read_shards, row_id
from synth.pipeline.prompts import build_prompts
from tests.conftest import SAMPLE, write_pipeline

pytestmark = pytest.mark.slow

SYNTH = str(Path(sys.executable).with_name("synth"))


def _expected(pipe: Path, limit: int, model_path: str | None) -> set[str]:
    cfg = load_pipeline(pipe)
    p = build_prompts(cfg, model_path=model_path, limit=limit)
    return {row_id(cfg.name, s, c, j)
            for s, c in zip(p.column("seed_id").to_pylist(), p.column("chunk_index").to_pylist())
            for j in range(cfg.sampling.n)}


def _start(pipe: Path, out: Path, limit: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [SYNTH, "run", str(pipe), "--out", str(out), "--limit", str(limit)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: the kill takes its local Ray too
        env=env,
    )


def _kill_after_shards(proc: subprocess.Popen, out: Path, min_shards: int, timeout: float) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = len(list_shards(out)) if out.exists() else 0
        if n >= min_shards:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return n
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be killed:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no shard appeared in time")


def _env(tmp_path: Path) -> dict:
    import tempfile

    # Ray's unix socket paths must stay under 107 bytes: a short temp dir of its own.
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", RAY_TMPDIR=tempfile.mkdtemp(prefix="rk", dir="/tmp"))
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.mark.timeout(900)
def test_sigkill_then_resume_real_vllm(tmp_path, model_path):
    pipe = write_pipeline(
        tmp_path / "k.yaml", name="killme",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "rephrase_list"},
        model={"name": "smollm2-135m", "batch_size": 4},
        sampling={"max_tokens": 32, "n": 1},
    )
    out = tmp_path / "out"
    limit = 16
    expected = _expected(pipe, limit, model_path)
    env = _env(tmp_path)

    proc = _start(pipe, out, limit, env)
    _kill_after_shards(proc, out, 1, timeout=600)
    before = read_shards(out, columns=["id"]).column("id").to_pylist()
    assert 0 < len(before) < len(expected)
    assert set(before) <= expected
    # Nothing half-written is visible: only complete shards, markers, the manifest and temp files.
    assert {p.name for p in out.iterdir()} - {x.name for x in list_shards(out)} <= {
        "manifest.json", ".tmp", "_completions", ".synth.lock"}
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    r = subprocess.run([SYNTH, "run", str(pipe), "--out", str(out), "--limit", str(limit)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = read_shards(out, columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(expected)  # no duplicate
    assert set(ids) == expected  # no missing row
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["attempts"] == 2
    # Only what was missing was generated again: every row on disk at the kill counts as done
    # (workers of the killed run may finish a unit in flight before they notice; n = 1).
    assert m["last_run"]["resumed_prompts"] >= len(set(before))
    assert m["last_run"]["generated_rows"] == len(expected) - m["last_run"]["resumed_prompts"]
    t = read_shards(out)
    assert all(s.strip() for s in t.column("response").to_pylist())


# --------------------------------------------------------------------------- random kills
# Shared with tests/test_reliability.py.


def expected_samples(pipe: Path, limit: int | None,
                     model_path: str | None = None) -> dict[str, list[str]]:
    """prompt_id -> the ids of its samples: what a finished run holds."""
    from synth.pipeline.prompts import sample_ids as _sample_ids

    cfg = load_pipeline(pipe)
    p = build_prompts(cfg, model_path=model_path, limit=limit)
    return dict(zip(p.column("prompt_id").to_pylist(), _sample_ids(p, cfg.name, cfg.sampling.n)))


def check_whole(out: Path) -> tuple[list[str], list[str]]:
    """What a reader may see in an output folder at any moment: every shard (kept and
    rejects) reads in full, the manifest (if any) and every completion marker are valid JSON,
    and nothing else is there but the temp folders. Returns (kept ids, rejected ids)."""
    import pyarrow.parquet as pq

    from synth.io.shards import list_rejects

    if not out.exists():
        return [], []
    allowed = {"manifest.json", ".tmp", "rejects", "_completions", ".synth.lock"}
    stray = [p.name for p in out.iterdir() if p.name not in allowed and not _is_shard(p)]
    if (out / "rejects").exists():
        stray += [f"rejects/{p.name}" for p in (out / "rejects").iterdir()
                  if p.name != ".tmp" and not _is_shard(p)]
    if (out / "_completions").exists():
        for p in (out / "_completions").iterdir():
            if p.name == ".tmp":
                continue
            if p.suffix != ".json":
                stray.append(f"_completions/{p.name}")
            else:
                json.loads(p.read_text())
    assert not stray, f"files outside .tmp that are not shards: {stray}"
    if (out / "manifest.json").exists():
        json.loads((out / "manifest.json").read_text())
    kept = [i for f in list_shards(out) for i in pq.read_table(f).column("id").to_pylist()]
    rejected = [i for f in list_rejects(out) for i in pq.read_table(f).column("id").to_pylist()]
    return kept, rejected


def complete_units(out: Path) -> set[str]:
    """The units whose writing finished: a unit's worker writes its rejects shard, then its
    kept shard, then its completion marker, so a unit is complete once its marker or its kept
    shard exists, or its rejects shard when nothing of the unit was kept (its footer says)."""
    from synth.io.shards import read_footer

    done = {p.stem for p in (out / "_completions").glob("*.json")} if out.exists() else set()
    done |= {p.stem.split("-", 1)[1] for p in list_shards(out) if not p.stem.endswith("-dedup")}
    for p in (out / "rejects").glob("part-*.parquet") if out.exists() else []:
        footer = read_footer(p) or {}
        if footer.get("stats", {}).get("rows") == 0:
            done.add(p.stem.split("-", 1)[1])
    return done


def killed_run_prompts(out: Path, expected: dict[str, list[str]]) -> set[str]:
    """After the resume: the prompts of the units that the killed run (attempt 1) wrote, as
    their completion markers record (the resume writes a missing marker from the footer)."""
    import pyarrow.parquet as pq

    units = set()
    for p in (out / "_completions").glob("*.json"):
        if json.loads(p.read_text()).get("attempt") == 1:
            units.add(p.stem)
    have = set()
    for folder in (out, out / "rejects"):
        for f in folder.glob("part-*.parquet"):
            if f.stem.split("-", 1)[1].removesuffix("-dedup") in units:
                have.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return {p for p, ids in expected.items() if all(i in have for i in ids)}


def _is_shard(p: Path) -> bool:
    return p.is_file() and p.name.startswith("part-") and p.name.endswith(".parquet")


def assert_exact(out: Path, expected: dict[str, list[str]]) -> None:
    """Every expected row is on disk exactly once, kept or rejected, and nothing else is."""
    kept, rejected = check_whole(out)
    ids = kept + rejected
    want = {i for v in expected.values() for i in v}
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate rows"
    assert set(ids) == want, f"missing {len(want - set(ids))}, unexpected {len(set(ids) - want)}"


def finished_prompts(out: Path, expected: dict[str, list[str]]) -> set[str]:
    """The prompts whose unit was complete (see `complete_units`): finished work, which a
    resume must not generate again. (A unit cut between its rejects and its kept shard is
    not finished: its rows are all generated again and overwrite the rejects shard.)"""
    import pyarrow.parquet as pq

    if not out.exists():
        return set()
    units = complete_units(out)
    have = set()
    for folder in (out, out / "rejects"):
        for f in folder.glob("part-*.parquet"):
            if f.stem.split("-", 1)[1].removesuffix("-dedup") in units or f.stem.endswith("-dedup"):
                have.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return {p for p, ids in expected.items() if all(i in have for i in ids)}


def _kill_trial(k: int, pipe: Path, out: Path, limit: int, expected: dict, env: dict,
                address: str | None, seed: int) -> dict:
    """Start a run, SIGKILL it (and, without `address`, the local Ray it started) at a random
    point, check what is on disk, resume, check again. Returns what happened."""
    import random
    import shutil
    import tempfile

    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    ray_tmp = tempfile.mkdtemp(prefix="rk", dir="/tmp")  # a local Ray of its own
    try:
        return _kill_and_resume(k, pipe, out, limit, expected, dict(env, RAY_TMPDIR=ray_tmp),
                                address, rng)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _kill_and_resume(k, pipe, out, limit, expected, env, address, rng) -> dict:
    argv = [SYNTH, "run", str(pipe), "--out", str(out), "--limit", str(limit)]
    argv += ["--address", address] if address else []
    killed_sent = out.parent / f"sent-{k}-killed.txt"
    kill_env = dict(env, SYNTH_FAKE_COUNT_FILE=str(killed_sent))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=kill_env)
    t0 = time.time()
    if rng.random() < 0.25:  # a random moment of the start: Ray, prompts, engines, manifest
        how, deadline = "time", t0 + rng.uniform(0.3, 8.0)
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
    else:  # up to 1 s after the j-th shard lands: between shards, in the stages, dedup, the end
        j = rng.randint(1, limit // 2)
        how, deadline = f"shard {j}", t0 + 180
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and len(list_shards(out)) >= j:
                time.sleep(rng.uniform(0.0, 1.0))
                break
            time.sleep(0.02)
    at = time.time() - t0
    finished_first = proc.poll() is not None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    # At the kill: only whole shards and a whole manifest are visible.
    done_before = finished_prompts(out, expected)
    sent_file = out.parent / f"sent-{k}.txt"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       env=dict(env, SYNTH_FAKE_COUNT_FILE=str(sent_file)))
    assert r.returncode == 0, f"trial {k}: resume failed\n{r.stdout}{r.stderr[-3000:]}"
    assert_exact(out, expected)
    # Finished work is never generated again, and everything else exactly once. Ray's workers
    # are not in the driver's process group (its raylet starts them in sessions of their own),
    # so with or without `--address` a worker of the killed run may still finish a unit in
    # flight before Ray reaps it (its marker names attempt 1, the killed run): what the resume
    # found done is what attempt 1 finished, a superset of `done_before`.
    done_by_killed = killed_run_prompts(out, expected)
    assert done_before <= done_by_killed, f"trial {k}: finished units written again"
    sent = sent_file.read_text().split() if sent_file.exists() else []
    assert not set(sent) & done_by_killed, f"trial {k}: finished prompts generated again"
    assert sorted(sent) == sorted(set(expected) - done_by_killed), f"trial {k}: sent {len(sent)}"
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["counts"]["missing_rows"] == 0
    before = killed_sent.read_text().split() if killed_sent.exists() else []
    return {"trial": k, "kill": how, "at_s": round(at, 1), "finished_first": finished_first,
            "sent_before_kill": len(before), "done_before": len(done_before),
            "sent_by_resume": len(sent), "cluster": bool(address)}


@pytest.mark.timeout(900)
def test_sigkill_at_random_points_fake_engine(tmp_path, ray_session):
    """6 runs killed with SIGKILL at random points (a random moment of the start, or up to
    1 s after a random shard lands: between shards, in the stages, in dedup, at the end),
    each resumed: every trial ends with exactly the expected rows, each once, kept or
    rejected; a prompt whose rows were on disk at the kill is never generated again; every
    other prompt is generated exactly once by the resume.

    Two trials run `synth run` with its own local Ray, killed with its whole process group;
    the other four connect to this session's Ray (`--address`), where only the driver dies
    (faster: no Ray start per run). Three trials run at a time."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = write_pipeline(
        tmp_path / "f.yaml", name="killfake",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": 2,
               "engine_kwargs": {"delay": 0.25}},
        sampling={"n": 2},
        stages=[{"quality_filter": {"min_words": 6}}],  # some rows go to rejects/
        dedup={"method": "exact", "column": "response"},
    )
    limit = 20
    expected = _expected_samples_checked(pipe, limit)
    env = _env(tmp_path)
    address = ray_session.get_runtime_context().gcs_address
    trials = 6
    t0 = time.time()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(_kill_trial, k, pipe, tmp_path / f"t{k}" / "out", limit, expected,
                               env, None if k < 2 else address, 1000 + k)
                   for k in range(trials)]
        results = [f.result() for f in futures]
    for r in results:
        print(r)
    print(f"{trials} kill trials in {time.time() - t0:.0f}s")
    assert len(results) == trials
    # The kills landed at different points: before any row and between shards.
    assert any(0 < r["done_before"] < len(expected) for r in results)


def _expected_samples_checked(pipe: Path, limit: int) -> dict[str, list[str]]:
    expected = expected_samples(pipe, limit)
    assert len(expected) == limit
    return expected
