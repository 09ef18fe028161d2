"""Training data from shards.

* `TextData` (pretraining, online distillation): every document of a column, tokenized, joined
  with `<|endoftext|>` into one stream; a batch is random windows of `seq_len + 1` tokens.
* `TeacherData` (offline distillation): each row is a teacher's response with its top-k
  log-probabilities per generated token; a sequence is the chat prompt the teacher saw
  followed by the response tokens, and the KD targets sit on the response positions.

Documents (rows) go to the eval split by a hash of their id, so the split does not depend on
shard order. Batches are drawn with an RNG seeded by (seed, step): a resumed run draws exactly
the batches the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import SynthError
from synth.train.tokenizer import Tok

TEACHER_COLUMNS = ("messages", "token_ids", "top_logprob_ids", "top_logprobs")


def shard_files(paths) -> list[Path]:
    """Every shard named by `paths` (folders or files), checked to exist."""
    from synth.io.shards import expand_shards

    return expand_shards(paths, "--data ")


def read_columns(files: list[Path], required: tuple[str, ...], optional: tuple[str, ...] = (), *,
                 skip_bad: bool = False, skipped: list[dict] | None = None):
    """One Arrow table of the wanted columns over all files; a clear error naming a bad file.

    With `skip_bad`, a bad file (unreadable, corrupt, a required column missing) is left out
    and appended to `skipped` as `{"path", "reason"}`; no good file left is still an error."""
    import pyarrow as pa

    tables = []
    bad = skipped if skipped is not None else []
    for f in files:
        try:
            t = _read_shard(f, required, optional)
        except SynthError as e:
            if not skip_bad:
                raise
            msg = str(e)
            bad.append({"path": str(f), "reason": msg[len(f"{f}: "):] if msg.startswith(f"{f}: ") else msg})
            continue
        for c in optional:
            if c not in t.column_names:
                t = t.append_column(c, pa.nulls(len(t), pa.string()))
        tables.append(t.select(list(required) + list(optional)))
    if not tables:
        raise SynthError(f"--data: no readable shards ({len(bad)} skipped, e.g. "
                         f"{bad[0]['path']}: {bad[0]['reason']})")
    return pa.concat_tables(tables, promote_options="permissive")


def _read_shard(f: Path, required: tuple[str, ...], optional: tuple[str, ...]):
    import pyarrow.parquet as pq

    def unreadable(e: Exception) -> SynthError:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        return SynthError(f"{f}: not a readable Parquet shard ({type(e).__name__}: {first})")

    try:
        names = pq.read_schema(f).names
    except Exception as e:  # noqa: BLE001 - any parse failure means the file is unreadable
        raise unreadable(e) from None
    missing = [c for c in required if c not in names]
    if missing:
        hint = " (pass --column to pick another text column)" if "text" in missing else ""
        raise SynthError(f"{f}: missing column(s) {', '.join(missing)}; it has: "
                         f"{', '.join(names)}{hint}")
    cols = list(required) + [c for c in optional if c in names and c not in required]
    try:
        return pq.read_table(f, columns=cols)
    except Exception as e:  # noqa: BLE001
        raise unreadable(e) from None


def in_eval(doc_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "little")
    return h / 2**64 < fraction


def _split(ids: list[str], fraction: float) -> list[bool]:
    """Eval flags by id hash; at least one eval document when there are two or more."""
    flags = [in_eval(i, fraction) for i in ids]
    if fraction > 0 and len(ids) >= 2 and not any(flags):
        flags[-1] = True
    if all(flags):
        flags[0] = False
    return flags


def _doc_ids(table, column: str) -> list[str]:
    ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * len(table)
    texts = table.column(column).to_pylist()
    return [i if i else hashlib.sha256((t or "").encode()).hexdigest()[:16] for i, t in zip(ids, texts)]


@dataclass
class TextData:
    train: np.ndarray  # token stream (int32)
    eval: np.ndarray
    documents: int
    eval_documents: int
    skipped: list = field(default_factory=list)
    """Bad shards left out with `skip_bad`: [{"path", "reason"}]."""

    @classmethod
    def from_shards(cls, paths, tok: Tok, column: str, eval_fraction: float, seq_len: int, *,
                    skip_bad: bool = False):
        files = shard_files(paths)
        skipped: list[dict] = []
        table = read_columns(files, (column,), ("id",), skip_bad=skip_bad, skipped=skipped)
        texts = table.column(column).to_pylist()
        keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        if not keep:
            raise SynthError(f"--data: column {column!r} holds no text in {len(files)} shard(s)")
        texts = [texts[i] for i in keep]
        ids = [_doc_ids(table, column)[i] for i in keep]
        flags = _split(ids, eval_fraction)
        streams = {True: [], False: []}
        for flag, toks in zip(flags, tok.encode_batch(texts)):
            streams[flag].extend(toks + [tok.doc_sep_id])
        train = np.asarray(streams[False], dtype=np.int32)
        ev = np.asarray(streams[True], dtype=np.int32)
        if len(ev) < 2:  # one document: hold out its tail
            cut = max(2, len(train) // 10)
            train, ev = train[:-cut], train[-cut:]
        if len(train) < seq_len + 1:
            raise SynthError(f"--data: {len(train)} training tokens, fewer than one window of "
                             f"--seq-len {seq_len} + 1; give more data or a shorter --seq-len")
        return cls(train=train, eval=ev, documents=len(texts), eval_documents=sum(flags),
                   skipped=skipped)

    @property
    def train_tokens(self) -> int:
        return len(self.train)

    def batch(self, step: int, seed: int, batch_size: int, seq_len: int):
        import torch

        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, len(self.train) - seq_len, size=batch_size)
        w = np.stack([self.train[s : s + seq_len + 1] for s in starts]).astype(np.int64)
        w = torch.from_numpy(w)
        return {"input_ids": w[:, :-1], "targets": w[:, 1:]}

    def eval_batches(self, batch_size: int, seq_len: int, max_batches: int):
        """Consecutive windows over the eval stream (the same every time)."""
        import torch

        t = min(seq_len, len(self.eval) - 1)
        n = min(max_batches * batch_size, max(1, (len(self.eval) - 1) // t))
        w = np.stack([self.eval[i * t : i * t + t + 1] for i in range(n)]).astype(np.int64)
        w = torch.from_numpy(w)
        for i in range(0, n, batch_size):
            chunk = w[i : i + batch_size]
            yield {"input_ids": chunk[:, :-1], "targets": chunk[:, 1:]}


@dataclass
class TeacherRow:
    ids: np.ndarray  # prompt + response tokens
    start: int  # index in `ids` of the first response token
    top_ids: np.ndarray  # (response tokens, k)
    top_lps: np.ndarray  # (response tokens, k)
    teacher: str


class TeacherData:
    """Teacher responses with top-k log-probs, for offline distillation."""

    def __init__(self, rows: list[TeacherRow], eval_rows: list[TeacherRow], k: int,
                 weights: dict[str, float]):
        self.rows, self.eval_rows, self.k = rows, eval_rows, k
        self.by_teacher: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            self.by_teacher.setdefault(r.teacher, []).append(i)
        unknown = [t for t in weights if t not in self.by_teacher]
        if unknown:
            raise SynthError(f"--teacher-weight: no rows from teacher(s) {', '.join(unknown)}; "
                             f"the data has: {', '.join(sorted(self.by_teacher))}")
        names = sorted(self.by_teacher)
        w = np.array([weights.get(t, len(self.by_teacher[t]) if not weights else 0.0) for t in names],
                     dtype=float)
        if w.sum() <= 0:
            raise SynthError("--teacher-weight: every weight is 0")
        self.teacher_names, self.teacher_p = names, w / w.sum()
        self.skipped: list[dict] = []  # bad shards left out with `skip_bad`

    @property
    def train_tokens(self) -> int:
        return int(sum(len(r.ids) for r in self.rows))

    def mix(self) -> dict[str, float]:
        return {t: round(float(p), 4) for t, p in zip(self.teacher_names, self.teacher_p)}

    @classmethod
    def from_shards(cls, paths, tok: Tok, eval_fraction: float, seq_len: int,
                    weights: dict[str, float] | None = None, *, skip_bad: bool = False):
        files = shard_files(paths)
        check_tokenizer_manifests(paths, tok)
        bad_files: list[dict] = []
        table = read_columns(files, TEACHER_COLUMNS, ("id", "teacher", "model", "response"),
                             skip_bad=skip_bad, skipped=bad_files)
        d = table.to_pydict()
        rows, ids, k = [], [], 0
        skipped = 0
        for i in range(len(table)):
            toks, tids, tlps = d["token_ids"][i], d["top_logprob_ids"][i], d["top_logprobs"][i]
            if not toks or not tids or not tlps:
                skipped += 1
                continue
            k = max(k, max(len(x) for x in tids))
            rows.append(i)
            ids.append(d["id"][i] or str(i))
        if not rows:
            raise SynthError(f"--data: no row has top-k log-probs ({skipped} rows without); "
                             "generate with `sampling.logprobs: K` (see pipelines/distill.yaml)")
        check_token_ids(d, rows, tok)
        out = []
        for i in rows:
            prompt = tok.encode(tok.render_chat(json.loads(d["messages"][i])))
            resp = list(d["token_ids"][i])
            top_ids = _rect(d["top_logprob_ids"][i], k, 0)
            top_lps = _rect(d["top_logprobs"][i], k, float("-inf"))
            # keep the response; drop the oldest prompt tokens if the pair is too long
            room = seq_len + 1
            resp, top_ids, top_lps = resp[: room - 1], top_ids[: room - 1], top_lps[: room - 1]
            prompt = prompt[-(room - len(resp)):]
            teacher = d["teacher"][i] or d["model"][i] or "teacher"
            out.append(TeacherRow(np.asarray(prompt + resp, dtype=np.int64), len(prompt),
                                  top_ids, top_lps, teacher))
        flags = _split(ids, eval_fraction)
        train = [r for r, f in zip(out, flags) if not f]
        ev = [r for r, f in zip(out, flags) if f] or train[-1:]
        data = cls(train, ev, k, weights or {})
        data.skipped = bad_files
        return data

    def _collate(self, rows: list[TeacherRow]):
        import torch

        T = max(len(r.ids) for r in rows) - 1
        B = len(rows)
        inp = torch.zeros(B, T, dtype=torch.long)
        tgt = torch.full((B, T), -100, dtype=torch.long)
        top_ids = torch.zeros(B, T, self.k, dtype=torch.long)
        top_lps = torch.full((B, T, self.k), float("-inf"))
        kd_mask = torch.zeros(B, T, dtype=torch.bool)
        for b, r in enumerate(rows):
            n = len(r.ids) - 1
            inp[b, :n] = torch.from_numpy(r.ids[:-1])
            # targets only on response tokens: position p predicts ids[p + 1]
            lo = r.start - 1
            tgt[b, lo:n] = torch.from_numpy(r.ids[lo + 1 :])
            m = n - lo
            top_ids[b, lo:n] = torch.from_numpy(r.top_ids[:m])
            top_lps[b, lo:n] = torch.from_numpy(r.top_lps[:m])
            kd_mask[b, lo:n] = True
        return {"input_ids": inp, "targets": tgt, "top_ids": top_ids, "top_lps": top_lps,
                "kd_mask": kd_mask, "teachers": [r.teacher for r in rows]}

    def batch(self, step: int, seed: int, batch_size: int, seq_len: int):
        rng = np.random.default_rng([seed, step])
        picks = []
        for t in rng.choice(len(self.teacher_names), size=batch_size, p=self.teacher_p):
            pool = self.by_teacher[self.teacher_names[t]]
            picks.append(self.rows[pool[rng.integers(len(pool))]])
        return self._collate(picks)

    def eval_batches(self, batch_size: int, seq_len: int, max_batches: int):
        rows = self.eval_rows[: max_batches * batch_size]
        for i in range(0, len(rows), batch_size):
            yield self._collate(rows[i : i + batch_size])


def _rect(rows: list[list], k: int, fill) -> np.ndarray:
    """Per-token top-k lists (possibly ragged) as a (tokens, k) array."""
    a = np.full((len(rows), k), fill, dtype=np.int64 if isinstance(fill, int) else np.float32)
    for i, r in enumerate(rows):
        a[i, : len(r)] = r
    return a


def check_token_ids(d: dict, rows: list[int], tok: Tok, sample: int = 64) -> None:
    """Refuse teacher data whose token ids are not this tokenizer's.

    Ids beyond the vocabulary are fatal; otherwise the stored response text must decode from
    the stored token ids for most rows (a different tokenizer fails this almost always)."""
    for i in rows:
        for col in ("token_ids",):
            top = max(d[col][i])
            if top >= tok.vocab_size:
                raise SynthError(f"tokenizer mismatch: row {d['id'][i]} has token id {top} >= the "
                                 f"student's vocabulary ({tok.vocab_size}); the teacher used "
                                 "another tokenizer")
        top = max(max(x) for x in d["top_logprob_ids"][i] if x)
        if top >= tok.vocab_size:
            raise SynthError(f"tokenizer mismatch: row {d['id'][i]} has a top-k token id {top} >= "
                             f"the student's vocabulary ({tok.vocab_size})")
    checked = [i for i in rows if d["response"][i]][:sample]
    bad = [i for i in checked if tok.decode(d["token_ids"][i]).strip() != d["response"][i].strip()]
    if checked and len(bad) * 2 > len(checked):
        i = bad[0]
        raise SynthError(
            f"tokenizer mismatch: {len(bad)} of {len(checked)} responses do not decode from their "
            f"token ids with the student's tokenizer ({tok.path}); e.g. row {d['id'][i]}: "
            f"{tok.decode(d['token_ids'][i])[:40]!r} vs {d['response'][i][:40]!r}")


def check_tokenizer_manifests(paths, tok: Tok) -> None:
    """When a shard folder's manifest names the teacher tokenizer, it must be the student's."""
    for p in paths:
        m = Path(p) / "manifest.json"
        if not m.is_file():
            continue
        try:
            info = json.loads(m.read_text()).get("tokenizer")
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
        entries = info.values() if isinstance(info, dict) and "sha256" not in info else [info]
        for e in entries:
            if isinstance(e, dict) and e.get("sha256") and e["sha256"] != tok.sha256:
                raise SynthError(
                    f"tokenizer mismatch: {m} says the teacher's tokenizer.json has sha256 "
                    f"{e['sha256'][:12]}…, the student's ({tok.path}) has {tok.sha256[:12]}…")
