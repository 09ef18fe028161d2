"""Continuous-batched generation: `generate_table` over engine actors that serve several batches
at once, and per-row isolation of prompts the engine cannot generate.

The fake-engine tests are fast; the vLLM ones share the session's engine actor with
tests/test_e2e_vllm.py (same engine spec: the embedded model, default engine kwargs).
"""

from __future__ import annotations

import json
import time

import pytest

from synth.backends.base import EngineSpec, Sampling
from synth.backends.generate import PROMPT_COLUMNS, generate_table, output_schema

pytestmark = pytest.mark.timeout(900)


def prompt_table(questions: list[str], prefix: str = "p"):
    import pyarrow as pa

    rows = {c: [] for c in PROMPT_COLUMNS}
    for i, q in enumerate(questions):
        rows["prompt_id"].append(f"{prefix}{i}")
        rows["seed_id"].append(f"{prefix}-seed{i}")
        rows["source"].append("test")
        rows["chunk_index"].append(0)
        rows["task"].append("chat")
        rows["seed_text"].append(q)
        rows["messages"].append(json.dumps([{"role": "user", "content": q}]))
        rows["meta"].append(None)
        rows["teacher"].append(None)
        rows["variant"].append("")
    return pa.Table.from_pydict(rows, schema=pa.schema(
        [(c, pa.int32() if c == "chunk_index" else pa.string()) for c in PROMPT_COLUMNS]))


# --------------------------------------------------------------------------- fake engine


def test_fake_engine_through_generate_table(ray_session):
    from synth.backends.pool import get_engines

    (engine,) = get_engines(EngineSpec(backend="fake", model="fake-gt", concurrency=1))
    s = Sampling(n=2, max_tokens=8, logprobs=2, temperature=0.0)
    t = generate_table(engine, prompt_table(["one", "two", "three"]), s, "fake-gt", "gt")
    assert t.schema == output_schema()
    rows = t.to_pylist()
    assert [r["prompt_id"] for r in rows] == ["p0", "p0", "p1", "p1", "p2", "p2"]
    assert [r["sample_index"] for r in rows] == [0, 1] * 3
    assert len({r["id"] for r in rows}) == 6
    assert all(r["reject_reason"] is None and r["finish_reason"] == "stop" for r in rows)
    assert all(r["response"] and len(r["top_logprob_ids"][0]) == 2 for r in rows)
    assert all(r["model"] == "fake-gt" and r["worker"] for r in rows)
    # Empty input: an empty table of the same schema, no engine call.
    empty = generate_table(engine, prompt_table([]), s, "fake-gt", "gt")
    assert empty.num_rows == 0 and empty.schema == output_schema()


def test_sync_engine_serves_concurrent_calls_one_at_a_time(ray_session):
    """Two batches sent at once to a fake engine actor (not thread-safe: a lock) both complete,
    one after the other, with the results each gives alone; the actor answers `node()` while
    a batch is running (the async actor is not blocked by the engine's thread)."""
    import ray

    from synth.backends.pool import get_engines

    (engine,) = get_engines(EngineSpec(backend="fake", model="fake-lock",
                                       engine_kwargs={"delay": 1.0}, concurrency=1))
    ray.get(engine.node.remote())
    s = Sampling(n=1, max_tokens=8)
    a, b = ([[{"role": "user", "content": f"{k} {i}"}] for i in range(3)] for k in "ab")
    t0 = time.time()
    fa = engine.generate.remote(a, ["a0", "a1", "a2"], s)
    fb = engine.generate.remote(b, ["b0", "b1", "b2"], s)
    time.sleep(0.3)
    assert ray.get(engine.node.remote(), timeout=0.5)  # served while a batch sleeps
    (ra, _), (rb, _) = ray.get([fa, fb])
    assert time.time() - t0 >= 2.0  # the lock: one call after the other
    assert ray.get(engine.generate.remote(a, ["a0", "a1", "a2"], s))[0] == ra
    assert ray.get(engine.generate.remote(b, ["b0", "b1", "b2"], s))[0] == rb


def test_in_flight_is_validated(tmp_path):
    from synth.config import load_pipeline
    from synth.errors import SynthError
    from tests.conftest import SAMPLE, write_pipeline

    pipe = write_pipeline(tmp_path / "p.yaml", name="x", seeds={"path": str(SAMPLE / "seeds")},
                          prompt={"template": "chat"}, model={"backend": "fake", "in_flight": 0})
    with pytest.raises(SynthError, match="model.in_flight.*>= 1"):
        load_pipeline(pipe)
    pipe = write_pipeline(tmp_path / "p.yaml", name="x", seeds={"path": str(SAMPLE / "seeds")},
                          prompt={"template": "chat"}, model={"backend": "fake", "in_flight": 7})
    assert load_pipeline(pipe).model.in_flight == 7


# --------------------------------------------------------------------------- real vLLM


@pytest.fixture(scope="module")
def vllm_engine(ray_session, model_path):
    """The session's vLLM engine actor (the spec `run_pipeline` builds from a default model
    section, so test_e2e_vllm's runs share it)."""
    from synth.backends.pool import get_engines

    (engine,) = get_engines(EngineSpec(backend="vllm", model=model_path, concurrency=1))
    ray_session.get(engine.node.remote())
    return engine


QUESTIONS = ["What is the capital of France?", "Name three colors.", "Write a haiku about rain.",
             "What is 2 plus 2?", "Say hello.", "Explain gravity in one sentence."]


@pytest.mark.slow
def test_too_long_prompt_is_one_rejected_row(vllm_engine):
    """A prompt longer than the model's context, between normal ones: its row is rejected
    with gen.prompt_too_long, the others are generated."""
    s = Sampling(n=1, temperature=0.0, max_tokens=8)
    qs = [QUESTIONS[0], "word " * 9000, QUESTIONS[1]]
    rows = generate_table(vllm_engine, prompt_table(qs), s, "smollm2-135m", "iso").to_pylist()
    assert [r["prompt_id"] for r in rows] == ["p0", "p1", "p2"]
    bad = rows[1]
    assert bad["reject_reason"] == "gen.prompt_too_long" and bad["finish_reason"] == "error"
    assert bad["response"] == "" and bad["completion_tokens"] == 0
    for r in (rows[0], rows[2]):
        assert r["reject_reason"] is None and r["finish_reason"] in ("stop", "length")
        assert r["response"].strip() and r["completion_tokens"] == len(r["token_ids"]) > 0


@pytest.mark.slow
def test_concurrent_batches_match_one_at_a_time(vllm_engine):
    """Two batches submitted to one engine actor at once both complete, with the tokens each
    gives alone (greedy): the engine serves requests of several batches together."""
    from concurrent.futures import ThreadPoolExecutor

    s = Sampling(n=1, temperature=0.0, max_tokens=12)
    a, b = prompt_table(QUESTIONS[:3], "a"), prompt_table(QUESTIONS[3:], "b")
    alone = [generate_table(vllm_engine, t, s, "m", "conc") for t in (a, b)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda t: generate_table(vllm_engine, t, s, "m", "conc"), (a, b)))
    for x, y in zip(alone, together):
        assert x.column("token_ids").to_pylist() == y.column("token_ids").to_pylist()
        assert x.column("response").to_pylist() == y.column("response").to_pylist()
        assert x.column("reject_reason").null_count == x.num_rows


@pytest.mark.slow
def test_pipeline_writes_too_long_prompt_to_rejects(tmp_path, vllm_engine):
    """Through run_pipeline: the too-long prompt's row lands in OUT/rejects/ with its reason,
    the run completes, every other row is a normal shard row."""
    from synth.config import load_pipeline
    from synth.io.shards import list_rejects, read_shards
    from synth.pipeline.run import run_pipeline
    from tests.conftest import write_pipeline

    import pyarrow.parquet as pq

    seeds = tmp_path / "seeds.jsonl"
    texts = [QUESTIONS[0], "word " * 9000, QUESTIONS[4]]
    seeds.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pipe = write_pipeline(tmp_path / "p.yaml", name="toolong",
                          seeds={"path": str(seeds), "chunk_tokens": 0}, prompt={"template": "chat"},
                          model={"name": "smollm2-135m"},
                          sampling={"temperature": 0.0, "max_tokens": 8})
    r = run_pipeline(load_pipeline(pipe), out=tmp_path / "out")
    kept = read_shards(tmp_path / "out").to_pylist()
    rejected = pq.read_table(list_rejects(tmp_path / "out")).to_pylist()
    assert len(kept) == 2 and all(x["response"].strip() for x in kept)
    assert [x["reject_reason"] for x in rejected] == ["gen.prompt_too_long"]
    assert rejected[0]["seed_text"].startswith("word word")
    assert r.rejected_rows == 1 and r.reject_reasons == {"gen.prompt_too_long": 1}
