"""The engine contract every generation backend implements.

An engine is a plain class: `__init__` loads once (one per Ray actor); `generate` takes a
batch of chat conversations and returns, per conversation, `n` samples. A sample is a dict:

    response          str
    finish_reason     "stop" | "length" | "error"
    prompt_tokens     int
    completion_tokens int
    token_ids         list[int] | None
    top_logprob_ids   list[list[int]] | None    (per generated token, best first)
    top_logprobs      list[list[float]] | None

A sample with finish_reason "error" (see `error_sample`) also carries `error` (the message) and
`reject_reason` (`gen.prompt_too_long` or `gen.request_failed`): one prompt that cannot be
generated becomes rejected rows, never a failed batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from synth.config import SamplingConfig


# The sampling settings engines receive are the pipeline's own `sampling:` section.
Sampling = SamplingConfig


def request_seed(base_seed: int, prompt_id: str) -> int:
    """A per-prompt sampling seed, so a prompt's samples do not depend on how it was batched."""
    h = hashlib.sha256(f"{base_seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class EngineSpec:
    """What identifies an engine: actors built from equal specs are shared."""

    backend: str
    model: str  # resolved: local folder or hub id (openai: the served model name)
    engine_kwargs: dict = field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 5
    request_timeout: float = 600.0
    concurrency: int = 1

    def key(self) -> str:
        import json

        blob = json.dumps(
            [self.backend, self.model, self.engine_kwargs, self.base_url, self.concurrency,
             self.api_key_env, self.max_retries, self.request_timeout],
            sort_keys=True, default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Reject reasons of rows whose prompt could not be generated.
PROMPT_TOO_LONG = "gen.prompt_too_long"  # the prompt leaves no room in the model's context
REQUEST_FAILED = "gen.request_failed"  # the request still failed after its retries


def error_sample(message: str, reason: str = REQUEST_FAILED, prompt_tokens: int = 0) -> dict:
    """A sample standing for a request that produced nothing; its row is rejected with `reason`."""
    return {
        "response": "",
        "finish_reason": "error",
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 0,
        "token_ids": None,
        "top_logprob_ids": None,
        "top_logprobs": None,
        "error": message,
        "reject_reason": reason,
    }
