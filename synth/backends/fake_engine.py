"""A deterministic fake engine for fast unit tests of plumbing (never the only test of a feature).

The response is derived from a hash of the conversation, the sample index and the seed, so
reruns give identical rows. It counts its calls in a file when `SYNTH_FAKE_COUNT_FILE` is set,
so tests can check that resumed runs do not generate finished work again.

engine_kwargs (all optional): `delay` (seconds to sleep per batch), `fail` (raise this message
on every batch), `constant` (reply this text to every prompt; a list of texts is cycled, one
item per sample in the order this engine generates them, so one run can carry several
adversarial replies).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from synth.backends.base import Sampling

_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
          "pi rho sigma tau upsilon phi chi psi omega").split()


class FakeEngine:
    def __init__(self, model: str = "fake", engine_kwargs: dict | None = None):
        self.model = model
        self.delay = float((engine_kwargs or {}).get("delay", 0.0))
        self.fail = (engine_kwargs or {}).get("fail")  # raise this message on generate
        self.constant = (engine_kwargs or {}).get("constant")  # reply this text to every prompt
        self.replies = 0  # samples generated so far (cycles a list of constants)

    def generate(self, conversations: list[list[dict]], prompt_ids: list[str],
                 sampling: Sampling) -> list[list[dict]]:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError(self.fail)
        count_file = os.environ.get("SYNTH_FAKE_COUNT_FILE")
        if count_file:
            with open(count_file, "a", encoding="utf-8") as fh:
                fh.write("".join(pid + "\n" for pid in prompt_ids))
        out = []
        for conv, pid in zip(conversations, prompt_ids):
            prompt = json.dumps(conv, sort_keys=True)
            samples = []
            for i in range(sampling.n):
                h = hashlib.sha256(f"{prompt}|{i}|{sampling.seed}".encode()).digest()
                n_words = 3 + h[0] % min(12, max(1, sampling.max_tokens))
                words = [_WORDS[b % len(_WORDS)] for b in h[1 : 1 + n_words]]
                ids = [int(b) for b in h[1 : 1 + n_words]]
                k = sampling.logprobs
                if isinstance(self.constant, list):
                    response = self.constant[self.replies % len(self.constant)]
                else:
                    response = self.constant if self.constant is not None else " ".join(words)
                self.replies += 1
                samples.append(
                    {
                        "response": response,
                        "finish_reason": "stop",
                        "prompt_tokens": len(prompt.split()),
                        "completion_tokens": n_words,
                        "token_ids": ids,
                        "top_logprob_ids": [[t + j for j in range(k)] for t in ids] if k else None,
                        "top_logprobs": [[-0.1 * (j + 1) for j in range(k)] for _ in ids] if k else None,
                    }
                )
            out.append(samples)
        return out
