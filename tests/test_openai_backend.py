"""The OpenAI-compatible backend against a local stub server (tests/openai_stub.py).

Unit tests drive `OpenAIEngine` directly (no Ray); the last test runs a whole pipeline through
`synth.pipeline.run.run_pipeline` on the real Ray runtime, with the engine actor talking to the stub.
"""

from __future__ import annotations

import json
import threading
import time
import types

import pytest

from synth.backends import openai_engine as oe
from synth.backends.base import Sampling, request_seed
from synth.backends.openai_engine import OpenAIEngine, OpenAIError
from tests.conftest import SAMPLE, write_pipeline
from tests.openai_stub import (FULL_TOKENS, StubServer, best_alternatives, prompt_token_count,
                               stub_completion)

pytestmark = pytest.mark.timeout(120)


def convs(k: int) -> tuple[list[list[dict]], list[str]]:
    cs = [[{"role": "system", "content": "be brief"},
           {"role": "user", "content": f"question number {i}"}] for i in range(k)]
    return cs, [f"pid-{i}" for i in range(k)]


@pytest.fixture
def stub():
    """Start stub servers on demand: `stub(**options)`; all are stopped after the test."""
    servers = []

    def start(**kw) -> StubServer:
        s = StubServer(**kw).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def backoff(monkeypatch):
    """Record the engine's backoff sleeps and shorten them to 10 ms (keeps retry tests fast)."""
    asked: list[float] = []
    real_sleep = time.sleep

    def sleep(s: float) -> None:
        asked.append(s)
        real_sleep(0.01)

    monkeypatch.setattr(oe, "time", types.SimpleNamespace(sleep=sleep))
    return asked


def engine(s: StubServer, **kw) -> OpenAIEngine:
    kw.setdefault("concurrency", 4)
    kw.setdefault("max_retries", 3)
    kw.setdefault("request_timeout", 10.0)
    extra = kw.pop("engine_kwargs", None)
    return OpenAIEngine("stub-model", extra, base_url=s.base_url, **kw)


# --------------------------------------------------------------------------- responses


def test_n_samples_match_the_server(stub):
    s = stub()
    cs, pids = convs(5)
    sampling = Sampling(n=3, temperature=0.5, top_p=0.9, max_tokens=64, seed=7)
    out = engine(s).generate(cs, pids, sampling)

    assert len(out) == 5 and all(len(samples) == 3 for samples in out)
    for conv, samples in zip(cs, out):
        for j, smp in enumerate(samples):
            want = stub_completion(conv, j, 64)
            assert smp["response"] == want["content"]
            assert smp["finish_reason"] == "stop"
            assert smp["prompt_tokens"] == prompt_token_count(conv)
            assert smp["completion_tokens"] == FULL_TOKENS  # usage total // n
            assert smp["token_ids"] is smp["top_logprob_ids"] is smp["top_logprobs"] is None
        assert len({smp["response"] for smp in samples}) == 3  # distinct choices, in index order

    # One request per conversation, carrying the sampling parameters and a per-prompt seed.
    assert s.requests == 5
    by_text = {b["messages"][-1]["content"]: b for b in s.bodies}
    for conv, pid in zip(cs, pids):
        b = by_text[conv[-1]["content"]]
        assert b["model"] == "stub-model" and b["messages"] == conv
        assert (b["n"], b["temperature"], b["top_p"], b["max_tokens"]) == (3, 0.5, 0.9, 64)
        assert b["seed"] == request_seed(7, pid)
        assert "logprobs" not in b


def test_results_keep_input_order(stub):
    s = stub(delay=0.0)
    cs, pids = convs(20)
    out = engine(s, concurrency=8).generate(cs, pids, Sampling(n=1))
    assert [o[0]["response"] for o in out] == [stub_completion(c, 0)["content"] for c in cs]


def test_max_tokens_truncates_with_finish_reason_length(stub):
    s = stub()
    cs, pids = convs(2)
    out = engine(s).generate(cs, pids, Sampling(n=2, max_tokens=3))
    for conv, samples in zip(cs, out):
        for j, smp in enumerate(samples):
            assert smp["finish_reason"] == "length"
            assert smp["completion_tokens"] == 3
            assert smp["response"] == stub_completion(conv, j, 3)["content"]


def test_logprob_token_ids_parsed(stub):
    """Token ids are asked for by default (no engine_kwargs needed), with one more
    alternative than kept (see the next test)."""
    s = stub()
    cs, pids = convs(3)
    out = engine(s).generate(cs, pids, Sampling(n=2, max_tokens=5, logprobs=4))

    for b in s.bodies:
        assert b["logprobs"] is True and b["top_logprobs"] == 5
        assert b["return_tokens_as_token_ids"] is True
    for conv, samples in zip(cs, out):
        for j, smp in enumerate(samples):
            ids = stub_completion(conv, j, 5)["token_ids"]
            assert smp["token_ids"] == ids and all(isinstance(t, int) for t in ids)
            assert smp["completion_tokens"] == len(ids) == 5
            assert smp["finish_reason"] == "length"
            assert smp["top_logprob_ids"] == [[t + k for k in range(4)] for t in ids]
            assert smp["top_logprobs"] == [[-0.25 * k for k in range(4)] for _ in ids]
            assert all(isinstance(x, float) for row in smp["top_logprobs"] for x in row)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_top_k_is_best_first_and_exactly_k_when_the_server_lists_the_sampled_token_first(stub, k):
    """vLLM's server lists the sampled token first and cuts to what was asked: read as given,
    the list is not best-first and, when the sampled token is not among the best k, misses
    the k-th best. The engine asks for k + 1, sorts and keeps k: the true top k, best-first."""
    s = stub(sampled_first=True)
    cs, pids = convs(2)
    out = engine(s).generate(cs, pids, Sampling(n=1, max_tokens=6, logprobs=k))
    for conv, (smp,) in zip(cs, out):
        ids = stub_completion(conv, 0, 6)["token_ids"]
        assert smp["token_ids"] == ids
        for t, top_ids, top_lps in zip(ids, smp["top_logprob_ids"], smp["top_logprobs"]):
            want = best_alternatives(t, sampled_first=True)[:k]
            assert top_ids == [i for i, _ in want] and top_lps == [lp for _, lp in want]
            assert len(top_ids) == k and top_lps == sorted(top_lps, reverse=True)


@pytest.mark.parametrize("mode,fragment", [
    ("text", "returned tokens as text, not token ids"),
    ("none", "returned no log-probabilities"),
    ("refuse", "refused the request for top-2 log-probabilities with token ids"),
])
def test_a_server_that_cannot_return_the_signal_fails_loudly(stub, backoff, mode, fragment):
    """No rows without the distillation signal: a server that returns token strings (here it
    is told not to send ids), none at all, or refuses the field stops the batch with one line
    that says what to do, also when rows are isolated (engine actors)."""
    s = stub(logprobs="refuse" if mode == "refuse" else "none" if mode == "none" else "ok")
    extra = {"return_tokens_as_token_ids": False} if mode == "text" else None
    e = engine(s, engine_kwargs=extra, isolate_rows=True)
    cs, pids = convs(2)
    with pytest.raises(oe.LogprobsUnavailable) as err:
        e.generate(cs, pids, Sampling(n=1, max_tokens=6, logprobs=2))
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg, msg
    assert "synth serve" in msg or "sampling.logprobs: 0" in msg, msg


def test_no_logprobs_asked_means_none_stored_and_no_extra_fields(stub):
    s = stub()
    cs, pids = convs(2)
    out = engine(s).generate(cs, pids, Sampling(n=1, max_tokens=6))
    for b in s.bodies:
        assert "logprobs" not in b and "return_tokens_as_token_ids" not in b
    for (smp,) in out:
        assert smp["token_ids"] is smp["top_logprob_ids"] is smp["top_logprobs"] is None


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("fail_with", [500, 429, 503, "close"])
def test_retries_after_transient_failures(stub, backoff, fail_with):
    s = stub(fail_first=2, fail_with=fail_with)
    cs, pids = convs(1)
    out = engine(s, max_retries=3).generate(cs, pids, Sampling(n=2))
    assert [x["response"] for x in out[0]] == [stub_completion(cs[0], j)["content"] for j in range(2)]
    assert s.requests == 3  # two failures, then success
    assert len(backoff) == 2 and backoff[1] > backoff[0] > 0  # exponential backoff


def test_retries_after_a_client_timeout(stub, backoff):
    s = stub(fail_first=1, fail_with="hang", hang_s=1.0)
    cs, pids = convs(1)
    out = engine(s, max_retries=2, request_timeout=0.3).generate(cs, pids, Sampling())
    assert out[0][0]["response"] == stub_completion(cs[0], 0)["content"]
    assert s.requests == 2 and len(backoff) == 1


def test_gives_up_after_max_retries(stub, backoff):
    s = stub(fail_first=10**6, fail_with=500)
    cs, pids = convs(1)
    with pytest.raises(OpenAIError) as ei:
        engine(s, max_retries=2).generate(cs, pids, Sampling())
    msg = str(ei.value)
    assert "gave up after 3 attempts" in msg and "HTTP 500" in msg and s.base_url in msg
    assert "injected failure 500" in msg  # the server's own error text is kept
    assert s.requests == 3 and len(backoff) == 2


def test_gives_up_when_server_is_down(backoff):
    s = StubServer()  # never started: bind, then close, so nothing listens on the port
    url = s.base_url
    s.stop()
    e = OpenAIEngine("stub-model", base_url=url, max_retries=1, request_timeout=5.0)
    with pytest.raises(OpenAIError, match="gave up after 2 attempts.*ConnectError"):
        e.generate(*convs(1), Sampling())


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_no_retry_on_client_errors(stub, backoff, status):
    s = stub(fail_first=10**6, fail_with=status)
    cs, pids = convs(1)
    with pytest.raises(OpenAIError, match=f"HTTP {status}"):
        engine(s, max_retries=5).generate(cs, pids, Sampling())
    assert s.requests == 1 and backoff == []


def test_a_failing_batch_stops_sending_its_requests(stub, backoff):
    """Once one request of a batch has failed for good, its queued requests are not sent."""
    s = stub(fail_first=10**6, fail_with=400, delay=0.05)
    e = engine(s, concurrency=1)
    with pytest.raises(OpenAIError, match="HTTP 400"):
        e.generate(*convs(8), Sampling())
    time.sleep(0.3)  # what was still queued would have been sent by now
    assert s.requests <= 2  # the failed one, perhaps the next already started; not all 8

    # The engine still works for the next batch.
    s.fail_first = 0
    cs, pids = convs(2)
    out = e.generate(cs, pids, Sampling())
    assert [o[0]["response"] for o in out] == [stub_completion(c, 0)["content"] for c in cs]


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("concurrency", [1, 3, 6])
def test_requests_in_flight_bounded_by_concurrency(stub, concurrency):
    s = stub(delay=0.05)
    k = max(8, 3 * concurrency)
    out = engine(s, concurrency=concurrency).generate(*convs(k), Sampling())
    assert len(out) == k and s.requests == k
    assert s.max_in_flight <= concurrency
    if concurrency > 1:
        assert s.max_in_flight > 1
    else:
        assert s.max_in_flight == 1


def test_high_concurrency_is_honoured_with_kept_alive_connections(stub):
    """Above httpx's default pool limits (100 connections, 20 kept alive) the bound still holds,
    and every request in flight reuses its own kept-alive connection."""
    # Long enough for all 120 threads to connect while the first wait, on a loaded CI machine
    # too (0.5 s saw only 88 in flight there).
    s = stub(delay=2.0)
    concurrency = 120
    out = engine(s, concurrency=concurrency).generate(*convs(2 * concurrency), Sampling())
    assert len(out) == 2 * concurrency and s.requests == 2 * concurrency
    assert 100 < s.max_in_flight <= concurrency
    assert s.connections <= concurrency


def test_concurrent_generate_calls_share_the_bound(stub):
    """The engine actor is threaded (several batches at once): the bound holds across calls."""
    s = stub(delay=0.05)
    e = engine(s, concurrency=3)
    errors: list[BaseException] = []

    def run():
        try:
            e.generate(*convs(6), Sampling())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s.requests == 24
    assert 1 < s.max_in_flight <= 3


# --------------------------------------------------------------------------- api key


def test_api_key_header_from_env(stub, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_STUB_KEY", "sk-stub-123")
    s = stub(api_key="sk-stub-123")
    out = engine(s, api_key_env="SYNTH_TEST_STUB_KEY").generate(*convs(2), Sampling())
    assert len(out) == 2
    assert [h.get("authorization") for h in s.headers] == ["Bearer sk-stub-123"] * 2


def test_no_api_key_header_when_env_unset(stub, monkeypatch):
    monkeypatch.delenv("SYNTH_TEST_STUB_KEY", raising=False)
    s = stub()
    engine(s, api_key_env="SYNTH_TEST_STUB_KEY").generate(*convs(1), Sampling())
    assert "authorization" not in s.headers[0]


def test_wrong_api_key_is_not_retried(stub, backoff, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_STUB_KEY", "wrong")
    s = stub(api_key="right")
    with pytest.raises(OpenAIError, match="HTTP 401"):
        engine(s, api_key_env="SYNTH_TEST_STUB_KEY").generate(*convs(1), Sampling())
    assert s.requests == 1


# --------------------------------------------------------------------------- end to end


def test_pipeline_end_to_end_through_ray(ray_session, tmp_path, stub):
    import pyarrow.parquet as pq

    from synth.config import load_pipeline
    from synth.io import shards as sh
    from synth.pipeline.run import run_pipeline

    s = stub(delay=0.05)
    limit, n = 10, 2
    path = write_pipeline(
        tmp_path / "openai.yaml",
        name="openai-e2e",
        seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 0},
        prompt={"template": "rephrase_wikipedia"},
        model={"backend": "openai", "name": "stub-model", "base_url": s.base_url,
               "concurrency": 4, "max_retries": 2, "request_timeout": 30.0},
        sampling={"n": n, "max_tokens": 6, "temperature": 0.0, "seed": 3},
        output={"dir": str(tmp_path / "out")},
    )
    cfg = load_pipeline(path)
    res = run_pipeline(cfg, limit=limit)

    shards = sh.list_shards(res.out_dir)
    assert shards and res.shards == len(shards)
    t = pq.read_table(shards)
    assert t.num_rows == res.rows == res.generated_rows == limit * n
    assert res.prompts == limit
    assert s.requests == limit  # one request per prompt, n choices each
    assert 1 < s.max_in_flight <= 4

    rows = t.to_pylist()
    assert len({r["id"] for r in rows}) == limit * n
    assert sorted(r["sample_index"] for r in rows) == sorted(list(range(n)) * limit)
    for r in rows:
        want = stub_completion(json.loads(r["messages"]), r["sample_index"], 6)
        assert r["response"] == want["content"]
        assert r["finish_reason"] == want["finish_reason"] == "length"
        assert r["completion_tokens"] == 6
        assert r["model"] == "stub-model" and r["worker"]

    manifest = sh.read_manifest(res.out_dir)
    assert manifest["status"] == "complete"
    assert manifest["counts"]["finish_reasons"] == {"length": limit * n}
    assert manifest["counts"]["missing_rows"] == 0

    # A second run finds everything on disk and sends no request.
    again = run_pipeline(cfg, limit=limit)
    assert again.generated_rows == 0 and again.rows == limit * n and s.requests == limit


def test_synth_serve_builds_the_vllm_server_command(model_path):
    """`synth serve`'s process: vLLM's server through synth's launcher (not `vllm serve`),
    the resolved embedded model under its name, room for k + 1 log-probs, and on CPU the
    backend's defaults; options after `--` are passed on (the model may be left out)."""
    import torch

    from synth.cli.serve_cmd import server_argv

    argv = server_argv("smollm2-135m", name="smollm2-135m", host="127.0.0.1", port=8001,
                       max_model_len=None, extra=["--max-num-seqs", "8"])
    assert argv[1:3] == ["-m", "synth.backends.vllm_server"]
    assert argv[argv.index("--model") + 1] == model_path
    assert argv[argv.index("--served-model-name") + 1] == "smollm2-135m"
    assert argv[argv.index("--max-logprobs") + 1] == "21"
    assert argv[-2:] == ["--max-num-seqs", "8"] and argv.count("--max-num-seqs") == 1
    if not torch.cuda.is_available():
        assert "--cpu-seeding" in argv and "--enforce-eager" in argv


def test_vllm_server_launcher_drops_request_seeds_on_cpu():
    """On CPU a request's own seed kills vLLM-CPU's engine once its prefill is chunked; the
    launcher's --cpu-seeding drops it from every request's sampling parameters."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    from synth.backends.vllm_server import _drop_request_seeds

    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], seed=7,
                                max_tokens=4)
    before = ChatCompletionRequest.to_sampling_params
    before_completion = CompletionRequest.to_sampling_params
    try:
        _drop_request_seeds()
        import inspect

        kw = {}
        sig = inspect.signature(before)
        for name, p in list(sig.parameters.items())[1:]:
            if p.default is inspect.Parameter.empty:
                kw[name] = 4 if "tokens" in name else {} if "default" in name else None
        assert before(req, **kw).seed == 7
        assert ChatCompletionRequest.to_sampling_params(req, **kw).seed is None
    finally:
        ChatCompletionRequest.to_sampling_params = before
        CompletionRequest.to_sampling_params = before_completion
