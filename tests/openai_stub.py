"""A tiny OpenAI-compatible `/v1/chat/completions` server for tests (stdlib only).

Deterministic: every choice is derived from a hash of the last user message and the choice
index, so tests can compute the expected answer with `stub_completion(...)`. Supports `n`,
`max_tokens` (truncates, `finish_reason: "length"`), `logprobs`/`top_logprobs` (tokens are
`"token_id:<int>"` when the request sets `return_tokens_as_token_ids: true`) and `usage`.

Log-probabilities as vLLM's server lists them (`StubServer(sampled_first=True)`): the sampled
token first, then the best alternatives, cut to `top_logprobs`; here the sampled token is the
third best, so a list read as given is not best-first and misses the k-th best token.
`StubServer(logprobs="none")` returns no log-probabilities at all; `logprobs="refuse"` answers
a request that asks for them with HTTP 400 naming `return_tokens_as_token_ids`.

Fault injection (`StubServer(fail_first=K, fail_with=500 | 429 | 400 | "close" | "hang")`): the
first K requests answer with that HTTP status, have their connection closed without a response
("close"), or get no answer for `hang_s` seconds and then a closed connection ("hang", for
client timeouts). Every request (failed or not) is counted and sleeps `delay` seconds while "in
flight", so the maximum number of concurrent requests is observable (`max_in_flight`); TCP
connections opened are counted too (`connections`).

    with StubServer(delay=0.05) as stub:
        url = stub.base_url            # http://127.0.0.1:<port>/v1
        ...
        assert stub.requests == 3 and stub.max_in_flight <= 4
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FULL_TOKENS = 8  # a completion's natural length, in tokens, before `max_tokens` truncation
VOCAB = 50_000


def last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c, sort_keys=True)
    return ""


def stub_completion(messages: list[dict], index: int, max_tokens: int | None = None) -> dict:
    """What the stub answers for choice `index`: content, token_ids, finish_reason."""
    h = hashlib.sha256(f"{last_user_text(messages)}|{index}".encode()).digest()
    ids = [int.from_bytes(h[2 * i : 2 * i + 2], "little") % VOCAB for i in range(FULL_TOKENS)]
    finish = "stop"
    if max_tokens is not None and max_tokens < len(ids):
        ids, finish = ids[:max_tokens], "length"
    content = f"stub-{h[:6].hex()}: " + " ".join(f"t{t}" for t in ids)
    return {"content": content, "token_ids": ids, "finish_reason": finish}


def prompt_token_count(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


class StubServer:
    def __init__(self, *, delay: float = 0.02, fail_first: int = 0,
                 fail_with: int | str = 500, hang_s: float = 1.0, api_key: str | None = None,
                 sampled_first: bool = False, logprobs: str = "ok"):
        self.delay = delay
        self.sampled_first = sampled_first
        self.logprobs = logprobs
        self.hang_s = hang_s
        self.fail_first = fail_first
        self.fail_with = fail_with
        self.api_key = api_key  # when set, requests without `Bearer <api_key>` get HTTP 401
        self._lock = threading.Lock()
        self.reset()
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "StubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-stub",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever on a never-started server
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "StubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ stats

    def reset(self) -> None:
        with self._lock:
            self.requests = 0  # every POST to /v1/chat/completions, failed ones included
            self.connections = 0  # TCP connections accepted
            self.in_flight = 0
            self.max_in_flight = 0
            self.bodies: list[dict] = []  # the JSON bodies of all requests, in arrival order
            self.headers: list[dict] = []  # their headers (lower-case names)

    def _enter(self, body: dict, headers: dict) -> int:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bodies.append(body)
            self.headers.append(headers)
            return self.requests

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    # ------------------------------------------------------------------ responses

    def respond(self, body: dict) -> dict:
        messages = body.get("messages") or []
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_tokens")
        k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        choices = []
        completion_tokens = 0
        for i in range(n):
            c = stub_completion(messages, i, max_tokens)
            completion_tokens += len(c["token_ids"])
            choice = {"index": i, "message": {"role": "assistant", "content": c["content"]},
                      "finish_reason": c["finish_reason"], "logprobs": None}
            if k is not None and self.logprobs == "ok":
                choice["logprobs"] = {"content": [_token_logprob(t, k, as_ids, self.sampled_first)
                                                  for t in c["token_ids"]]}
            choices.append(choice)
        prompt_tokens = prompt_token_count(messages)
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: bursts of new connections are not refused


def _tok(t: int, as_ids: bool) -> str:
    return f"token_id:{t}" if as_ids else f"t{t}"


def best_alternatives(t: int, sampled_first: bool = False) -> list[tuple[int, float]]:
    """The model's ranking at a position where `t` was sampled, best first: normally t, t+1,
    t+2, ... with log-probs 0, -0.25, -0.5, ...; with `sampled_first`, t is the third best
    (t+1 and t+2 come before it)."""
    order = [1, 2, 0] + list(range(3, 64)) if sampled_first else list(range(64))
    return [((t + j) % VOCAB, -0.25 * r) for r, j in enumerate(order)]


def _token_logprob(t: int, k: int, as_ids: bool, sampled_first: bool = False) -> dict:
    ranked = best_alternatives(t, sampled_first)
    if sampled_first:  # vLLM: the sampled token, then the others in rank order, cut to k
        ranked = [x for x in ranked if x[0] == t] + [x for x in ranked if x[0] != t]
    top = [{"token": _tok(i, as_ids), "logprob": lp, "bytes": None} for i, lp in ranked[:k]]
    lp_t = next(lp for i, lp in ranked if i == t)
    return {"token": _tok(t, as_ids), "logprob": lp_t, "bytes": None, "top_logprobs": top}


def _make_handler(stub: StubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real server

        def log_message(self, *args):  # quiet
            pass

        def setup(self):
            stub._connected()
            super().setup()

        def _send(self, status: int, payload: dict, extra_headers: dict | None = None):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra_headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "invalid JSON"}})
                return
            number = stub._enter(body, {k.lower(): v for k, v in self.headers.items()})
            # Leave the in-flight count *before* answering: once the client has the answer it
            # may send its next request at once, which must not count as overlapping this one.
            try:
                time.sleep(stub.delay)
            finally:
                stub._leave()
            if number <= stub.fail_first:
                if stub.fail_with in ("close", "hang"):
                    if stub.fail_with == "hang":
                        time.sleep(stub.hang_s)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status = int(stub.fail_with)
                self._send(status, {"error": {"message": f"injected failure {status}",
                                              "type": "stub", "code": status}})
                return
            if stub.api_key is not None and \
                    self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                self._send(401, {"error": {"message": "bad api key"}})
                return
            if stub.logprobs == "refuse" and "return_tokens_as_token_ids" in body:
                self._send(400, {"error": {"message": "Unrecognized request argument supplied: "
                                                      "return_tokens_as_token_ids"}})
                return
            self._send(200, stub.respond(body))

    return Handler
