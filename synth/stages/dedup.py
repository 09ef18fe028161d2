"""Exact and MinHash-LSH deduplication: a global stage in two passes over the shards.

    decisions = dedup_decisions(paths, method="minhash", threshold=0.8)

returns one row per input row: `id`, `cluster_id` (the id of the row kept in its cluster; a
singleton's own id), `keep`, `reason` (null when kept, else "exact_duplicate" or
"minhash_duplicate") and `duplicate_of` (the kept row's id, null when kept).

How it runs (Ray Data; texts never reach the driver, only ids do):

1. map pass (`map_batches`, one task per block): normalize each text, hash it (exact key), and
   for MinHash build its shingles, a MinHash signature, and one row per LSH band
   `(band, band key, id, sketch)`, plus one "exact" row per document keyed by the hash of its
   normalized text. So MinHash mode also finds exact duplicates, including texts too short to
   have a shingle. Exact mode emits only the exact row.
2. reduce pass (`groupby(...).map_groups(...)`): rows that share a band key are candidate
   pairs. Each candidate pair is checked against the 8-bit sketch of the full signature (an
   estimate of the pair's Jaccard similarity over all `num_perm` values, not only the b x r values
   used for banding), and only pairs estimated at or above `threshold` are kept. Only id pairs
   travel back to the driver.
3. driver: connected components over the id pairs (union-find as array operations), then one
   keeper per component.

Keeper rule: the row with the highest `quality_column` value (nulls and NaN last), then the
smallest id (string order). The result is deterministic: the same rows and parameters give
every row the same decision, however the rows are split into shards and blocks.

Normalization (`normalize_text`, shared by exact keys and shingles): Unicode NFKC, casefold;
letters, marks and numbers are kept, invisible format characters (soft hyphen, zero-width
joiners: category Cf) are removed, every other character (punctuation, symbols, whitespace,
controls) becomes a space; then runs of spaces collapse to one and the ends are stripped.
"Hello,  World!" and "hello world" are exact duplicates. ASCII texts take a vectorized path
with the same result. A null text is never a duplicate; empty texts are exact duplicates
of each other.

Shingles (`shingles`): word n-grams of the normalized text (`shingle="word"`, default n=5),
or character n-grams of it, spaces included (`shingle="char"`). A text shorter than n units
has one shingle (the whole text); an empty one has none. Each shingle gets a 32-bit hash
(`shingle_hash`: polynomial hashes mod 2^64 through the MurmurHash3 64-bit finalizer), which
is fed to datasketch's MinHash permutations (scheme "affine32", datasketch >= 2.0: MurmurHash3
32-bit pre-mix, then `a*h + b mod 2^32` per permutation; parameters from
`datasketch.MinHash(num_perm, seed)`). The signatures equal
`datasketch.MinHash(num_perm, seed=seed, hashfunc=shingle_hash)` fed the same shingles
(tested); this module only computes them a block at a time with numpy.

LSH parameters (`lsh_params`): bands b and rows r with b*r <= num_perm that minimize the
weighted integral of false positives below the threshold and false negatives above it (the
S-curve 1 - (1 - s^r)^b, as in Leskovec, Rajaraman, Ullman, "Mining of Massive Datasets",
section 3.4, and datasketch's `MinHashLSH`). Because every candidate is verified, the default
weights false negatives 9:1 (datasketch: 1:1): a false candidate costs one sketch comparison, a
missed one a duplicate left in the data. `bands`/`rows` override the choice (one of them alone:
the other is num_perm // it).

Verification uses b-bit minwise hashing (Li and Koenig, "b-Bit Minwise Hashing", WWW 2010)
with b=8: the lowest 8 bits of each signature value; two unrelated values agree with
probability 1/256, which the estimate corrects for. In a bucket of up to `ALL_PAIRS_MAX` rows
every pair is checked; in a bigger bucket each row is checked against the bucket's smallest id
and against its neighbour in id order (the star and chain keep the pair volume linear).

Not covered: semantic (embedding) dedup, cross-dataset dedup against an index, and exact
Jaccard verification over the shingle sets (the verification is an estimate: at
`num_perm=128` its standard error is about 0.04 near J=0.75).
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from functools import lru_cache
from typing import Iterable

from synth.errors import SynthError

__all__ = [
    "ALL_PAIRS_MAX",
    "band_rows",
    "bucket_pairs",
    "dedup_decisions",
    "decisions_schema",
    "lsh_params",
    "normalize_text",
    "shingle_hash",
    "shingles",
]

METHODS = ("exact", "minhash")
SHINGLES = ("word", "char")
REASON_EXACT = "exact_duplicate"
REASON_MINHASH = "minhash_duplicate"
ALL_PAIRS_MAX = 32
"""Buckets up to this size are verified pair by pair; bigger ones as a star plus a chain."""

_MASK64 = (1 << 64) - 1
_K = 0x9E3779B97F4A7C15  # odd (the 64-bit golden ratio), so it has an inverse mod 2^64
_K_INV = pow(_K, -1, 1 << 64)
_K2 = 0xC2B2AE3D27D4EB4F  # second band-key multiplier (xxHash64's PRIME64_2, odd)
_EXACT_BAND = -1
_SKETCH_BITS = 8
_CHUNK_BYTES = 1 << 20  # texts are normalized ~1 MB (UTF-8) at a time (bounded memory)
_SIG_CELLS = 1 << 19  # shingles x permutations per signature step (~2 MB of uint32)
_ROWS_PER_PART = 1_000_000  # band rows per reduce group (a group is sorted in one task)


# ---------------------------------------------------------------------------------------------
# Normalization and the reference shingle hashes (pure Python: the spec the array code follows)


class _CharMap(dict):
    """str.translate table built lazily: keep L*, M*, N*; drop Cf; everything else -> space."""

    def __missing__(self, cp: int):
        cat = unicodedata.category(chr(cp))
        value = cp if cat[0] in "LMN" else (None if cat == "Cf" else " ")
        self[cp] = value
        return value


_CHAR_MAP = _CharMap()


def normalize_text(text: str) -> str:
    """NFKC, casefold, punctuation/symbols/whitespace to single spaces, format chars removed."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP)
    return " ".join(t.split())


def shingles(text: str, shingle: str = "word", ngram: int = 5) -> list:
    """The shingles of `text`: tuples of `ngram` words, or strings of `ngram` characters."""
    norm = normalize_text(text)
    if not norm:
        return []
    units = norm.split(" ") if shingle == "word" else norm
    if len(units) < ngram:
        return [tuple(units) if shingle == "word" else units]
    if shingle == "word":
        return [tuple(units[i:i + ngram]) for i in range(len(units) - ngram + 1)]
    return [units[i:i + ngram] for i in range(len(units) - ngram + 1)]


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK64
    return x ^ (x >> 33)


def _horner_int(values: Iterable[int]) -> int:
    h = 0
    for v in values:
        h = (h * _K + v) & _MASK64
    return h


def shingle_hash(shingle) -> int:
    """The 32-bit hash of one shingle (a tuple of words or a string of characters).

    A word hashes to fmix64(sum c_i K^(m-1-i) mod 2^64) over its code points; a word shingle to
    fmix64 of the same polynomial over its words' hashes; a character shingle directly over its
    code points. The hash is the top 32 bits."""
    if isinstance(shingle, tuple):
        h = _horner_int(_fmix64_int(_horner_int(map(ord, w))) for w in shingle)
    else:
        h = _horner_int(map(ord, shingle))
    return _fmix64_int(h) >> 32


# ---------------------------------------------------------------------------------------------
# LSH parameters


@lru_cache(maxsize=256)
def lsh_params(threshold: float, num_perm: int, *, false_positive_weight: float = 0.1,
               false_negative_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimizing
    fp_weight * integral_0^t P(s) ds + fn_weight * integral_t^1 (1 - P(s)) ds,
    where P(s) = 1 - (1 - s^rows)^bands is the chance that a pair of Jaccard similarity s shares
    at least one band. The default weights (0.1, 0.9) are the ones `dedup_decisions` uses: its
    candidates are verified, so a false positive is cheap. Weights (0.5, 0.5) give the choice
    datasketch's `MinHashLSH` makes (tested)."""
    import numpy as np

    if not 0.0 < threshold < 1.0:
        raise SynthError(f"dedup threshold must be between 0 and 1 (exclusive), got {threshold}")
    if num_perm < 1:
        raise SynthError(f"num_perm must be >= 1, got {num_perm}")
    # Composite Simpson on a fixed grid on each side of the threshold: accurate to ~1e-9 here,
    # plenty to rank the candidates.
    m = 512
    lo = np.linspace(0.0, threshold, 2 * m + 1)
    hi = np.linspace(threshold, 1.0, 2 * m + 1)
    w = np.ones(2 * m + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    w_lo, w_hi = w * (threshold / (6 * m)), w * ((1.0 - threshold) / (6 * m))
    best, best_err = (1, 1), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = float(w_lo @ (1.0 - (1.0 - lo ** r) ** b))
            fn = float(w_hi @ ((1.0 - hi ** r) ** b))
            err = false_positive_weight * fp + false_negative_weight * fn
            if err < best_err - 1e-15:
                best, best_err = (b, r), err
    return best


def _resolve_bands(threshold: float, num_perm: int, bands: int | None,
                   rows: int | None) -> tuple[int, int]:
    if bands is None and rows is None:
        return lsh_params(threshold, num_perm)
    if bands is None:
        bands = num_perm // rows if rows and rows > 0 else 0
    elif rows is None:
        rows = num_perm // bands if bands > 0 else 0
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise SynthError(f"bands x rows must be at least 1 x 1 and at most num_perm ({num_perm}); "
                         f"got bands={bands}, rows={rows}")
    return bands, rows


# ---------------------------------------------------------------------------------------------
# Array code (numpy), run inside the Ray tasks


def _fmix64(x):
    import numpy as np

    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _fmix32(x):
    """MurmurHash3's 32-bit finalizer: datasketch's "affine32" pre-mix."""
    import numpy as np

    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


_POWERS: dict[int, object] = {}


def _powers(base: int, n: int):
    """base^0 .. base^(n-1) mod 2^64 (cached per process, grown by doubling)."""
    import numpy as np

    arr = _POWERS.get(base)
    if arr is None or len(arr) < n:
        size = max(n, 2 * len(arr) if arr is not None else 1 << 16)
        arr = np.full(size, base, dtype=np.uint64)
        arr[0] = 1
        arr = np.cumprod(arr, dtype=np.uint64)
        _POWERS[base] = arr
    return arr


def _span_hashes(values, starts, ends):
    """Horner hash sum v_i K^(e-1-i) mod 2^64 of every span values[s:e] (all non-empty).

    Uses prefix sums of v_j K^-j: the span's sum times K^(e-1) is its Horner hash."""
    import numpy as np

    n = len(values)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    if n:
        np.cumsum(values.astype(np.uint64) * _powers(_K_INV, n)[:n], out=prefix[1:])
    return _powers(_K, n)[ends - 1] * (prefix[ends] - prefix[starts])


def _windows(lo, hi, n: int):
    """Spans of `n` units inside each segment [lo, hi); a shorter non-empty segment is one span.
    Returns (span starts, span ends, spans per segment)."""
    import numpy as np

    length = hi - lo
    count = np.where(length >= n, length - n + 1, (length > 0).astype(length.dtype))
    total = int(count.sum())
    first = np.cumsum(count) - count
    starts = np.repeat(lo, count) + (np.arange(total) - np.repeat(first, count))
    ends = np.minimum(starts + n, np.repeat(hi, count))
    return starts, ends, count


def _string_buffers(arr):
    """(bytes as uint8, offsets as int64 starting at 0) of a pyarrow (large_)string array."""
    import numpy as np
    import pyarrow as pa

    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    offsets = offsets.astype(np.int64)
    return data[offsets[0]:offsets[-1]], offsets - offsets[0]


@lru_cache(maxsize=1)
def _ascii_map():
    import numpy as np

    lut = np.full(256, 32, dtype=np.uint8)
    for c in range(128):
        ch = chr(c)
        if ch.isalnum():
            lut[c] = ord(ch.lower())
    return lut


def _normalize_codepoints(texts):
    """Normalized texts of a pyarrow string array as one uint32 code point array + offsets.

    ASCII texts are normalized with array operations (lower-case letters and digits kept, every
    other byte a space, space runs collapsed, ends stripped); the others through
    `normalize_text`. Both give `normalize_text`'s result (tested)."""
    import numpy as np

    buf, off = _string_buffers(texts)
    n = len(off) - 1
    lens = np.diff(off)
    doc_of = np.repeat(np.arange(n, dtype=np.int32), lens)
    m = _ascii_map()[buf]
    ns = m != 32
    prev_ns = np.zeros(len(buf), dtype=bool)
    prev_ns[1:] = ns[:-1]
    prev_ns[off[:-1][lens > 0]] = False
    nz = np.flatnonzero(ns)
    last = np.searchsorted(nz, off[1:], "left") - 1  # index in nz of each doc's last non-space
    last_pos = np.where(last >= 0, nz[np.maximum(last, 0)], -1) if len(nz) else np.full(n, -1)
    last_pos = np.where(last_pos >= off[:-1], last_pos, -1)
    keep = ns | (prev_ns & (np.arange(len(buf)) < last_pos[doc_of]))
    compact = m[keep]
    new_len = np.bincount(doc_of[keep], minlength=n).astype(np.int64)

    unicode_docs = np.unique(doc_of[buf >= 128])
    if len(unicode_docs) == 0:
        return compact.astype(np.uint32), np.concatenate([[0], np.cumsum(new_len)])
    pieces = {}
    for d in unicode_docs.tolist():
        s = normalize_text(texts[d].as_py() or "")
        pieces[d] = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)
        new_len[d] = len(pieces[d])
    final_off = np.concatenate([[0], np.cumsum(new_len)])
    out = np.empty(int(final_off[-1]), dtype=np.uint32)
    is_ascii_doc = np.ones(n, dtype=bool)
    is_ascii_doc[unicode_docs] = False
    cdoc = doc_of[keep]
    sel = is_ascii_doc[cdoc]
    compact_start = np.cumsum(np.bincount(cdoc, minlength=n)) - np.bincount(cdoc, minlength=n)
    pos = np.arange(len(compact))[sel]
    out[final_off[cdoc[sel]] + (pos - compact_start[cdoc[sel]])] = compact[sel]
    for d, cp in pieces.items():
        out[final_off[d]:final_off[d + 1]] = cp
    return out, final_off


def _exact_keys(cps, off):
    """Two uint64 halves of BLAKE2b-128 over each normalized text (as UTF-32-LE)."""
    import numpy as np

    raw = memoryview(cps.astype("<u4", copy=False)).cast("B")
    digests = b"".join(hashlib.blake2b(raw[4 * s:4 * e], digest_size=16).digest()
                       for s, e in zip(off[:-1].tolist(), off[1:].tolist()))
    keys = np.frombuffer(digests, dtype="<u8").reshape(-1, 2)
    return keys[:, 0].copy(), keys[:, 1].copy()


def _shingle_hashes(cps, off, shingle: str, ngram: int):
    """32-bit shingle hashes of every text (concatenated) and the count per text."""
    import numpy as np

    n = len(off) - 1
    if shingle == "char":
        starts, ends, count = _windows(off[:-1], off[1:], ngram)
        h = _span_hashes(cps, starts, ends)
    else:
        space = cps == 32
        is_start = ~space
        is_start[1:] &= space[:-1]
        is_start[off[:-1][np.diff(off) > 0]] = ~space[off[:-1][np.diff(off) > 0]]
        is_end = ~space
        is_end[:-1] &= space[1:]
        ne = np.diff(off) > 0
        is_end[off[1:][ne] - 1] = True
        w_start = np.flatnonzero(is_start)
        w_end = np.flatnonzero(is_end) + 1
        word_h = _fmix64(_span_hashes(cps, w_start, w_end))
        w_off = np.searchsorted(w_start, off)
        starts, ends, count = _windows(w_off[:-1], w_off[1:], ngram)
        h = _span_hashes(word_h, starts, ends)
    assert len(count) == n
    return (_fmix64(h) >> np.uint64(32)).astype(np.uint32), count


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int):
    """datasketch's affine32 permutation parameters (a odd, b) as uint32 arrays."""
    import numpy as np
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _signatures(h32, count, num_perm: int, seed: int):
    """MinHash signatures (docs with >= 1 shingle, in order) as a (docs, num_perm) uint32 array."""
    import numpy as np

    a, b = _permutations(num_perm, seed)
    hv = _fmix32(h32)
    count = count[count > 0]
    ends = np.cumsum(count)
    starts = ends - count
    out = np.empty((len(count), num_perm), dtype=np.uint32)
    step = max(1, _SIG_CELLS // num_perm)
    d0 = 0
    while d0 < len(count):
        d1 = int(np.searchsorted(ends, starts[d0] + step, "right"))
        d1 = max(d1, d0 + 1)
        seg = hv[starts[d0]:ends[d1 - 1]]
        phv = seg[:, None] * a[None, :]
        phv += b[None, :]
        out[d0:d1] = np.minimum.reduceat(phv, starts[d0:d1] - starts[d0], axis=0)
        d0 = d1
    return out


def _band_keys(sig, bands: int, rows: int):
    """(k1, k2) uint64 keys of every (doc, band): two polynomial hashes of the band's values."""
    import numpy as np

    n = len(sig)
    v = sig[:, :bands * rows].reshape(n, bands, rows).astype(np.uint64)
    band_ix = np.arange(bands, dtype=np.uint64)[None, :]
    h1 = np.broadcast_to(band_ix + np.uint64(1), (n, bands)).copy()
    h2 = h1.copy()
    for j in range(rows):
        h1 = h1 * np.uint64(_K) + v[:, :, j]
        h2 = h2 * np.uint64(_K2) + v[:, :, j]
    return _fmix64(h1), _fmix64(h2 ^ np.uint64(_K))


def _empty_rows(sketch_width: int):
    import pyarrow as pa

    return pa.table({
        "part": pa.array([], pa.int32()), "band": pa.array([], pa.int16()),
        "k1": pa.array([], pa.uint64()), "k2": pa.array([], pa.uint64()),
        "id": pa.array([], pa.string()),
        "sketch": pa.array([], pa.binary(sketch_width)),
    })


def band_rows(batch, *, column: str, id_column: str, method: str, num_perm: int, seed: int,
              shingle: str, ngram: int, bands: int, rows: int, parts: int):
    """Map pass: a block of (id, text) rows -> its bucket rows (one per band and one exact)."""
    import numpy as np
    import pyarrow as pa

    width = num_perm if method == "minhash" else 1
    out = []
    ids_all = batch.column(id_column)
    ids_all = ids_all.cast(pa.string()) if ids_all.type != pa.string() else ids_all
    texts_all = batch.column(column)
    n_all = batch.num_rows
    start = 0
    while start < n_all:
        # take up to ~1 MB of text (at least one row) per step
        texts = texts_all.slice(start, min(n_all - start, 65536)).combine_chunks()
        _, off = _string_buffers(texts)
        take = max(1, int(np.searchsorted(off, _CHUNK_BYTES, "right")) - 1)
        texts = texts.slice(0, take)
        ids = ids_all.slice(start, take).combine_chunks()
        start += take
        valid = np.asarray(texts.is_valid())
        cps, off = _normalize_codepoints(texts)
        k1, k2 = _exact_keys(cps, off)
        vix = np.flatnonzero(valid)
        pieces = [(np.full(len(vix), _EXACT_BAND, np.int16), k1[vix], k2[vix], vix,
                   np.zeros((len(vix), width), np.uint8))]
        if method == "minhash":
            h32, count = _shingle_hashes(cps, off, shingle, ngram)
            if not valid.all():  # a null text has no shingles
                h32, count = h32[np.repeat(valid, count)], np.where(valid, count, 0)
            sig = _signatures(h32, count, num_perm, seed)
            docs = np.flatnonzero(count > 0)
            b1, b2 = _band_keys(sig, bands, rows)
            sketch = (sig & np.uint32(0xFF)).astype(np.uint8)
            pieces.append((np.tile(np.arange(bands, dtype=np.int16), len(docs)), b1.ravel(),
                           b2.ravel(), np.repeat(docs, bands), np.repeat(sketch, bands, axis=0)))
        band = np.concatenate([p[0] for p in pieces])
        key1 = np.concatenate([p[1] for p in pieces])
        key2 = np.concatenate([p[2] for p in pieces])
        row = np.concatenate([p[3] for p in pieces])
        sk = np.concatenate([p[4] for p in pieces]) if len(band) else np.zeros((0, width), np.uint8)
        part = ((key1 >> np.uint64(32)) % np.uint64(parts)).astype(np.int32)
        out.append(pa.table({
            "part": part, "band": band, "k1": key1, "k2": key2,
            "id": ids.take(pa.array(row, pa.int64())),
            "sketch": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(width), len(band), [None, pa.py_buffer(np.ascontiguousarray(sk))]),
        }))
    return pa.concat_tables(out) if out else _empty_rows(width)


def _pairs_schema():
    import pyarrow as pa

    return pa.schema([("a", pa.string()), ("b", pa.string()), ("exact", pa.bool_())])


def bucket_pairs(group, *, threshold: float):
    """Reduce pass over one group of bucket rows: verified duplicate pairs (ids only).

    Rows with equal (band, k1, k2) share an LSH bucket (or, band -1, a normalized text)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if group.num_rows < 2:
        return _pairs_schema().empty_table()
    order = pc.sort_indices(group, sort_keys=[("band", "ascending"), ("k1", "ascending"),
                                              ("k2", "ascending"), ("id", "ascending")])
    group = group.take(order)
    band = group.column("band").to_numpy()
    k1 = group.column("k1").to_numpy()
    k2 = group.column("k2").to_numpy()
    n = len(band)
    new = np.ones(n, dtype=bool)
    new[1:] = (band[1:] != band[:-1]) | (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])
    run_start = np.flatnonzero(new)
    run_len = np.diff(np.append(run_start, n))
    multi = run_len >= 2
    run_start, run_len = run_start[multi], run_len[multi]
    if len(run_start) == 0:
        return _pairs_schema().empty_table()
    exact_run = band[run_start] == _EXACT_BAND

    # exact buckets: a star to the smallest id (the bucket's first row); no verification
    es, el = run_start[exact_run], run_len[exact_run]
    ea = np.repeat(es, el - 1)
    eb = ea + (np.arange(int((el - 1).sum())) - np.repeat(np.cumsum(el - 1) - (el - 1), el - 1)) + 1

    # MinHash buckets: all pairs when small, else a star to the first row plus a chain
    ms, ml = run_start[~exact_run], run_len[~exact_run]
    pa_list, pb_list = [], []
    for size in np.unique(ml).tolist():
        starts = ms[ml == size]
        if size <= ALL_PAIRS_MAX:
            i, j = np.triu_indices(size, 1)
        else:
            i = np.concatenate([np.zeros(size - 1, int), np.arange(1, size - 1)])
            j = np.concatenate([np.arange(1, size), np.arange(2, size)])
        pa_list.append((starts[:, None] + i[None, :]).ravel())
        pb_list.append((starts[:, None] + j[None, :]).ravel())
    ma = np.concatenate(pa_list) if pa_list else np.zeros(0, np.int64)
    mb = np.concatenate(pb_list) if pb_list else np.zeros(0, np.int64)
    if len(ma):
        col = group.column("sketch").combine_chunks()
        width = col.type.byte_width
        sk = np.frombuffer(col.buffers()[1], dtype=np.uint8)[
            col.offset * width:(col.offset + n) * width].reshape(n, width)
        ok = np.zeros(len(ma), dtype=bool)
        collide = 1.0 / (1 << _SKETCH_BITS)
        step = max(1, (1 << 22) // width)
        for s in range(0, len(ma), step):
            eq = (sk[ma[s:s + step]] == sk[mb[s:s + step]]).mean(axis=1)
            ok[s:s + step] = (eq - collide) / (1.0 - collide) >= threshold - 1e-9
        ma, mb = ma[ok], mb[ok]
    a = np.concatenate([ea, ma]).astype(np.int64)
    b = np.concatenate([eb, mb]).astype(np.int64)
    ids = group.column("id")
    return pa.table({"a": ids.take(pa.array(a)), "b": ids.take(pa.array(b)),
                     "exact": np.concatenate([np.ones(len(ea), bool), np.zeros(len(ma), bool)])},
                    schema=_pairs_schema())


# ---------------------------------------------------------------------------------------------
# Driver


def decisions_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.string(), nullable=False),
        pa.field("keep", pa.bool_(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("duplicate_of", pa.string()),
    ])


def _read_ids(files: list, column: str, id_column: str, quality_column: str | None):
    """ids (and quality) of every row and the text column's size, read on the driver; checks the
    columns of every file (local paths or URIs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from synth.io import shards as sh

    ids, quality, text_bytes = [], [], 0
    for f in files:
        try:
            schema = sh.read_schema(f)
        except Exception as e:
            raise SynthError(f"{f}: not a readable Parquet file ({e})") from None
        for name in (id_column, column) + ((quality_column,) if quality_column else ()):
            if schema.get_field_index(name) < 0:
                raise SynthError(f"{f}: no column {name!r} (columns: {', '.join(schema.names)}); "
                                 f"pass the right column name")
        if not (pa.types.is_string(schema.field(column).type)
                or pa.types.is_large_string(schema.field(column).type)):
            raise SynthError(f"{f}: column {column!r} is {schema.field(column).type}, not text")
        if quality_column:
            qt = schema.field(quality_column).type
            if not (pa.types.is_integer(qt) or pa.types.is_floating(qt)):
                raise SynthError(f"{f}: quality column {quality_column!r} is {qt}, not a number")
        meta = sh.read_metadata(f)
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            text_bytes += sum(rg.column(i).total_uncompressed_size for i in range(rg.num_columns)
                              if rg.column(i).path_in_schema == column)
        cols = [id_column] + ([quality_column] if quality_column else [])
        t = sh.read_table(f, columns=cols)
        col = t.column(id_column)
        if col.null_count:
            raise SynthError(f"{f}: column {id_column!r} has {col.null_count} null ids")
        ids.append(col.cast(pa.string()))
        if quality_column:
            quality.append(t.column(quality_column).cast(pa.float64()))
    id_arr = pa.chunked_array([c for ch in ids for c in ch.chunks], pa.string()).combine_chunks()
    if pc.count_distinct(id_arr).as_py() != len(id_arr):
        counts = pc.value_counts(id_arr)
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise SynthError(f"ids in column {id_column!r} are not unique (e.g. {dup!r} repeats); "
                         "dedup needs one id per row")
    q = None
    if quality_column:
        q = pa.chunked_array([c for ch in quality for c in ch.chunks], pa.float64())
        q = q.combine_chunks()
    return id_arr, q, text_bytes


def _components(n: int, a, b):
    """Connected components: label = smallest row index in the component (min-label hooking
    with pointer jumping; every hook points to a smaller index, so no cycles)."""
    import numpy as np

    label = np.arange(n, dtype=np.int64)
    while len(a):
        la, lb = label[a], label[b]
        diff = la != lb
        if not diff.any():
            break
        a, b, la, lb = a[diff], b[diff], la[diff], lb[diff]
        np.minimum.at(label, np.maximum(la, lb), np.minimum(la, lb))
        while True:
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt
    return label


def _collect_pairs(files, *, column, id_column, method, num_perm, seed, shingle, ngram, bands,
                   rows, threshold, n_rows, text_bytes):
    """Run the two Ray Data passes; return the verified pairs as one pyarrow Table."""
    import pyarrow as pa
    import ray
    from ray.data.context import ShuffleStrategy

    from synth.io.shards import is_uri
    from synth.ray_runtime import init_ray

    init_ray(None)
    # Local shards are read by path; shards on an object store through their pyarrow
    # filesystem, which Ray pickles to the read tasks (the S3 endpoint travels with it; the
    # credentials are read from the workers' environment, see synth.ray_runtime).
    read_kw: dict = {}
    paths = [str(f) for f in files]
    if any(is_uri(f) for f in files):
        from synth.io.shards import fs_paths

        read_kw["filesystem"], paths = fs_paths(files)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_doc = (bands + 1) if method == "minhash" else 1
    parts = max(cpus, math.ceil(n_rows * per_doc / _ROWS_PER_PART))
    # Few, large blocks: on a small machine each Ray task costs tens of ms; one block per CPU
    # halved the run time here. Bigger inputs get blocks of at most ~64 MB of text / 100k rows.
    blocks = max(cpus, math.ceil(n_rows / 100_000), math.ceil(text_bytes / (64 << 20)))
    ctx = ray.data.DataContext.get_current()
    v2 = getattr(ctx, "use_datasource_v2", None)
    try:
        # Ray 2.60's V2 Parquet reader lists local files in one task that took ~1 s here and
        # then read 4 shards as 1 block (one core); the V1 reader reads them as parallel blocks.
        if v2:
            ctx.use_datasource_v2 = False
        ds = ray.data.read_parquet(paths, override_num_blocks=blocks, **read_kw)
        ds = ds.select_columns([id_column, column])
    finally:
        if v2:
            ctx.use_datasource_v2 = v2
    # Equal keys must meet in one block: the sort-based shuffle does that with plain tasks;
    # the hash shuffle's aggregator actors cost seconds to start on a small machine (measured).
    ds.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    ds = ds.map_batches(band_rows, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                        fn_kwargs=dict(column=column, id_column=id_column, method=method,
                                       num_perm=num_perm, seed=seed, shingle=shingle, ngram=ngram,
                                       bands=bands, rows=rows, parts=parts))
    # Group by a coarse partition of the bucket key (`parts` groups) and find the buckets inside
    # each group with one sort: a Python call per bucket would cost more than the hashing.
    ds = ds.groupby("part").map_groups(bucket_pairs, batch_format="pyarrow",
                                       fn_kwargs=dict(threshold=threshold))
    tables = [t for t in ds.iter_batches(batch_size=None, batch_format="pyarrow") if t.num_rows]
    return pa.concat_tables(tables) if tables else _pairs_schema().empty_table()


def dedup_decisions(paths, *, method: str = "minhash", column: str = "text",
                    id_column: str = "id", threshold: float = 0.8, num_perm: int = 128,
                    shingle: str = "word", ngram: int = 5, bands: int | None = None,
                    rows: int | None = None, seed: int = 1,
                    quality_column: str | None = None):
    """Which rows of the shards in `paths` (files or folders of part-*.parquet) to keep.

    Returns a `pyarrow.Table` with `decisions_schema()`, one row per input row, in input order.
    Raises `SynthError` for bad parameters, a missing column (naming the file), null or repeated
    ids. See the module docstring for the method, the normalization and the keeper rule."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if method not in METHODS:
        raise SynthError(f"dedup method must be one of {', '.join(METHODS)}; got {method!r}")
    if shingle not in SHINGLES:
        raise SynthError(f"shingle must be one of {', '.join(SHINGLES)}; got {shingle!r}")
    if ngram < 1:
        raise SynthError(f"ngram must be >= 1, got {ngram}")
    if not 0.0 < threshold < 1.0:
        raise SynthError(f"dedup threshold must be between 0 and 1 (exclusive), got {threshold}")
    if num_perm < 1:
        raise SynthError(f"num_perm must be >= 1, got {num_perm}")
    if method == "minhash":
        bands, rows = _resolve_bands(threshold, num_perm, bands, rows)
    else:
        bands, rows = 0, 0
    from synth.io.shards import expand_shards

    files = expand_shards(paths)
    ids, quality, text_bytes = _read_ids(files, column, id_column, quality_column) if files else (
        pa.array([], pa.string()), None, 0)
    n = len(ids)
    if n == 0:
        return decisions_schema().empty_table()

    pairs = _collect_pairs(files, column=column, id_column=id_column, method=method,
                           num_perm=num_perm, seed=seed, shingle=shingle, ngram=ngram,
                           bands=bands, rows=rows, threshold=threshold, n_rows=n,
                           text_bytes=text_bytes)
    a = pc.index_in(pairs.column("a"), value_set=ids).to_numpy(zero_copy_only=False)
    b = pc.index_in(pairs.column("b"), value_set=ids).to_numpy(zero_copy_only=False)
    a, b = a.astype(np.int64), b.astype(np.int64)
    exact = pairs.column("exact").to_numpy(zero_copy_only=False).astype(bool)
    # exact-text groups: every exact pair is (smallest id of the group, member)
    text_group = np.arange(n, dtype=np.int64)
    text_group[b[exact]] = a[exact]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    edge = np.unique(lo * n + hi)
    comp = _components(n, edge // n, edge % n)

    # keeper: highest quality (nulls and NaN last), then smallest id
    idx = np.arange(n)
    id_rank = np.empty(n, dtype=np.int64)
    id_rank[pc.sort_indices(ids).to_numpy()] = idx
    if quality is not None:
        q = quality.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
        missing = np.isnan(q)
        q = np.where(missing, 0.0, -q)
    else:
        q, missing = np.zeros(n), np.zeros(n, dtype=bool)
    order = np.lexsort((id_rank, q, missing, comp))
    c_sorted = comp[order]
    first = np.ones(n, dtype=bool)
    first[1:] = c_sorted[1:] != c_sorted[:-1]
    keeper_of = np.empty(n, dtype=np.int64)
    keeper_of[c_sorted[first]] = order[first]
    keeper = keeper_of[comp]
    keep = keeper == idx
    cluster_id = ids.take(pa.array(keeper))
    same_text = text_group == text_group[keeper]
    reason = np.where(keep, None, np.where(same_text, REASON_EXACT, REASON_MINHASH))
    return pa.table({
        "id": ids,
        "cluster_id": cluster_id,
        "keep": pa.array(keep),
        "reason": pa.array(reason.tolist(), pa.string()),
        "duplicate_of": pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), cluster_id),
    }, schema=decisions_schema())
