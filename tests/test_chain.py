"""Chains: pipelines, training and the report in one file, resumable as a whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.errors import SynthError
from tests.conftest import SAMPLE, write_pipeline

pytest.importorskip("torch")


def micro(tmp_path: Path) -> str:
    import dataclasses

    from synth.model import config_by_name

    cfg = dataclasses.replace(config_by_name("tiny"), d_model=32, pattern="M*E-", n_heads=2, n_kv_heads=1,
                              d_state=8, mamba_head_dim=16, d_ff=64, n_experts=4, d_expert=32, chunk_size=16)
    p = tmp_path / "micro.json"
    p.write_text(json.dumps(cfg.to_dict()))
    return str(p)


def make_chain(tmp_path: Path) -> Path:
    """fake generation -> pretrain a teacher on it -> the teacher generates with top-k log-probs
    (hybrid backend) -> distil a student offline from those -> report."""
    write_pipeline(tmp_path / "gen.yaml", name="gen",
                   seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 0},
                   prompt={"template": "rephrase_wikipedia"},
                   model={"name": "fake", "backend": "fake", "batch_size": 8},
                   sampling={"n": 2, "max_tokens": 64})
    write_pipeline(tmp_path / "teach.yaml", name="teach",
                   seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 0},
                   prompt={"template": "chat"},
                   model={"name": str(tmp_path / "out" / "teacher"), "backend": "hybrid", "batch_size": 4},
                   sampling={"n": 1, "max_tokens": 12, "temperature": 0.8, "logprobs": 4})
    m = micro(tmp_path)
    chain = {
        "name": "mini", "out": str(tmp_path / "out"),
        "steps": [
            {"run": "gen.yaml", "limit": 8},
            {"train": {"name": "teacher", "mode": "pretrain", "data": ["gen"], "column": "response",
                       "model": m, "steps": 6, "batch_size": 2, "seq_len": 32, "eval_every": 3,
                       "ckpt_every": 3, "threads": 1}},
            {"run": "teach.yaml", "limit": 6},
            {"train": {"name": "student", "mode": "distill", "data": ["teach"], "model": m, "steps": 4,
                       "batch_size": 2, "seq_len": 64, "eval_every": 2, "ckpt_every": 2, "threads": 1}},
            {"report": {}},
        ],
    }
    p = tmp_path / "chain.yaml"
    import yaml

    p.write_text(yaml.safe_dump(chain, sort_keys=False))
    return p


@pytest.mark.slow
def test_chain_runs_every_step_then_resumes_without_redoing_work(tmp_path, ray_session):
    from synth.pipeline.chain import is_chain_file, load_chain, run_chain
    from synth.train.plot import read_metrics

    p = make_chain(tmp_path)
    assert is_chain_file(p) and not is_chain_file(tmp_path / "gen.yaml")
    chain = load_chain(p)
    res = run_chain(chain)
    out = tmp_path / "out"
    assert [r.step.name for r in res] == ["gen", "teacher", "teach", "student", "report"]
    assert (out / "gen" / "manifest.json").is_file()
    assert (out / "teacher" / "checkpoint" / "model.safetensors").is_file()
    teach = json.loads((out / "teach" / "manifest.json").read_text())
    assert teach["counts"]["rows"] == 6
    kd = [m["kd"] for m in read_metrics(out / "student" / "metrics.jsonl") if m["split"] == "train"]
    assert len(kd) == 4 and all(k is not None for k in kd)
    html = (out / "report.html").read_text()
    assert "student" in html and "teacher" in html and "data:image/png;base64" in html
    # a rerun: nothing is generated or trained again
    again = run_chain(load_chain(p))
    assert again[0].result.generated_rows == 0 and again[2].result.generated_rows == 0
    assert again[1].result.resumed_from == 6 and again[3].result.resumed_from == 4


@pytest.mark.parametrize("steps,needle", [
    ([{"run": "missing.yaml"}], "does not exist"),
    ([{"train": {"name": "t", "mode": "pretrain", "data": ["nowhere"]}}], "neither an earlier step"),
    ([{"train": {"name": "t", "mode": "pretrain", "data": ["gen"], "stepz": 3}}], "did you mean 'steps'"),
    ([{"train": {"mode": "pretrain", "data": ["x"]}}], "name is required"),
    ([{"bake": {}}], "one of run, train, report"),
    ([{"run": "gen.yaml"}, {"run": "gen.yaml"}], "two steps are named"),
    ([], "non-empty list"),
])
def test_bad_chain_files_name_the_problem(tmp_path, steps, needle):
    import yaml

    from synth.pipeline.chain import load_chain

    write_pipeline(tmp_path / "gen.yaml", name="gen", seeds={"path": str(SAMPLE / "seeds")},
                   prompt={"template": "chat"}, model={"name": "fake", "backend": "fake"})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "c", "steps": steps}))
    with pytest.raises(SynthError, match=needle):
        load_chain(p)


def test_shipped_full_chain_is_valid_and_covers_every_recipe():
    from synth.pipeline.chain import ReportStep, RunStep, TrainStep, load_chain
    from tests.conftest import ROOT

    chain = load_chain(ROOT / "pipelines" / "full.yaml")
    runs = [s.pipeline.name for s in chain.steps if isinstance(s, RunStep)]
    assert runs == ["pretrain_rephrase.yaml", "math.yaml", "code.yaml", "distill.yaml"]
    modes = [s.settings["mode"] for s in chain.steps if isinstance(s, TrainStep)]
    assert modes == ["pretrain", "distill"]
    assert isinstance(chain.steps[-1], ReportStep)
