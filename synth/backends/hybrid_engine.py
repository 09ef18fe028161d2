"""The `hybrid` backend: a checkpoint of synth's own hybrid model as a generation engine.

`model.name` is a training folder or its `checkpoint/`. Conversations are rendered with the
checkpoint's chat template (the embedded teacher's), decoded with the model's KV/SSM cache,
one conversation at a time (the model is small; CPU decoding is latency-bound). Top-k
log-probabilities come from the raw next-token distribution, like vLLM's, so a trained
student can serve as a teacher for the next round of distillation.
"""

from __future__ import annotations

from synth.backends.base import Sampling, request_seed


class HybridEngine:
    def __init__(self, model: str, engine_kwargs: dict | None = None):
        import torch

        from synth.train.sample import load

        kw = engine_kwargs or {}
        torch.set_num_threads(int(kw.get("threads", 1)))
        self.model, self.tok = load(model)
        self.max_len = int(kw.get("max_model_len", self.model.cfg.max_seq_len))

    def generate(self, conversations: list[list[dict]], prompt_ids: list[str],
                 sampling: Sampling) -> list[list[dict]]:
        return [[self._sample(conv, pid, i, sampling) for i in range(sampling.n)]
                for conv, pid in zip(conversations, prompt_ids)]

    def _sample(self, conv: list[dict], prompt_id: str, index: int, s: Sampling) -> dict:
        import torch

        from synth.model.hybrid import sample

        prompt = self.tok.encode(self.tok.render_chat(conv))
        budget = max(0, min(s.max_tokens, self.max_len - len(prompt)))
        g = torch.Generator().manual_seed(request_seed(s.seed, f"{prompt_id}:{index}"))
        ids, top_ids, top_lps = [], [], []
        finish = "length"
        with torch.no_grad():
            cache = self.model.new_cache(1)
            logits = self.model.forward_cached(torch.tensor([prompt]), cache)[0, -1]
            for _ in range(budget):
                logp = torch.log_softmax(logits.float(), dim=-1)
                if s.logprobs:
                    v, i = logp.topk(s.logprobs)
                    top_ids.append(i.tolist())
                    top_lps.append(v.tolist())
                nxt = sample(logits, s.temperature, s.top_p, g)
                ids.append(nxt)
                if nxt == self.tok.eos_id:
                    finish = "stop"
                    break
                logits = self.model.forward_cached(torch.tensor([[nxt]]), cache)[0, -1]
        shown = ids[:-1] if finish == "stop" else ids
        return {
            "response": self.tok.decode(shown),
            "finish_reason": finish,
            "prompt_tokens": len(prompt),
            "completion_tokens": len(ids),
            "token_ids": ids,
            "top_logprob_ids": top_ids if s.logprobs else None,
            "top_logprobs": top_lps if s.logprobs else None,
        }

