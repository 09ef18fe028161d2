"""Generation throughput: raw `vllm.LLM.chat` vs synth's path (Ray Data -> engine actor ->
Parquet shards), on the same prompts, in one run.

    python benchmarks/generation.py [--prompts 128] [--max-tokens 64] [--batch-size 64]

Both sides use the embedded model with synth's default engine arguments and greedy decoding
(so both generate the same number of tokens). Engine start is excluded from both rates: raw
times the `chat` call; synth times from the first batch sent to the last shard written
(`RunResult.generation_s`), which includes Ray Data scheduling, the actor hop and Parquet
writes. The last line is `ratio_vs_raw_vllm: X` (synth tokens/s / raw tokens/s).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pipeline_file(tmp: Path, args) -> Path:
    import yaml

    p = tmp / "bench.yaml"
    p.write_text(yaml.safe_dump({
        "name": "bench",
        "seeds": {"path": str(ROOT / "sample_data" / "seeds"), "chunk_tokens": 96},
        "prompt": {"template": "rephrase_distill"},
        "model": {"name": "smollm2-135m", "backend": "vllm", "batch_size": args.batch_size},
        "sampling": {"temperature": 0.0, "max_tokens": args.max_tokens},
    }))
    return p


def run_raw(model_path: str, convs: list, max_tokens: int) -> tuple[int, float]:
    from vllm import LLM, SamplingParams

    from synth.backends.vllm_engine import default_engine_kwargs

    llm = LLM(model=model_path, **default_engine_kwargs())
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    llm.chat(convs[:2], params, use_tqdm=False)  # warm-up, as synth's engine is warm too
    t = time.perf_counter()
    outs = llm.chat(convs, params, use_tqdm=False)
    dt = time.perf_counter() - t
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    del llm
    gc.collect()
    return tokens, dt


def run_synth(cfg, out: Path, limit: int) -> tuple[int, float, float]:
    from synth.pipeline.run import run_pipeline

    # Warm the engine actor on two prompts (its start is excluded, as for raw).
    run_pipeline(cfg, out=out.with_name("warm"), limit=2, resume=False)
    r = run_pipeline(cfg, out=out, limit=limit, resume=False)
    return r.generated_tokens, r.generation_s, r.engine_start_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from synth.config import load_pipeline
    from synth.models import pull
    from synth.pipeline.prompts import build_prompts

    model_path = str(pull("smollm2-135m"))
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        cfg = load_pipeline(pipeline_file(tmp, args))
        prompts = build_prompts(cfg, model_path=model_path, limit=args.prompts)
        convs = [json.loads(m) for m in prompts.column("messages").to_pylist()]
        print(f"prompts: {len(convs)}, max_tokens: {args.max_tokens}, greedy, batch_size: {args.batch_size}")

        raw_tokens, raw_s = run_raw(model_path, convs, args.max_tokens)
        raw_rate = raw_tokens / raw_s
        print(f"raw vllm.LLM.chat: {raw_tokens} tokens in {raw_s:.1f}s = {raw_rate:.1f} tokens/s")

        syn_tokens, syn_s, start_s = run_synth(cfg, tmp / "out", len(convs))
        syn_rate = syn_tokens / syn_s
        print(f"synth (Ray Data + engine actor + shards): {syn_tokens} tokens in {syn_s:.1f}s = "
              f"{syn_rate:.1f} tokens/s (engine start {start_s:.1f}s, excluded)")
        print(f"ratio_vs_raw_vllm: {syn_rate / raw_rate:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
