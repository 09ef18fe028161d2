"""The shipped recipe pipelines, as written, with the real vLLM engine on a small limit.

Only the scale is changed (fewer prompts, samples and tokens); every stage, template and
teacher is the shipped one. All runs use the embedded model with default engine settings, so
they share one engine actor with each other and with test_e2e_vllm.py (one load per session).
"""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.config import load_pipeline
from synth.io.shards import list_rejects, list_shards
from synth.pipeline.run import run_pipeline
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PIPELINES = ROOT / "pipelines"


def shrink(cfg, **sampling):
    """The pipeline with smaller sampling settings (for it and each of its teachers)."""
    cfg = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, **sampling))
    teachers = tuple(dataclasses.replace(t, sampling=dataclasses.replace(t.sampling, **sampling))
                     for t in cfg.teachers)
    return dataclasses.replace(cfg, teachers=teachers)


def every_row(out) -> list[dict]:
    """Kept and rejected rows (rejects may have extra columns, e.g. from dedup)."""
    return [r for f in list_shards(out) + list_rejects(out) for r in pq.read_table(f).to_pylist()]


def test_pretrain_rephrase(tmp_path, ray_session, model_path):
    cfg = shrink(load_pipeline(PIPELINES / "pretrain_rephrase.yaml"), max_tokens=96)
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=5)  # one chunk in each of the five styles
    rows = every_row(out)
    assert len(rows) == 5 and r.rows + r.rejected_rows == 5
    assert sorted(x["task"] for x in rows) == sorted(cfg.prompt.templates)
    assert len({x["id"] for x in rows}) == 5 and len({x["seed_id"] for x in rows}) == 1
    assert all("text" in x and "rephrase_edits" in x for x in rows)
    kept = [x for x in rows if x.get("reject_reason") is None]
    assert kept, "no rephrasing survived cleaning and filters"
    for x in kept:
        assert x["text"].strip() and not x["text"].lower().startswith(("sure", "here is", "here's"))
    for x in rows:
        assert x["reject_reason"] is None or x["reject_reason"].split(".")[0] in (
            "rephrase", "gen", "gopher_rep", "exact_duplicate", "minhash_duplicate")
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and "dedup" in m
    assert m["tokenizer"]["sha256"] and m["tokenizer"]["vocab_size"] == 49152


def test_math(tmp_path, ray_session, model_path):
    from verifiers.math import check_math

    cfg = shrink(load_pipeline(PIPELINES / "math.yaml"), n=2, max_tokens=128)
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=3)
    rows = every_row(out)
    assert len(rows) == 6 and r.rows + r.rejected_rows == 6
    for x in rows:  # the verdict columns equal a direct check on the same row
        direct = check_math(x["response"], json.loads(x["meta"])["answer"])
        assert (x["math_verdict"], x["math_predicted"]) == (direct.verdict, direct.predicted)
        assert x["math_label"] == "reference"
        if x["math_verdict"] != "correct":
            assert x["reject_reason"] is not None
    assert all(x["math_verdict"] == "correct" for x in rows if x.get("reject_reason") is None)
    pk = json.loads((out / "manifest.json").read_text())["pass_at_k"]["math_solution"]
    assert pk["samples"] == 6 and pk["prompts"] == 3 and 0 <= pk["pass@1"] <= pk["pass@2"] <= 1
    assert pk["correct"] == sum(x["math_verdict"] == "correct" for x in rows)
    assert r.pass_at_k["math_solution"] == pk


def test_code(tmp_path, ray_session, model_path):
    from verifiers.code import check_code

    pipe = PIPELINES / "code.yaml"
    cfg = shrink(load_pipeline(pipe), n=2, max_tokens=160)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(pipe), "--out", str(out), "--limit", "1"])  # the CLI as shipped
    assert res.exit_code == 0, res.output
    assert "code_solution_tests: pass@1" in res.output
    r = run_pipeline(cfg, out=tmp_path / "small", limit=3)
    rows = every_row(tmp_path / "small")
    assert len(rows) == 6 and r.rows + r.rejected_rows == 6
    for x in rows:
        meta = json.loads(x["meta"])
        if x["code_program"] is None:
            assert x["code_verdict"] == "unverifiable"
            continue
        assert x["code_tests_source"] == "problem"  # every sample problem has its own tests
        direct = check_code(x["code_program"], meta["tests"], mode=meta["mode"], timeout=5)
        assert x["code_verdict"] == direct.verdict
    assert all(x["code_verdict"] == "passed" for x in rows if x.get("reject_reason") is None)
    m = json.loads((tmp_path / "small" / "manifest.json").read_text())
    assert m["pass_at_k"]["code_solution_tests"]["samples"] == 6


def test_distill(tmp_path, ray_session, model_path):
    from tokenizers import Tokenizer

    cfg = shrink(load_pipeline(PIPELINES / "distill.yaml"), max_tokens=48)
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=2)  # two prompts per teacher
    rows = every_row(out)
    assert len(rows) == 6 and r.rows > 0
    assert sorted({x["teacher"] for x in rows}) == ["code", "math", "rephrase"]
    assert {x["task"] for x in rows} == {"rephrase_distill", "math_solution", "code_solution"}
    k = cfg.sampling.logprobs
    for x in rows:
        assert len(x["token_ids"]) == len(x["top_logprob_ids"]) == x["completion_tokens"]
        assert all(len(ids) == k for ids in x["top_logprob_ids"])
    m = json.loads((out / "manifest.json").read_text())
    tok = Tokenizer.from_file(f"{model_path}/tokenizer.json")
    for name in ("rephrase", "math", "code"):
        assert m["tokenizer"][name]["vocab_size"] == tok.get_vocab_size()
        assert m["teachers"][name]["rows"] + m["teachers"][name]["rejected_rows"] == 2
    assert len({m["tokenizer"][n]["sha256"] for n in m["tokenizer"]}) == 1
