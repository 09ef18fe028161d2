"""MinHash dedup throughput and agreement: synth's `dedup_decisions` (Ray Data) vs datatrove's
MinHash pipeline, on the same corpus, with the same shingles and permutations, in one run.

    python benchmarks/dedup.py [--docs 20000] [--threshold 0.8] [--num-perm 128]
                               [--memory-docs 200000] [--workers N]

Corpus: synthetic documents (40-120 words drawn from a 20k-word Zipf vocabulary, capitalized,
with commas and a final period), 4 Parquet shards. 30% of the documents are planted copies of
an earlier one: re-punctuated and re-cased exact copies, near copies (0.5-1% of the words
replaced), gray-zone copies (2-4%) and far copies (15%); the planted pairs' exact Jaccard is
computed by brute force and each tool's recall/false merges on them are reported.

Same shingles: word 5-grams of the normalized text. datatrove runs its default text
normalization (lower case, punctuation to spaces, ...) with a whitespace word tokenizer
(its English default is spaCy); on this corpus (ASCII letters and punctuation, no digits) both
give the same words, which the benchmark checks on the first 500 documents. Same permutations:
bands x rows come from synth (`threshold`, `num_perm`); datatrove gets num_buckets=bands,
hashes_per_bucket=rows, and synth runs with num_perm=bands*rows. (synth additionally verifies
candidates against the signatures; datatrove keeps every LSH candidate.)

Timing: synth is timed on one `dedup_decisions` call after Ray is started and its workers are
warmed up on a small corpus (start-up excluded, as in the other benchmarks; the warm-up time is
printed). datatrove is timed over its four LocalPipelineExecutor runs (signatures with one task
per shard, buckets with one task per bucket, cluster, filter writing the removed documents),
`--workers` processes each (default: CPUs); its process pools start inside each run, as they do
in use. datatrove 0.10.1 passes `str` to xxhash, which xxhash >= 4 rejects
(huggingface/datatrove#508); the benchmark applies the fix of datatrove PR #519 (encode to
UTF-8 first). datatrove's logs go to a file in the temp folder.

Agreement: Jaccard of the two sets of removed ids (which also differ where the keeper rules do),
Jaccard of the sets of documents that are in a duplicate cluster, and pairwise precision/recall of
synth's same-cluster pairs against datatrove's.

Memory (`--memory-docs N`, default 200000, 0 skips; runs first so the peak is its own): N short
documents (10-40 words), written shard by shard, deduplicated by synth; prints docs/s and the
driver's peak RSS (`ru_maxrss`). The last line is `speedup_vs_datatrove: X` (synth docs/s over
datatrove docs/s).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import resource
import string
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    from datatrove.utils.word_tokenizers import WordTokenizer
except ImportError:
    sys.exit("this benchmark compares against datatrove: pip install datatrove")

N_SHARDS = 4
NGRAM = 5


# --- corpus ----------------------------------------------------------------------------------

class Corpus:
    """Planted-duplicate documents; `planted` maps a copy's id to its original's id."""

    def __init__(self, seed: int = 0, words: tuple[int, int] = (40, 120)):
        self.rng = random.Random(seed)
        letters = string.ascii_lowercase
        self.vocab = ["".join(self.rng.choice(letters) for _ in range(self.rng.randint(3, 9)))
                      for _ in range(20000)]
        self.cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(self.vocab))))
        self.words = words
        self.planted: dict[str, str] = {}

    def render(self, words: list[str]) -> str:
        out = []
        for i, w in enumerate(words):
            out.append(w.capitalize() if i == 0 or self.rng.random() < 0.03 else w)
            if self.rng.random() < 0.06:
                out[-1] += self.rng.choice([",", ";", ":", " -"])
        return " ".join(out) + self.rng.choice([".", "!", "?", "..."])

    def shard(self, n: int, prefix: str, dup_frac: float = 0.3) -> list[tuple[str, str]]:
        rng, rows, originals = self.rng, [], []
        for i in range(n):
            doc_id = f"{prefix}{i:07d}"
            if originals and rng.random() < dup_frac:
                src_id, src = rng.choice(originals)
                kind = rng.random()
                p = (0.0 if kind < 0.3 else rng.choice([0.005, 0.01]) if kind < 0.7
                     else rng.choice([0.02, 0.04]) if kind < 0.85 else 0.15)
                words = [rng.choice(self.vocab) if rng.random() < p else w for w in src]
                self.planted[doc_id] = src_id
            else:
                words = rng.choices(self.vocab, cum_weights=self.cum, k=rng.randint(*self.words))
                originals.append((doc_id, words))
            rows.append((doc_id, self.render(words)))
        return rows


def write_corpus(folder: Path, rows: list[tuple[str, str]], start: int = 0,
                 n_shards: int = N_SHARDS):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_shards):
        part = rows[k::n_shards]
        pq.write_table(pa.table({"id": [r[0] for r in part], "text": [r[1] for r in part]}),
                       folder / f"part-{start + k:05d}.parquet", compression="zstd")


# --- datatrove ------------------------------------------------------------------------------

def _xxhash32(data):
    import xxhash

    return xxhash.xxh32_intdigest(data.encode("utf-8") if isinstance(data, str) else data)


def _xxhash64(data):
    import xxhash

    return xxhash.xxh64_intdigest(data.encode("utf-8") if isinstance(data, str) else data)


class WhitespaceTokenizer(WordTokenizer):
    """Words are what `str.split` returns (after datatrove's own text normalization)."""

    def word_tokenize(self, text):
        return text.split()

    def sent_tokenize(self, text):
        return [text]

    def span_tokenize(self, text):
        return [(0, len(text))]


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send fd 2 (this process and the pools it starts) to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_datatrove(data: Path, work: Path, bands: int, rows: int, workers: int):
    """datatrove's 4 MinHash stages; returns (seconds, removed ids, clusters as id lists)."""
    import numpy as np
    import datatrove.utils.hashes.xxhash as dt_xxhash

    dt_xxhash.xxhash32, dt_xxhash.xxhash64 = _xxhash32, _xxhash64  # datatrove PR #519's fix
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    cfg = MinhashConfig(n_grams=NGRAM, num_buckets=bands, hashes_per_bucket=rows, seed=1)

    def reader():
        return ParquetReader(str(data), glob_pattern="*.parquet", id_key="id")

    stages = [
        LocalPipelineExecutor([reader(), MinhashDedupSignature(str(work / "sigs"), config=cfg,
                                                               language=WhitespaceTokenizer())],
                              tasks=N_SHARDS, workers=workers, logging_dir=str(work / "log1")),
        LocalPipelineExecutor([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"),
                                                   config=cfg)],
                              tasks=bands, workers=workers, logging_dir=str(work / "log2")),
        LocalPipelineExecutor([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"),
                                                   config=cfg, save_cluster_id=True)],
                              tasks=1, logging_dir=str(work / "log3")),
        LocalPipelineExecutor([reader(), MinhashDedupFilter(
            str(work / "remove"), exclusion_writer=ParquetWriter(str(work / "removed")))],
                              tasks=N_SHARDS, workers=workers, logging_dir=str(work / "log4")),
    ]
    with stderr_to(work / "datatrove.log"):
        t = time.perf_counter()
        stage_s = []
        for stage in stages:
            stage.run()
            stage_s.append(time.perf_counter() - t - sum(stage_s))
        seconds = time.perf_counter() - t

        # Untimed: map datatrove's (task, document index) back to our ids.
        order = {rank: [d.id for d in reader().run(rank=rank, world_size=N_SHARDS)]
                 for rank in range(N_SHARDS)}
    removed, clusters = set(), {}
    for rank, ids in order.items():
        rm = work / "remove" / f"{rank:06d}.remove"
        if rm.exists():
            removed.update(ids[i] for i in np.fromfile(rm, dtype="<u4"))
        cl = work / "remove" / f"{rank:06d}.clusters"
        if cl.exists():
            for doc, cid in np.fromfile(cl, dtype="<u4").reshape(-1, 2):
                clusters.setdefault(int(cid), []).append(ids[doc])
    return seconds, stage_s, removed, list(clusters.values())


def datatrove_words(text: str) -> list[str]:
    from datatrove.utils.text import TextNormConfig, simplify_text

    return simplify_text(text, TextNormConfig()).split()


# --- comparison -------------------------------------------------------------------------------

def same_cluster_pairs(clusters) -> set[tuple[str, str]]:
    pairs = set()
    for members in clusters:
        pairs.update(itertools.combinations(sorted(members), 2))
    return pairs


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_phase(n_docs: int, tmp: Path, threshold: float, num_perm: int) -> None:
    from synth.stages.dedup import dedup_decisions

    corpus = Corpus(seed=2, words=(10, 40))
    folder = tmp / "memory"
    per_shard = 25000
    for s in range(0, n_docs, per_shard):  # written shard by shard: the driver never holds it all
        write_corpus(folder, corpus.shard(min(per_shard, n_docs - s), prefix=f"m{s:07d}_"),
                     start=s // per_shard, n_shards=1)
    corpus = None
    before = peak_rss_mb()
    t = time.perf_counter()
    out = dedup_decisions([folder], threshold=threshold, num_perm=num_perm)
    seconds = time.perf_counter() - t
    removed = out.num_rows - sum(out.column("keep").to_pylist())
    print(f"memory: {n_docs} short docs (10-40 words) deduplicated in {seconds:.2f} s "
          f"({n_docs / seconds:.0f} docs/s), {removed} removed; driver peak RSS "
          f"{peak_rss_mb():.0f} MB (before the run: {before:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000, help="documents for the speed comparison")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128, help="synth's bands x rows come from it")
    ap.add_argument("--memory-docs", type=int, default=200000, help="0 skips the memory phase")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="datatrove worker processes")
    args = ap.parse_args()

    from synth.ray_runtime import init_ray
    from synth.stages.dedup import dedup_decisions, lsh_params, normalize_text, shingles

    bands, rows = lsh_params(args.threshold, args.num_perm)
    num_perm = bands * rows
    with tempfile.TemporaryDirectory(prefix="synth-dedup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        init_ray(None)
        warm = Corpus(seed=9)
        write_corpus(tmp / "warm", warm.shard(2000, prefix="w"))
        dedup_decisions([tmp / "warm"], threshold=args.threshold, num_perm=num_perm,
                        bands=bands, rows=rows)
        print(f"ray start + warm-up (excluded): {time.perf_counter() - t:.1f} s")

        if args.memory_docs:
            memory_phase(args.memory_docs, tmp, args.threshold, args.num_perm)

        corpus = Corpus(seed=0)
        docs = corpus.shard(args.docs, prefix="d")
        texts = dict(docs)
        write_corpus(tmp / "data", docs)
        same_words = all(datatrove_words(text) == normalize_text(text).split()
                         for _, text in docs[:500])

        t = time.perf_counter()
        ours = dedup_decisions([tmp / "data"], threshold=args.threshold, num_perm=num_perm,
                               bands=bands, rows=rows)
        ours_s = time.perf_counter() - t
        dt_s, dt_stages, dt_removed, dt_clusters = run_datatrove(
            tmp / "data", tmp / "dt", bands, rows, args.workers)

    table = ours.to_pylist()
    our_removed = {r["id"] for r in table if not r["keep"]}
    groups: dict[str, list[str]] = {}
    for r in table:
        groups.setdefault(r["cluster_id"], []).append(r["id"])
    our_pairs = same_cluster_pairs(g for g in groups.values() if len(g) > 1)
    dt_pairs = same_cluster_pairs(dt_clusters)
    both = len(our_pairs & dt_pairs)

    # ground truth on the planted (copy, original) pairs
    sets = {}

    def shingle_set(doc_id):
        if doc_id not in sets:
            sets[doc_id] = set(shingles(texts[doc_id], "word", NGRAM))
        return sets[doc_id]

    truth = [(c, o, jaccard(shingle_set(c), shingle_set(o))) for c, o in corpus.planted.items()]
    our_cluster = {r["id"]: r["cluster_id"] for r in table}
    dt_cluster = {m: k for k, g in enumerate(dt_clusters) for m in g}

    def truth_stats(same) -> str:
        hi = [same(c, o) for c, o, j in truth if j >= args.threshold + 0.05]
        lo = [same(c, o) for c, o, j in truth if j <= args.threshold - 0.1]
        return f"recall {sum(hi) / max(1, len(hi)):.3f} (J >= {args.threshold + 0.05:.2f}, " \
               f"{len(hi)} pairs), merged {sum(lo)} of {len(lo)} (J <= {args.threshold - 0.1:.2f})"

    ours_rate, dt_rate = args.docs / ours_s, args.docs / dt_s
    print(f"corpus: {args.docs} docs in {N_SHARDS} shards, {len(corpus.planted)} planted copies; "
          f"word {NGRAM}-grams, {bands} bands x {rows} rows = {num_perm} permutations, "
          f"threshold {args.threshold}; same words as datatrove's normalization on 500 docs: "
          f"{same_words}")
    print(f"synth dedup_decisions (Ray Data): {ours_rate:.0f} docs/s ({ours_s:.2f} s), "
          f"{len(our_removed)} removed")
    print(f"datatrove minhash 4 stages ({args.workers} workers): {dt_rate:.0f} docs/s "
          f"({dt_s:.2f} s: signatures {dt_stages[0]:.2f}, buckets {dt_stages[1]:.2f}, "
          f"cluster {dt_stages[2]:.2f}, filter {dt_stages[3]:.2f}), {len(dt_removed)} removed")
    our_clustered = {m for g in groups.values() if len(g) > 1 for m in g}
    dt_clustered = {m for g in dt_clusters for m in g}
    print(f"agreement: removed-id Jaccard {jaccard(our_removed, dt_removed):.3f} (the keepers "
          f"differ: synth keeps the smallest id, datatrove its union-find root); Jaccard of the "
          f"documents in a duplicate cluster {jaccard(our_clustered, dt_clustered):.3f}; "
          f"same-cluster pairs: precision {both / max(1, len(our_pairs)):.3f}, recall "
          f"{both / max(1, len(dt_pairs)):.3f} (synth {len(our_pairs)}, datatrove {len(dt_pairs)})")
    print(f"planted pairs, synth: " + truth_stats(lambda c, o: our_cluster[c] == our_cluster[o]))
    print(f"planted pairs, datatrove: " + truth_stats(
        lambda c, o: c in dt_cluster and dt_cluster.get(c) == dt_cluster.get(o)))
    print(f"speedup_vs_datatrove: {ours_rate / dt_rate:.2f}")


if __name__ == "__main__":
    main()
