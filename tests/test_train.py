"""Training: pretraining and distillation from real shards, checkpoints, resume, bad input.

Models here are micro versions of the `tiny` config (same layer kinds, smaller widths) so each
run takes seconds; the tokenizer is the embedded model's (the real 49k vocabulary).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from synth.errors import SynthError  # noqa: E402
from tests.conftest import ROOT, SAMPLE  # noqa: E402

SYNTH = [str(Path(sys.executable).parent / "synth")]  # the console script of this venv


# ----------------------------------------------------------------------------- KD losses


def test_kd_topk_is_zero_for_identical_logits_and_positive_otherwise():
    from synth.train.kd import kd_topk

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 50, generator=g)
    lp = torch.log_softmax(logits, -1)
    top_lps, top_ids = lp.topk(8, dim=-1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    for t in (0.5, 1.0, 2.0):
        assert float(kd_topk(logits, top_ids, top_lps, mask, t)) == pytest.approx(0.0, abs=1e-6)
    other = logits + torch.randn(2, 5, 50, generator=g)
    other.requires_grad_(True)
    loss = kd_topk(other, top_ids, top_lps, mask)
    assert float(loss.detach()) > 1e-3
    loss.backward()
    assert other.grad.abs().sum() > 0
    # masked positions and missing (-inf) entries do not count
    mask2 = mask.clone()
    mask2[:, 2:] = False
    part = kd_topk(other.detach(), top_ids, top_lps, mask2)
    ref = kd_topk(other.detach()[:, :2], top_ids[:, :2], top_lps[:, :2], mask[:, :2])
    assert float(part) == pytest.approx(float(ref), rel=1e-6)
    holes = top_lps.clone()
    holes[..., 4:] = float("-inf")
    a = kd_topk(other.detach(), top_ids, holes, mask)
    b = kd_topk(other.detach(), top_ids[..., :4], top_lps[..., :4], mask)
    assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_kd_full_is_zero_for_identical_logits_and_matches_kl():
    from synth.train.kd import kd_full

    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 4, 30, generator=g, dtype=torch.float64)
    t = torch.randn(3, 4, 30, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    assert float(kd_full(s, s, mask)) == pytest.approx(0.0, abs=1e-7)
    p = torch.softmax(t, -1)
    kl = (p * (torch.log_softmax(t, -1) - torch.log_softmax(s, -1))).sum(-1).mean()
    assert float(kd_full(s, t, mask)) == pytest.approx(float(kl), rel=1e-5)
    # temperature scaling: T^2 * KL of the softened distributions
    T = 2.0
    pT = torch.softmax(t / T, -1)
    klT = (pT * (torch.log_softmax(t / T, -1) - torch.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    assert float(kd_full(s, t, mask, T)) == pytest.approx(float(klT), rel=1e-5)


# ----------------------------------------------------------------------------- helpers


def micro_config(tmp_path: Path, **over) -> str:
    """A micro model with every layer kind (M, *, E, -), written as a config .json."""
    from synth.model import config_by_name

    base = config_by_name("tiny")
    fields = {f.name for f in dataclasses.fields(base)}
    want = dict(d_model=32, pattern="M*E-", n_heads=2, n_kv_heads=1, d_state=8, expand=2,
                mamba_head_dim=16, d_ff=64, n_experts=4, top_k=2, d_expert=32, chunk_size=16,
                mtp_depths=1)
    want.update(over)
    cfg = dataclasses.replace(base, **{k: v for k, v in want.items() if k in fields})
    p = tmp_path / "micro.json"
    p.write_text(json.dumps(cfg.to_dict()))
    return str(p)


def text_shards(tmp_path: Path, name="text", column="text", docs=None) -> Path:
    """A real shard folder with a `text` column: the sample seed documents."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if docs is None:
        docs = [p.read_text() for p in sorted((SAMPLE / "seeds").rglob("*")) if p.is_file()
                and p.suffix in (".txt", ".md")]
        assert len(docs) >= 4, "sample_data/seeds should hold text documents"
    d = tmp_path / name
    d.mkdir()
    t = pa.table({"id": [f"d{i}" for i in range(len(docs))], column: docs})
    pq.write_table(t, d / "part-0-000000.parquet")
    return d


def cfg_for(tmp_path, data, out="run", mode="pretrain", **kw):
    from synth.train.config import TrainConfig

    base = dict(mode=mode, data=tuple(str(d) for d in data), out=str(tmp_path / out),
                model=micro_config(tmp_path), steps=6, batch_size=2, seq_len=32, lr=3e-3,
                warmup=2, eval_every=3, ckpt_every=3, eval_batches=2, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- pretraining


def test_pretrain_writes_checkpoint_metrics_curve_and_learns(tmp_path):
    from synth.train import checkpoint
    from synth.train.loop import train
    from synth.train.plot import read_metrics

    data = text_shards(tmp_path)
    r = train(cfg_for(tmp_path, [data], steps=30, eval_every=10, ckpt_every=10, lr=5e-3), log=lambda m: None)
    out = tmp_path / "run"
    assert r.steps == 30 and r.resumed_from == 0 and r.tokens == 30 * 2 * 32
    ck = out / "checkpoint"
    for f in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "trainer.pt"):
        assert (ck / f).is_file(), f
    meta = json.loads((ck / "config.json").read_text())
    assert meta["step"] == 30 and meta["format"] == checkpoint.FORMAT
    png = out / "loss_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    m = read_metrics(out / "metrics.jsonl")
    train_lines = [x for x in m if x["split"] == "train"]
    evals = [x for x in m if x["split"] == "eval"]
    assert [x["step"] for x in train_lines] == list(range(1, 31))
    assert [x["step"] for x in evals] == [10, 20, 30]
    # starts near ln(vocab) and learns: the last losses are clearly lower than the first
    assert abs(train_lines[0]["ce"] - math.log(49152)) < 0.5
    first = sum(x["loss"] for x in train_lines[:3]) / 3
    last = sum(x["loss"] for x in train_lines[-3:]) / 3
    assert last < first - 1.0
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] + 1e-6 or evals[-1]["eval_loss"] < math.log(49152)
    # the checkpoint loads and reproduces the trained model's logits
    model, meta = checkpoint.load_model(out)
    assert model.num_params() == r.params
    # every trained target was counted (the speculative drafter's vocabulary comes from this)
    assert int(model.token_counts.sum()) == r.tokens == meta["tokens"]


def test_checkpoint_without_token_counts_loads(tmp_path):
    """Checkpoints written before token_counts existed still load (counts stay zero); any other
    missing or extra tensor is refused."""
    import torch
    from safetensors.torch import load_file, save_file

    from synth.model import HybridLM
    from synth.train import checkpoint
    from synth.train.loop import train

    data = text_shards(tmp_path)
    r = train(cfg_for(tmp_path, [data], steps=1), log=lambda m: None)
    f = checkpoint.checkpoint_dir(r.out) / "model.safetensors"
    tensors = load_file(str(f))
    assert tensors.pop("token_counts").sum() > 0
    save_file(tensors, str(f))
    model, _ = checkpoint.load_model(r.out)
    assert isinstance(model, HybridLM) and int(model.token_counts.sum()) == 0
    tensors["unexpected.weight"] = torch.zeros(2)
    save_file(tensors, str(f))
    with pytest.raises(SynthError, match="unexpected"):
        checkpoint.load_model(r.out)


def test_rerun_after_finish_does_nothing_and_more_steps_continue(tmp_path):
    from synth.train.loop import train

    data = text_shards(tmp_path)
    train(cfg_for(tmp_path, [data], steps=4, ckpt_every=2), log=lambda m: None)
    again = train(cfg_for(tmp_path, [data], steps=4, ckpt_every=2), log=lambda m: None)
    assert again.resumed_from == 4 and again.tokens == 4 * 2 * 32
    more = train(cfg_for(tmp_path, [data], steps=6, ckpt_every=2), log=lambda m: None)
    assert more.resumed_from == 4 and more.tokens == 6 * 2 * 32
    with pytest.raises(SynthError, match="another config"):
        train(cfg_for(tmp_path, [data], steps=6, lr=1e-3), log=lambda m: None)
    fresh = train(cfg_for(tmp_path, [data], steps=2, lr=1e-3), fresh=True, log=lambda m: None)
    assert fresh.resumed_from == 0


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "checkpoint" / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    """A real SIGKILL of `synth train pretrain` mid-run; the resumed run ends bit-identical."""
    data = text_shards(tmp_path)
    cfgjson = micro_config(tmp_path)
    args = ["train", "pretrain", "--data", str(data), "--config", cfgjson, "--steps", "12",
            "--batch-size", "2", "--seq-len", "32", "--ckpt-every", "2", "--eval-every", "4",
            "--threads", "1"]
    env = {**os.environ, "CI": "1"}
    straight = subprocess.run(SYNTH + args + ["--out", str(tmp_path / "straight")], env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = tmp_path / "killed"
    p = subprocess.Popen(SYNTH + args + ["--out", str(killed)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once a checkpoint past step 4 exists, mid-run
        ck = killed / "checkpoint" / "config.json"
        if ck.is_file() and json.loads(ck.read_text())["step"] >= 4:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    step_at_kill = json.loads((killed / "checkpoint" / "config.json").read_text())["step"]
    assert 4 <= step_at_kill < 12
    res = subprocess.run(SYNTH + args + ["--out", str(killed)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stderr
    a, b = _weights(tmp_path / "straight"), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if x["split"] == "train"]
    assert steps == list(range(1, 13))  # each step logged once


# ----------------------------------------------------------------------------- bad input


def run_cli(*args):
    from typer.testing import CliRunner

    from synth.cli import app

    return CliRunner().invoke(app, list(args))


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    data = text_shards(tmp_path)
    cases = []
    r = run_cli("train", "pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o1"))
    cases.append((r, "no such file"))
    r = run_cli("train", "pretrain", "--data", str(data), "--out", str(tmp_path / "o2"), "--config", "huge")
    cases.append((r, "huge"))
    r = run_cli("train", "pretrain", "--data", str(data), "--out", str(tmp_path / "o3"), "--column", "response")
    cases.append((r, "missing column"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "part-0-000000.parquet").write_bytes(b"PAR1 this is not parquet")
    r = run_cli("train", "pretrain", "--data", str(corrupt), "--out", str(tmp_path / "o4"))
    cases.append((r, "part-0-000000.parquet"))
    r = run_cli("train", "distill", "--data", str(data), "--out", str(tmp_path / "o5"))
    cases.append((r, "missing column"))
    r = run_cli("train", "sample", str(tmp_path / "nothing"), "--prompt", "hi")
    cases.append((r, "not a synth checkpoint"))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"d_model": 32, "wings": 2}))
    r = run_cli("train", "pretrain", "--data", str(data), "--out", str(tmp_path / "o6"), "--config", str(bad_json))
    cases.append((r, "wings"))
    for r, needle in cases:
        assert r.exit_code == 2, (needle, r.output)
        assert needle in r.output, (needle, r.output)
        assert "Traceback" not in r.output


# ----------------------------------------------------------------------------- distillation


def teacher_shards(tmp_path: Path, tok, model, name: str, prompts: list[str], k=5, teacher=None,
                   tamper=None, sharpen: float = 1.0) -> Path:
    """Teacher rows exactly as generation writes them, from a real model's decoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synth.io.shards import generation_schema

    rows = []
    for i, text in enumerate(prompts):
        msgs = [{"role": "user", "content": text}]
        ids = tok.encode(tok.render_chat(msgs))
        with torch.no_grad():
            cache = model.new_cache(1)
            logits = model.forward_cached(torch.tensor([ids]), cache)[0, -1]
            toks, tids, tlps = [], [], []
            for _ in range(12):
                lp = torch.log_softmax(logits.float() * sharpen, -1)
                v, ix = lp.topk(k)
                tids.append(ix.tolist())
                tlps.append(v.tolist())
                nxt = int(ix[0])
                toks.append(nxt)
                logits = model.forward_cached(torch.tensor([[nxt]]), cache)[0, -1]
        resp = tok.decode(toks)
        if tamper:
            toks, resp = tamper(toks, resp)
        rows.append({"id": f"{name}{i}", "prompt_id": f"p{name}{i}", "seed_id": str(i), "task": "chat",
                     "messages": json.dumps(msgs), "response": resp, "model": name,
                     "token_ids": toks, "top_logprob_ids": tids, "top_logprobs": tlps,
                     "prompt_tokens": len(ids), "completion_tokens": len(toks), "teacher": teacher})
    schema = generation_schema()
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    t = pa.table(cols, schema=schema)
    if teacher and "teacher" not in t.column_names:
        t = t.append_column("teacher", pa.array([teacher] * len(rows)))
    d = tmp_path / name
    d.mkdir()
    pq.write_table(t, d / "part-0-000000.parquet")
    return d


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A micro model pretrained for a few steps: a real (if weak) teacher."""
    from synth.train.loop import train

    tmp = tmp_path_factory.mktemp("teacher")
    data = text_shards(tmp)
    train(cfg_for(tmp, [data], out="teacher", steps=20, ckpt_every=20, eval_every=20), log=lambda m: None)
    return tmp / "teacher"


PROMPTS = ["Name a prime number.", "What is the capital of France?", "Say hello.",
           "Count to three.", "Why is the sky blue?", "Give me a colour.", "Write a word.", "2+2="]


def test_offline_multi_teacher_distillation_mixes_and_reduces_kd(tmp_path, teacher_ckpt):
    from synth.train import checkpoint
    from synth.train.data import TeacherData
    from synth.train.loop import train
    from synth.train.plot import read_metrics
    from synth.train.tokenizer import load_tokenizer

    tok = load_tokenizer()
    model, _ = checkpoint.load_model(teacher_ckpt)
    # a sharp teacher (its distribution at temperature 1/8), so there is something to learn
    a = teacher_shards(tmp_path, tok, model, "math", PROMPTS[:4], teacher="math", sharpen=8.0)
    b = teacher_shards(tmp_path, tok, model, "chat", PROMPTS[4:], teacher="chat", sharpen=8.0)
    data = TeacherData.from_shards([a, b], tok, 0.0, 64, {"math": 3.0, "chat": 1.0})
    assert data.mix() == {"chat": 0.25, "math": 0.75}
    b0 = data.batch(0, 0, 8, 64)
    assert b0["top_ids"].shape[-1] == 5 and b0["kd_mask"].any()
    # targets sit exactly on the response tokens
    assert int((b0["targets"] != -100).sum()) == int(b0["kd_mask"].sum())

    r = train(cfg_for(tmp_path, [a, b], mode="distill", steps=25, seq_len=64, eval_every=25,
                      ckpt_every=25, teacher_weights={"math": 3.0, "chat": 1.0}, kd_weight=0.9),
              log=lambda m: None)
    assert r.teacher_mix == {"chat": 0.25, "math": 0.75}
    kd = [x["kd"] for x in read_metrics(tmp_path / "run" / "metrics.jsonl") if x["split"] == "train"]
    assert all(x is not None and x >= 0 for x in kd)
    assert sum(kd[:5]) / 5 > 0.05  # the untrained student disagrees with the teacher
    assert sum(kd[-5:]) / 5 < sum(kd[:5]) / 5 * 0.5


def test_teacher_mix_follows_weights(tmp_path, teacher_ckpt):
    from collections import Counter

    from synth.train import checkpoint
    from synth.train.data import TeacherData
    from synth.train.tokenizer import load_tokenizer

    tok = load_tokenizer()
    model, _ = checkpoint.load_model(teacher_ckpt)
    a = teacher_shards(tmp_path, tok, model, "math", PROMPTS[:2], teacher="math")
    b = teacher_shards(tmp_path, tok, model, "chat", PROMPTS[2:4], teacher="chat")
    data = TeacherData.from_shards([a, b], tok, 0.0, 64, {"math": 3.0, "chat": 1.0})
    c = Counter(t for s in range(100) for t in data.batch(s, 0, 8, 64)["teachers"])
    assert 0.68 < c["math"] / 800 < 0.82  # 3:1 weights -> 0.75 of the rows
    same = TeacherData.from_shards([a, b], tok, 0.0, 64)  # default: every row equally likely
    c = Counter(t for s in range(100) for t in same.batch(s, 0, 8, 64)["teachers"])
    assert 0.4 < c["math"] / 800 < 0.6
    with pytest.raises(SynthError, match="no rows from teacher"):
        TeacherData.from_shards([a, b], tok, 0.0, 64, {"code": 1.0})


def test_tokenizer_mismatch_is_refused(tmp_path, teacher_ckpt):
    from synth.train import checkpoint
    from synth.train.tokenizer import load_tokenizer

    tok = load_tokenizer()
    model, _ = checkpoint.load_model(teacher_ckpt)
    # ids beyond the vocabulary
    big = teacher_shards(tmp_path, tok, model, "big", PROMPTS[:3],
                         tamper=lambda t, r: ([x + 60000 for x in t], r))
    r = run_cli("train", "distill", "--data", str(big), "--out", str(tmp_path / "o1"))
    assert r.exit_code == 2 and "tokenizer mismatch" in r.output
    # ids in range but from another tokenizer: the text does not decode from them
    shifted = teacher_shards(tmp_path, tok, model, "shifted", PROMPTS[:3],
                             tamper=lambda t, r: ([(x * 7 + 11) % 40000 for x in t], r + " extra"))
    r = run_cli("train", "distill", "--data", str(shifted), "--out", str(tmp_path / "o2"))
    assert r.exit_code == 2 and "tokenizer mismatch" in r.output
    # a manifest naming another tokenizer
    ok = teacher_shards(tmp_path, tok, model, "ok", PROMPTS[:3])
    (ok / "manifest.json").write_text(json.dumps({"tokenizer": {"sha256": "0" * 64}}))
    r = run_cli("train", "distill", "--data", str(ok), "--out", str(tmp_path / "o3"))
    assert r.exit_code == 2 and "tokenizer mismatch" in r.output


def test_online_distillation_from_a_checkpoint_teacher(tmp_path, teacher_ckpt):
    from synth.train.loop import train
    from synth.train.plot import read_metrics

    data = text_shards(tmp_path)
    r = train(cfg_for(tmp_path, [data], mode="distill", steps=8, teachers=(str(teacher_ckpt),)),
              log=lambda m: None)
    kd = [x["kd"] for x in read_metrics(tmp_path / "run" / "metrics.jsonl") if x["split"] == "train"]
    assert len(kd) == 8 and all(x is not None and x > 0 for x in kd)
    assert r.eval_loss == r.eval_loss  # not NaN


def test_quantization_aware_distillation_nvfp4_student_from_its_own_weights(tmp_path, teacher_ckpt):
    pytest.importorskip("synth.model.nvfp4")
    from synth.model.nvfp4 import NVFP4Linear
    from synth.train import checkpoint
    from synth.train.loop import train

    data = text_shards(tmp_path)
    r = train(cfg_for(tmp_path, [data], mode="distill", steps=4, nvfp4=True, init=str(teacher_ckpt),
                      teachers=(str(teacher_ckpt),)), log=lambda m: None)
    meta = checkpoint.read_meta(r.out)
    assert meta["nvfp4"] is True and meta["model"]["nvfp4"] is True
    model, _ = checkpoint.load_model(r.out)
    assert any(isinstance(m, NVFP4Linear) for m in model.modules())
    teacher, _ = checkpoint.load_model(teacher_ckpt, nvfp4=False)
    assert not any(isinstance(m, NVFP4Linear) for m in teacher.modules())


# ----------------------------------------------------------------------------- sampling


def test_sample_cli_plain_and_speculative_agree(tmp_path, teacher_ckpt):
    a = run_cli("train", "sample", str(teacher_ckpt), "--prompt", "The history of", "--max-tokens", "12")
    b = run_cli("train", "sample", str(teacher_ckpt), "--prompt", "The history of", "--max-tokens", "12",
                "--speculative")
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert a.stdout == b.stdout  # the same greedy text, token for token
    assert "12 tokens" in a.stderr and "drafts accepted" in b.stderr
    c = run_cli("train", "sample", str(teacher_ckpt), "--prompt", "The history of", "--max-tokens", "12",
                "--speculative", "--max-drafts", "1")
    assert c.exit_code == 0 and c.stdout == a.stdout, c.output
    r = run_cli("train", "sample", str(teacher_ckpt), "--prompt", "x", "--speculative", "--temperature", "0.7")
    assert r.exit_code == 2
    r = run_cli("train", "sample", str(teacher_ckpt), "--prompt", "x", "--speculative", "--max-drafts", "0")
    assert r.exit_code == 2 and "max_drafts" in r.output


def test_hybrid_backend_in_a_pipeline(tmp_path, teacher_ckpt, ray_session):
    from synth.config import load_pipeline
    from synth.io.shards import read_shards
    from synth.pipeline.run import run_pipeline
    from tests.conftest import write_pipeline

    p = write_pipeline(tmp_path / "p.yaml", name="hybrid", seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 0},
                       prompt={"template": "chat"},
                       model={"name": str(teacher_ckpt), "backend": "hybrid", "batch_size": 4},
                       sampling={"n": 2, "max_tokens": 8, "temperature": 0.8, "logprobs": 3},
                       output={"dir": str(tmp_path / "out")})
    r = run_pipeline(load_pipeline(p), limit=3)
    t = read_shards(tmp_path / "out").to_pylist()
    assert r.rows == 6 and len(t) == 6
    for row in t:
        assert 1 <= len(row["token_ids"]) <= 8
        assert len(row["top_logprob_ids"]) == len(row["token_ids"])
        assert all(len(x) == 3 for x in row["top_logprobs"])
        assert row["finish_reason"] in ("stop", "length")
