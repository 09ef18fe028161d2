"""Generation throughput: raw `vllm.LLM.chat` vs synth's path (Ray Data -> engine actor ->
Parquet shards), on the same prompts, in one run, for two workloads:

- `short`: rephrase prompts over the sample seeds, outputs capped at 64 tokens (most hit it);
- `long_tailed`: one-word answers mixed with long essays (outputs of ~10 to 384 tokens), where
  a batch waits for its slowest sample unless the engine keeps other batches' requests running.

    python benchmarks/generation.py [--prompts 128] [--max-tokens 64] [--batch-size 64]
                                    [--long-prompts 40] [--long-batch-size 16] [--rounds 2]

Both sides use the embedded model with synth's default engine arguments and greedy decoding,
so both generate the same tokens (checked: the completion token totals must match). Raw gets
every prompt of a workload in one `LLM.chat` call. Engine start is excluded from both rates:
raw times the `chat` call; synth times from the dataflow's start to the last shard written
(`RunResult.generation_s`), which includes starting Ray Data's workers, the actor hops and
Parquet writes.

The two sides take turns, `--rounds` times (raw then synth, then synth then raw, ...): this
machine's speed drifts by up to 10 % between runs minutes apart, more than the gap measured, so
a single raw-then-synth pair says little. Ray runs only during synth's turns (started, engine
loaded and warmed, then shut down), so raw never shares the machine with Ray's idle processes;
raw's engine stays loaded, idle, through synth's turns. The ratio of a workload is synth's
tokens/s over raw's, each summed over the rounds. Prints every turn, then `ratio_vs_raw_vllm`
per workload; the last line is the smaller ratio: `ratio_vs_raw_vllm: X`.
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

# The long-tailed workload: questions answered in a word or two, and essays the model writes
# until the 384-token cap (or its own end).
SHORT_QUESTIONS = [
    "What color is the sky on a clear day?", "What is the capital of France?",
    "How many legs does a spider have?", "What is the opposite of hot?",
    "Which planet is closest to the Sun?", "What is frozen water called?",
    "What animal says moo?", "What is 2 plus 3?", "What gas do plants absorb?",
    "What is the largest ocean?", "Which metal is liquid at room temperature?",
    "What language is spoken in Brazil?", "What is the chemical symbol for gold?",
    "How many days are in a week?", "What is the tallest animal?",
    "What do bees make?", "What shape has three sides?", "What is the color of grass?",
    "Which season comes after winter?", "What is the boiling point of water in Celsius?",
]
ESSAY_TOPICS = [
    "the history of the printing press", "how volcanoes form", "the life of honey bees",
    "the causes of the French Revolution", "how the internet works", "the water cycle",
    "the invention of the telephone", "why the sky is blue", "the Roman Empire",
    "climate and weather", "the human immune system", "the history of chess",
    "how airplanes fly", "the Industrial Revolution", "photosynthesis",
    "the exploration of Mars", "the history of mathematics", "ocean currents",
    "the evolution of language", "renewable energy",
]


def long_tailed_seeds(path: Path, count: int) -> Path:
    """A JSONL seed file: `count` prompts alternating one-word questions and essay requests."""
    rows = []
    for i in range(count):
        if i % 2 == 0:
            q = SHORT_QUESTIONS[(i // 2) % len(SHORT_QUESTIONS)]
            rows.append({"text": f"Answer with a single word, nothing else. {q}"})
        else:
            t = ESSAY_TOPICS[(i // 2) % len(ESSAY_TOPICS)]
            rows.append({"text": f"Write a long, detailed essay of at least 800 words about {t}. "
                                 "Cover its background, the key facts, and why it matters."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pipeline_file(path: Path, name: str, seeds: dict, template: str, batch_size: int,
                  max_tokens: int) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({
        "name": name,
        "seeds": seeds,
        "prompt": {"template": template},
        "model": {"name": "smollm2-135m", "backend": "vllm", "batch_size": batch_size},
        "sampling": {"temperature": 0.0, "max_tokens": max_tokens},
    }))
    return path


def run_raw(llm, convs: list, max_tokens: int) -> tuple[int, float, list[int]]:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    t = time.perf_counter()
    outs = llm.chat(convs, params, use_tqdm=False)
    dt = time.perf_counter() - t
    lengths = [len(o.outputs[0].token_ids) for o in outs]
    return sum(lengths), dt, lengths


def synth_turn(workloads, tmp: Path, round_no: int) -> dict:
    """One turn of synth over every workload: Ray up, engine loaded and warmed on two prompts
    (excluded, as raw's engine start is), the timed runs, then Ray down."""
    import ray

    from synth.backends.pool import forget_engines
    from synth.pipeline.run import run_pipeline

    out = {}
    try:
        for name, cfg, n, _, _ in workloads:
            base = tmp / f"out-{name}-{round_no}"
            run_pipeline(cfg, out=base.with_name(base.name + "-warm"), limit=2, resume=False)
            out[name] = run_pipeline(cfg, out=base, limit=n, resume=False)
    finally:
        forget_engines()
        ray.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--long-prompts", type=int, default=40)
    ap.add_argument("--long-max-tokens", type=int, default=384)
    ap.add_argument("--long-batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from synth.config import load_pipeline
    from synth.models import pull
    from synth.pipeline.prompts import build_prompts

    model_path = str(pull("smollm2-135m"))
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    print(f"load average at start: {_load()}", flush=True)
    try:
        workloads = []
        cfg = load_pipeline(pipeline_file(
            tmp / "short.yaml", "bench", {"path": str(ROOT / "sample_data" / "seeds"),
                                          "chunk_tokens": 96},
            "rephrase_distill", args.batch_size, args.max_tokens))
        workloads.append(("short", cfg, args.prompts, args.max_tokens, args.batch_size))
        seeds = long_tailed_seeds(tmp / "long.jsonl", args.long_prompts)
        cfg = load_pipeline(pipeline_file(
            tmp / "long.yaml", "bench-long", {"path": str(seeds), "chunk_tokens": 0},
            "chat", args.long_batch_size, args.long_max_tokens))
        workloads.append(("long_tailed", cfg, args.long_prompts, args.long_max_tokens,
                          args.long_batch_size))
        convs = {}
        for name, cfg, n, _, _ in workloads:
            prompts = build_prompts(cfg, model_path=model_path, limit=n)
            convs[name] = [json.loads(m) for m in prompts.column("messages").to_pylist()]

        from vllm import LLM, SamplingParams

        from synth.backends.vllm_engine import default_engine_kwargs

        llm = LLM(model=model_path, **default_engine_kwargs())
        # Warm-up, as synth's engine is warm too. (Explicit max_tokens: without one vLLM
        # generates up to max_model_len.)
        llm.chat(convs["short"][:2], SamplingParams(temperature=0.0, max_tokens=8), use_tqdm=False)

        totals = {name: {"raw": [0, 0.0], "synth": [0, 0.0]} for name, *_ in workloads}

        def raw_turn(r: int) -> None:
            for name, _, _, max_tokens, _ in workloads:
                tokens, s, lengths = run_raw(llm, convs[name], max_tokens)
                totals[name]["raw"][0] += tokens
                totals[name]["raw"][1] += s
                print(f"[{name}] round {r} raw vllm.LLM.chat: {tokens} tokens in {s:.1f}s = "
                      f"{tokens / s:.1f} tokens/s (outputs of {min(lengths)} to {max(lengths)} "
                      f"tokens; load {_load()})", flush=True)

        def synth_side(r: int) -> None:
            results = synth_turn(workloads, tmp, r)
            for name, cfg, n, max_tokens, bs in workloads:
                res = results[name]
                totals[name]["synth"][0] += res.generated_tokens
                totals[name]["synth"][1] += res.generation_s
                print(f"[{name}] round {r} synth (Ray Data + engine actor + shards, batch_size "
                      f"{bs}, in_flight {cfg.model.in_flight}): {res.generated_tokens} tokens in "
                      f"{res.generation_s:.1f}s = {res.generated_tokens / res.generation_s:.1f} "
                      f"tokens/s (load {_load()})", flush=True)

        for r in range(args.rounds):
            for side in ((raw_turn, synth_side) if r % 2 == 0 else (synth_side, raw_turn)):
                side(r)
        del llm
        gc.collect()

        ratios = {}
        for name, _, _, max_tokens, _ in workloads:
            (rt, rs), (st, ss) = totals[name]["raw"], totals[name]["synth"]
            ratios[name] = (st / ss) / (rt / rs)
            same = "yes" if st == rt else "NO"
            print(f"[{name}] prompts {len(convs[name])}, max_tokens {max_tokens}, {args.rounds} "
                  f"rounds: raw {rt / rs:.1f} tokens/s, synth {st / ss:.1f} tokens/s; same "
                  f"completion tokens as raw: {same} ({st} vs {rt})")
            print(f"[{name}] ratio_vs_raw_vllm: {ratios[name]:.3f}", flush=True)
        print(f"load average at end: {_load()}")
        print(f"ratio_vs_raw_vllm: {min(ratios.values()):.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
