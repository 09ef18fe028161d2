"""Pipeline files: typed config, and every bad input named with its key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.config import PipelineConfig, load_pipeline
from synth.errors import SynthError

ROOT = Path(__file__).resolve().parents[1]
# chain files (a `steps:` list, e.g. full.yaml) are checked in tests/test_chain.py
PIPELINES = sorted(p for p in (ROOT / "pipelines").glob("*.yaml") if "\nsteps:" not in p.read_text())


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_shipped_pipelines_load(path):
    cfg = load_pipeline(path)
    assert isinstance(cfg, PipelineConfig)
    assert Path(cfg.seeds.path).is_absolute() and Path(cfg.seeds.path).exists()


def test_quickstart_values():
    cfg = load_pipeline(ROOT / "pipelines" / "quickstart.yaml")
    assert cfg.name == "quickstart"
    assert cfg.model.backend == "vllm"
    assert cfg.prompt.template == "rephrase_wikipedia"
    assert cfg.sampling.max_tokens > 0


def _write(tmp_path, text: str) -> Path:
    (tmp_path / "seeds").mkdir(exist_ok=True)
    (tmp_path / "seeds" / "a.txt").write_text("hello world")
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


BASE = "name: t\nseeds: {path: seeds}\nprompt: {template: chat}\n"

# (yaml, fragments the one-line message must contain)
BAD = [
    ("name: t\nseeds: {path: seeds}\nprompt: {template: chat}\nmodle: {}\n", ["unknown key 'modle'", "did you mean 'model'"]),
    (BASE + "sampling: {temprature: 0.5}\n", ["sampling.temprature", "temperature"]),
    (BASE + "sampling: {n: two}\n", ["sampling.n", "integer"]),
    (BASE + "sampling: {n: 0}\n", ["sampling.n", ">= 1"]),
    (BASE + "sampling: {top_p: 1.5}\n", ["sampling.top_p"]),
    (BASE + "sampling: {temperature: hot}\n", ["sampling.temperature", "number"]),
    (BASE + "sampling: {logprobs: 50}\n", ["sampling.logprobs"]),
    (BASE + "model: {backend: tgi}\n", ["model.backend", "vllm", "openai"]),
    (BASE + "model: {backend: openai}\n", ["model.base_url", "required"]),
    (BASE + "model: {concurrency: 0}\n", ["model.concurrency"]),
    (BASE + "model: {engine_kwargs: [1, 2]}\n", ["model.engine_kwargs", "mapping"]),
    (BASE + "seeds: {path: nowhere}\n", ["seeds.path", "nowhere", "does not exist"]),
    ("name: t\nseeds: {path: seeds}\nprompt: {template: rephrase_wiki}\n", ["prompt.template", "rephrase_wikipedia"]),
    ("name: t\nseeds: {path: seeds}\n", ["prompt", "template"]),
    ("seeds: {path: seeds}\nprompt: {template: chat}\n", ["missing required key 'name'"]),
    ("name: t\nprompt: {template: chat}\n", ["missing required key 'seeds'"]),
    ("name: t\nseeds: [1]\nprompt: {template: chat}\n", ["seeds", "mapping"]),
    ("- just\n- a list\n", ["mapping"]),
    ("name: t\nseeds: {path: seeds\n", ["invalid YAML"]),
    (BASE + "model: {name: ./no-such-model}\n", ["model.name", "does not exist"]),
    (BASE + "seeds: {path: seeds, chunk_tokens: -1}\n", ["seeds.chunk_tokens"]),
    (BASE + "seeds: {path: seeds, recursive: maybe}\n", ["seeds.recursive", "true or false"]),
]


@pytest.mark.parametrize("text,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_pipeline_is_named(tmp_path, text, fragments):
    p = _write(tmp_path, text)
    with pytest.raises(SynthError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(p) in msg or "seeds.path" in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SynthError, match="does not exist"):
        load_pipeline(tmp_path / "nope.yaml")
    with pytest.raises(SynthError, match="is a folder"):
        load_pipeline(tmp_path)


def test_non_utf8_pipeline(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SynthError, match="UTF-8"):
        load_pipeline(p)


def test_relative_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    p = _write(tmp_path, BASE)
    monkeypatch.chdir("/")
    cfg = load_pipeline(p)
    assert cfg.seeds.path == str((tmp_path / "seeds").resolve())


def test_generation_hash_ignores_output_and_scale(tmp_path):
    import dataclasses

    cfg = load_pipeline(_write(tmp_path, BASE))
    same = dataclasses.replace(
        cfg,
        output=dataclasses.replace(cfg.output, dir="elsewhere"),
        model=dataclasses.replace(cfg.model, concurrency=4, batch_size=7),
    )
    other = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, max_tokens=9))
    assert cfg.generation_hash() == same.generation_hash()
    assert cfg.generation_hash() != other.generation_hash()


def test_decontam_paths_relative_to_pipeline(tmp_path):
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "e.jsonl").write_text('{"id": 1, "question": "q"}\n')
    p = _write(tmp_path, BASE + "stages:\n  - decontam: {against: [evals/e.jsonl]}\n")
    cfg = load_pipeline(p)
    assert cfg.stages[0].params["against"] == [str((tmp_path / "evals" / "e.jsonl").resolve())]
    p = _write(tmp_path, BASE + "stages:\n  - decontam: {against: [evals/missing.jsonl]}\n")
    with pytest.raises(SynthError, match="stages\\[0\\].decontam.against.*missing.jsonl"):
        load_pipeline(p)
