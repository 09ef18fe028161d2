"""The hybrid model's numbers, in one run:

    python benchmarks/model.py [--train-steps 150] [--quick]

1. Mamba-2 scan: the chunked SSD algorithm vs the sequential recurrence (the baseline every
   SSM starts from), forward at length 512, same inputs; the outputs are checked equal.
2. Training throughput of the `tiny` config (tokens/s, forward + backward + AdamW, seq 256 x 8).
3. Decoding: self-speculative greedy decoding (MTP drafts, one verify forward) vs plain greedy
   decoding with the cache (both with the same exact greedy head), outputs checked identical
   token for token. How much speculation gains depends on how often the drafts are accepted,
   i.e. on how well the model predicts the text it continues (DeepSeek-V3 reports 85-90 %
   acceptance for its MTP draft on real traffic). So it runs twice: the headline on `tiny`
   with three MTP depths (one draft per depth), fitted to 4 seed documents (--fit-steps) and
   continuing their openings, where the model is confident; and, for the record, on the
   under-trained single-depth throughput model of (2).
4. NVFP4: the same micro model, data and seed trained with NVFP4 fake-quantized linear
   layers and in full precision; the relative gap of the final eval losses.
5. Distillation: a student trained on the same tokens (same batches, seed and steps) with
   and without distillation from the embedded SmolLM2-135M teacher run in the loop (online,
   full-vocabulary KD); the eval loss (cross-entropy on held-out documents) of both.

The last line is `spec_decode_speedup: X`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_ssd(reps: int = 10):
    import torch

    from synth.model.hybrid import ssd_chunked, ssd_sequential

    torch.manual_seed(0)
    b, L, h, p, n = 2, 512, 8, 32, 32
    x = torch.randn(b, L, h, p)
    dt = torch.rand(b, L, h) * 0.1 + 0.01
    A = -torch.rand(h) - 0.5
    B = torch.randn(b, L, n) / n**0.5  # one B/C group shared by the heads (ngroups = 1)
    C = torch.randn(b, L, n) / n**0.5

    def timeit(fn):
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    with torch.no_grad():
        t_chunk, (y1, s1) = timeit(lambda: ssd_chunked(x, dt, A, B, C, 64))
        t_seq, (y2, s2) = timeit(lambda: ssd_sequential(x, dt, A, B, C))
    err = float((y1 - y2).abs().max() / y2.abs().max())
    print(f"ssd length {L}: chunked {t_chunk * 1e3:.1f} ms, sequential {t_seq * 1e3:.1f} ms, "
          f"max rel diff {err:.1e}")
    print(f"ssd_speedup_vs_sequential: {t_seq / t_chunk:.1f}")
    return t_seq / t_chunk


def seed_shards(tmp: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = []
    for p in sorted((ROOT / "sample_data" / "seeds").rglob("*")):
        if p.suffix in (".txt", ".md"):
            docs.append(p.read_text())
        elif p.suffix == ".jsonl":
            docs += [json.loads(line).get("text", "") for line in p.read_text().splitlines() if line.strip()]
    d = tmp / "seeds"
    d.mkdir()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(docs))], "text": docs}),
                   d / "part-0-000000.parquet")
    return d


def config_json(tmp: Path, name: str, **changes) -> str:
    """A JSON model config: `tiny` with some fields changed."""
    from synth.model import config_by_name

    cfg = dataclasses.replace(config_by_name("tiny"), **changes)
    p = tmp / f"{name}.json"
    p.write_text(json.dumps(cfg.to_dict()))
    return str(p)


def run_train(tmp: Path, name: str, data: Path, **kw):
    from synth.train.config import TrainConfig
    from synth.train.loop import train

    base = dict(mode="pretrain", data=(str(data),), out=str(tmp / name), model="tiny",
                steps=100, batch_size=8, seq_len=256, eval_every=10_000, ckpt_every=10_000)
    base.update(kw)
    return train(TrainConfig(**base), log=lambda m: None)


def fit_shards(tmp: Path, data: Path, n_docs: int = 4) -> tuple[Path, list[str]]:
    """A shard of n_docs middle-length seed documents, and their openings as prompts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = sorted(pq.read_table(data).column("text").to_pylist(), key=len)
    docs = docs[len(docs) // 2:len(docs) // 2 + n_docs]
    d = tmp / "fit"
    d.mkdir()
    pq.write_table(pa.table({"id": [f"f{i}" for i in range(len(docs))], "text": docs}),
                   d / "part-0-000000.parquet")
    return d, [doc[:40] for doc in docs]


def bench_decode(ckpt: Path, prompts: list[str], max_new: int, label: str, reps: int = 5):
    from synth.train.sample import load

    model, tok = load(ckpt)
    plain_t = spec_t = 0.0
    n_tokens = accepted = drafted = calls = 0
    for text in prompts:
        ids = tok.encode(text)
        model.generate(ids, 4)  # warm-up
        model.generate(ids, 4, speculative=True)
        for _ in range(reps):  # alternate, so a load change on the machine hits both alike
            t0 = time.perf_counter()
            a, _ = model.generate(ids, max_new)
            plain_t += time.perf_counter() - t0
            t0 = time.perf_counter()
            b, st = model.generate(ids, max_new, speculative=True)
            spec_t += time.perf_counter() - t0
            if a != b:
                raise SystemExit(f"speculative output differs from greedy for {text!r}")
            n_tokens += len(a)
            accepted, drafted = accepted + st["accepted"], drafted + st["drafted"]
            calls += st["forward_calls"]
    print(f"decode, {label}: {len(prompts)} prompts x {max_new} tokens x {reps}: plain "
          f"{n_tokens / plain_t:.1f} tok/s, speculative {n_tokens / spec_t:.1f} tok/s "
          f"({plain_t / spec_t:.2f}x), drafts accepted {accepted}/{drafted} "
          f"({accepted / max(drafted, 1):.0%}), {n_tokens / max(calls, 1):.2f} tokens per main "
          "forward, outputs identical")
    return plain_t / spec_t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--fit-steps", type=int, default=150,
                    help="steps fitting the decoding model to its 4 documents")
    ap.add_argument("--quick", action="store_true", help="fewer steps everywhere (a smoke run)")
    args = ap.parse_args()
    steps = 20 if args.quick else args.train_steps
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    bench_ssd()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        data = seed_shards(tmp)

        r = run_train(tmp, "tiny", data, steps=steps)
        print(f"train tiny: {r.params / 1e6:.2f}M params, {r.tokens} tokens in {r.elapsed_s:.1f}s = "
              f"{r.tokens_per_s:.0f} tok/s (seq 256 x 8), final loss {r.loss:.3f}, eval {r.eval_loss:.3f}")

        micro = config_json(tmp, "micro", d_model=64)
        nsteps = 30 if args.quick else 120
        fp = run_train(tmp, "fp", data, model=micro, steps=nsteps, batch_size=4, seq_len=128)
        q = run_train(tmp, "nvfp4", data, model=micro, steps=nsteps, batch_size=4, seq_len=128, nvfp4=True)
        gap = (q.eval_loss - fp.eval_loss) / fp.eval_loss
        print(f"nvfp4 vs full precision after {nsteps} steps: eval loss {q.eval_loss:.4f} vs "
              f"{fp.eval_loss:.4f} (gap {gap * 100:+.2f} %), train {q.loss:.4f} vs {fp.loss:.4f}, "
              f"tok/s {q.tokens_per_s:.0f} vs {fp.tokens_per_s:.0f}")

        dsteps = 10 if args.quick else 60
        same = dict(model=micro, steps=dsteps, batch_size=4, seq_len=128, kd_weight=0.9)
        plain = run_train(tmp, "student_ce", data, **{k: v for k, v in same.items() if k != "kd_weight"})
        kd = run_train(tmp, "student_kd", data, mode="distill", teachers=("smollm2-135m",), **same)
        print(f"distillation ({dsteps} steps, same batches): eval loss distilled {kd.eval_loss:.4f} vs "
              f"CE only {plain.eval_loss:.4f} ({'lower' if kd.eval_loss < plain.eval_loss else 'NOT lower'})")

        max_new = 24 if args.quick else 64
        generic = ["The history of", "Rivers are", "In economics,", "The printing press"]
        bench_decode(tmp / "tiny", generic, max_new, f"under-trained tiny of (2), eval loss {r.eval_loss:.2f}")
        fit_data, openings = fit_shards(tmp, data)
        fit = run_train(tmp, "tiny_fit", fit_data, model=config_json(tmp, "tiny_mtp3", mtp_depths=3),
                        steps=20 if args.quick else args.fit_steps, batch_size=4)
        speed = bench_decode(tmp / "tiny_fit", openings, max_new,
                             f"tiny with 3 MTP depths fitted to 4 documents (train loss {fit.loss:.2f}), "
                             "their openings")
    print(f"spec_decode_speedup: {speed:.2f}")


if __name__ == "__main__":
    main()
