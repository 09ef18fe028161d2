"""OpenAI-compatible backend: any server speaking `/v1/chat/completions` (e.g. `vllm serve`).

Requests run on a bounded thread pool (`model.concurrency` in flight) with retries and
exponential backoff on connection errors, timeouts, 429 and 5xx. Fields in `engine_kwargs`
are added to every request body.

Top-k log-probabilities (`sampling.logprobs: k`, the distillation signal) need token ids, not
token strings: each request asks for them (`return_tokens_as_token_ids`, which a vLLM server
understands; `synth serve` starts one). vLLM's server lists the sampled token first and then
cuts the list to the k asked for, so its lists are not best-first and can miss the k-th best
token; the engine asks for k + 1 (at most `MAX_TOP_LOGPROBS`), sorts best-first and keeps k,
the same as the vllm backend. A server that returns no log-probabilities or no token ids
fails the run with one line (`LogprobsUnavailable`), instead of rows without the signal.

The engine is thread-safe: concurrent `generate` calls (an engine actor serving several
batches at once) share its one pool, so `model.concurrency` bounds the requests in flight
across all of them. With `isolate_rows=True` (as engine actors build it) a request the server
refuses (HTTP 400/413/422: a prompt over the context is `gen.prompt_too_long`) or that still
fails after its retries (HTTP 5xx, 429, 408) becomes error samples with a reject reason; an
unreachable server or a refused key (401, 403, 404) still fails the batch, as it would fail
every row.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from synth.backends.base import (PROMPT_TOO_LONG, REQUEST_FAILED, Sampling, error_sample,
                                 request_seed)

# OpenAI's limit on `top_logprobs`; `synth serve` raises vLLM's (default 20) to 21.
MAX_TOP_LOGPROBS = 20
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# Failures that concern the whole server, not one request: the batch fails (and can resume).
SERVER_STATUS = {401, 403, 404}


class OpenAIError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the last HTTP status, None for a transport error


class LogprobsUnavailable(OpenAIError):
    """The server cannot return the top-k log-probabilities with token ids the pipeline asked
    for: the whole run stops (a server-wide property, not one row's)."""

    def __init__(self, message: str):
        super().__init__(message, None)


class OpenAIEngine:
    thread_safe = True  # one shared pool: concurrent calls share the `concurrency` bound

    def __init__(self, model: str, engine_kwargs: dict | None = None, *, base_url: str,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, max_retries: int = 5,
                 request_timeout: float = 600.0, isolate_rows: bool = False):
        import httpx

        self.model = model
        self.extra = dict(engine_kwargs or {})
        self.url = base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        workers = max(1, concurrency)
        # One pooled (kept-alive) connection per request in flight. httpx's defaults (100
        # connections, 20 kept alive) would cap `concurrency` at 100 and, above 20, open a new
        # TCP connection for almost every request.
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        self.client = httpx.Client(headers=headers, timeout=request_timeout, limits=limits)
        self.max_retries = max_retries
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.isolate_rows = isolate_rows
        self.max_top_logprobs = int(self.extra.pop("max_top_logprobs", MAX_TOP_LOGPROBS))

    def generate(self, conversations: list[list[dict]], prompt_ids: list[str],
                 sampling: Sampling) -> list[list[dict]]:
        one = self._isolated if self.isolate_rows else self._one
        futures = [self.pool.submit(one, conv, pid, sampling)
                   for conv, pid in zip(conversations, prompt_ids)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # The batch has failed: do not send its remaining requests. The pool is shared by
            # every call to this engine (a long-lived actor), so they would otherwise delay
            # the next batches and keep loading the server for nothing.
            for f in futures:
                f.cancel()
            raise

    def _isolated(self, conv: list[dict], pid: str, sampling: Sampling) -> list[dict]:
        """`_one`, with a failure of this request alone turned into `n` error samples."""
        try:
            return self._one(conv, pid, sampling)
        except OpenAIError as e:
            if e.status is None or e.status in SERVER_STATUS:
                raise
            too_long = e.status in (400, 413, 422) and "context" in str(e).lower()
            return [error_sample(str(e), PROMPT_TOO_LONG if too_long else REQUEST_FAILED)
                    for _ in range(sampling.n)]

    def _one(self, conv: list[dict], pid: str, sampling: Sampling) -> list[dict]:
        body = {
            "model": self.model,
            "messages": conv,
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": request_seed(sampling.seed, pid),
            **self.extra,
        }
        k = sampling.logprobs
        if k:
            body.update(logprobs=True, top_logprobs=min(k + 1, self.max_top_logprobs))
            body.setdefault("return_tokens_as_token_ids", True)
        try:
            data = self._post(body)
        except OpenAIError as e:
            if k and e.status in (400, 422) and ("logprob" in str(e) or "token_ids" in str(e)):
                raise LogprobsUnavailable(
                    f"{self.url} refused the request for top-{k} log-probabilities with token "
                    f"ids ({str(e).split(': ', 1)[-1][:160]}); use a vLLM server (synth serve) "
                    "or set sampling.logprobs: 0") from None
            raise
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        samples = []
        for choice in sorted(data.get("choices", []), key=lambda c: c.get("index", 0)):
            content = (choice.get("message") or {}).get("content") or ""
            ids = top_ids = top_lps = None
            lp = (choice.get("logprobs") or {}).get("content")
            if k:
                ids, top_ids, top_lps = self._top_k(lp, k, choice)
            n_completion = len(lp) if lp else None
            samples.append(
                {
                    "response": content,
                    "finish_reason": choice.get("finish_reason") or "stop",
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": n_completion if n_completion is not None
                    else int(usage.get("completion_tokens") or 0) // max(1, sampling.n),
                    "token_ids": ids,
                    "top_logprob_ids": top_ids,
                    "top_logprobs": top_lps,
                }
            )
        if len(samples) != sampling.n:
            raise OpenAIError(f"{self.url}: asked for n={sampling.n} choices, got {len(samples)}",
                              200)
        return samples

    def _top_k(self, lp: list | None, k: int, choice: dict):
        """(token ids, top-k ids, top-k log-probs) of one choice, each position best-first
        with exactly k entries (fewer only when the vocabulary or the server has fewer).
        Raises `LogprobsUnavailable` when the server left out what the run asked for."""
        if not lp:
            if choice.get("finish_reason") == "length" or (choice.get("message") or {}).get("content"):
                raise LogprobsUnavailable(
                    f"{self.url} returned no log-probabilities although top-{k} were asked for; "
                    "use a server that returns them (a vLLM server: synth serve) or set "
                    "sampling.logprobs: 0")
            return [], [], []  # nothing generated
        ids, top_ids, top_lps = [], [], []
        for t in lp:
            tid = _token_id(t.get("token"))
            alts = {}
            for a in t.get("top_logprobs") or []:
                alts.setdefault(_token_id(a.get("token")), float(a.get("logprob")))
            if tid is None or None in alts:
                raise LogprobsUnavailable(
                    f"{self.url} returned tokens as text, not token ids ({t.get('token')!r}), so "
                    "the top-k log-probabilities cannot be stored; use a vLLM server (synth "
                    "serve), which returns ids when asked (return_tokens_as_token_ids)")
            best = sorted(alts.items(), key=lambda x: -x[1])[:k]  # stable: ties keep the server's order
            ids.append(tid)
            top_ids.append([i for i, _ in best])
            top_lps.append([v for _, v in best])
        return ids, top_ids, top_lps

    def _post(self, body: dict) -> dict:
        import httpx

        delay = 0.5
        last = ""
        status = None
        for attempt in range(self.max_retries + 1):
            try:
                r = self.client.post(self.url, json=body)
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                status = r.status_code
                if r.status_code not in RETRY_STATUS:
                    raise OpenAIError(f"{self.url}: {last}", status)
            except (httpx.TransportError, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
                status = None
            if attempt < self.max_retries:
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 30.0)
        raise OpenAIError(f"{self.url}: gave up after {self.max_retries + 1} attempts ({last})",
                          status)


def _token_id(token: str | None) -> int | None:
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token.split(":", 1)[1])
        except ValueError:
            return None
    return None
