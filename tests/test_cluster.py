"""The same pipeline on an existing multi-node Ray cluster, for real.

Two test hosts (network namespaces made by `tests/netns.py`), a Ray head started with
`ray start --head` on the first and a second node joined with `ray start --address=...` on the
second, then `synth run --address HEAD:6379` as a separate process on the head host, with the
real vLLM engine: `model.concurrency: 2` gives two engine actors of one CPU each, placed with
Ray's SPREAD strategy, so one engine per node. The checks: exit 0, every expected row exactly
once, non-empty responses, rows generated on BOTH nodes (the `worker` column and the manifest),
and a complete manifest.

Each node offers one logical CPU, so the two engines take every CPU of the cluster: the run must
still make progress (Ray Data's input must not wait for a CPU; see `_generate` in
synth/pipeline/run.py). `SYNTH_TEST_NODE_CPUS` changes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import netns
from tests.conftest import SAMPLE, write_pipeline

pytestmark = pytest.mark.slow

SYNTH = str(Path(sys.executable).with_name("synth"))
LIMIT = 32
# Two vLLM engines start on one core each while the rest of the cluster shares those cores:
# about 2 min on a quiet machine, over 6 min seen under a load of 10-14 (CI).
RUN_TIMEOUT_S = 1200
NODE_CPUS = int(os.environ.get("SYNTH_TEST_NODE_CPUS", "1"))


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster on two test hosts; removed with everything it made afterwards."""
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(f"multi-node test needs network namespaces: {reason}")
    # Each node's raylet passes its environment to the actors it starts: a small KV cache per
    # engine, and each test host's engine bound to a core of its own (as on two real hosts;
    # vLLM's automatic binding would put both engines on the same core of this machine).
    node_env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    head_env, worker_env = dict(node_env), dict(node_env)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        head_env["VLLM_CPU_OMP_THREADS_BIND"] = str(cores[0])
        worker_env["VLLM_CPU_OMP_THREADS_BIND"] = str(cores[1])
    with netns.two_hosts() as (h1, h2):
        with netns.ray_cluster(h1, h2, num_cpus=NODE_CPUS, head_env=head_env,
                               worker_env=worker_env) as c:
            print(f"\n[cluster] {c.address} up: {c.timings}")
            yield c


def _pipeline(tmp_path: Path, backend: str, engine_kwargs: dict) -> Path:
    return write_pipeline(
        tmp_path / "cluster.yaml",
        name="cluster",
        seeds={"path": str(SAMPLE / "seeds")},
        prompt={"template": "rephrase_distill"},
        model={"name": "smollm2-135m", "backend": backend, "concurrency": 2, "batch_size": 8,
               "engine_kwargs": engine_kwargs},
        sampling={"max_tokens": 16, "n": 1, "temperature": 0.7},
    )


def _run_on_cluster(cluster, pipe: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    argv = [SYNTH, "run", str(pipe), "--address", cluster.address, "--out", str(out),
            "--limit", str(LIMIT)]
    t0 = time.time()
    try:
        r = subprocess.run(cluster.head.cmd(argv), cwd=cwd, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT_S,
                           env=cluster.client_env(VLLM_CPU_KVCACHE_SPACE="1"))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"synth run did not finish in {RUN_TIMEOUT_S} s\n"
                    f"--- stderr\n{(e.stderr or b'')[-4000:]!r}\n{cluster.logs()}")
    print(f"[cluster] synth run: {time.time() - t0:.1f} s\n{r.stdout.strip()}")
    assert r.returncode == 0, (f"synth run exited {r.returncode}\n--- stdout\n{r.stdout[-3000:]}"
                               f"\n--- stderr\n{r.stderr[-6000:]}\n{cluster.logs()}")
    return r


@pytest.mark.timeout(1500)
def test_pipeline_runs_on_two_node_cluster(cluster, model_path, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synth.config import load_pipeline
    from synth.io.shards import list_shards, row_id
    from synth.pipeline.prompts import build_prompts

    assert cluster.alive_nodes() == 2
    pipe = _pipeline(tmp_path, "vllm", {"max_model_len": 2048})
    cfg = load_pipeline(pipe)
    prompts = build_prompts(cfg, model_path=model_path, limit=LIMIT)
    assert prompts.num_rows == LIMIT
    expected = {row_id(cfg.name, s, c, 0) for s, c in zip(prompts.column("seed_id").to_pylist(),
                                                           prompts.column("chunk_index").to_pylist())}
    assert len(expected) == LIMIT

    out = tmp_path / "out"
    _run_on_cluster(cluster, pipe, out, cwd=tmp_path)

    shards = list_shards(out)
    assert shards, f"no shards in {out}"
    table = pa.concat_tables([pq.read_table(s) for s in shards])
    ids = table.column("id").to_pylist()
    assert table.num_rows == LIMIT
    assert len(set(ids)) == LIMIT
    assert set(ids) == expected
    responses = table.column("response").to_pylist()
    assert all(r and r.strip() for r in responses), "empty responses"
    assert all((t or 0) > 0 for t in table.column("completion_tokens").to_pylist())

    # Both nodes did work: rows carry the IP of the node whose engine generated them.
    per_node: dict[str, int] = {}
    for w in table.column("worker").to_pylist():
        per_node[w] = per_node.get(w, 0) + 1
    print(f"[cluster] rows per node: {per_node}")
    assert set(per_node) == {cluster.head.ip, cluster.worker.ip}, per_node
    assert all(n > 0 for n in per_node.values())

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["rows"] == LIMIT
    assert manifest["counts"]["missing_rows"] == 0
    assert manifest["last_run"]["workers"] == per_node
    # Shards were written by workers on both nodes, straight into the one output folder.
    writers: dict[str, int] = {}
    for m in (out / "_completions").glob("*.json"):
        w = json.loads(m.read_text())["writer"]
        writers[w] = writers.get(w, 0) + 1
    print(f"[cluster] shards written per node: {writers}")
    assert set(writers) == {cluster.head.ip, cluster.worker.ip}, writers
    assert sum(writers.values()) == len(shards)
    assert manifest["last_run"]["writers"] == writers
    print(f"[cluster] last_run: {manifest['last_run']}")
