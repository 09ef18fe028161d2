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
    assert Path(cfg.seeds.path).is_absolute()
    # a file, a folder or a glob (the quickstart's `*.txt`) that names real seed files
    from synth.io.seeds import seed_files

    assert seed_files(cfg.seeds.path, recursive=cfg.seeds.recursive)


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


# Stage and dedup parameters are checked when the file loads, by the code that builds the
# stage (and that `synth filter` / `synth dedup` use): one line, the file, the full key, the fix.
STAGE_BAD = [
    ("stages:\n  - quality_filter: {groups: [gen, gopherr]}\n",
     "stages[0].quality_filter.groups: unknown group 'gopherr'; did you mean 'gopher'?"),
    ("stages:\n  - quality_filter: {disable: [gen.refusl]}\n",
     "stages[0].quality_filter.disable: unknown reason 'gen.refusl'; did you mean 'gen.refusal'?"),
    ("stages:\n  - quality_filter: {thresholds: {gopher.min_wrods: 5}}\n",
     "stages[0].quality_filter.thresholds: unknown threshold 'gopher.min_wrods'; did you mean 'gopher.min_words'?"),
    ("stages:\n  - quality_filter: {groups: [1]}\n", "stages[0].quality_filter.groups must be a list of names"),
    ("stages:\n  - rephrase_clean: {style: rephrase_wiki}\n",
     "stages[0].rephrase_clean.style: unknown style 'rephrase_wiki'; did you mean 'rephrase_wikipedia'?"),
    ("stages:\n  - rephrase_clean: {max_copy_fraction: 0}\n", "stages[0].rephrase_clean.max_copy_fraction must be in (0, 1]"),
    ("stages:\n  - verify_math: {}\n  - verify_code: {mode: stdin}\n", "stages[1].verify_code.mode must be assert or stdio"),
    ("stages:\n  - verify_code: {timeout: 0}\n", "stages[0].verify_code.timeout must be > 0"),
    ("stages:\n  - verify_math: {majority_min_fraction: 1.5}\n", "stages[0].verify_math.majority_min_fraction must be in [0, 1)"),
    ("stages:\n  - decontam: {}\n", "stages[0].decontam.against: no evaluation files"),
    ("stages:\n  - decontam: {against: [e.jsonl], ngram: 0}\n", "stages[0].decontam.ngram must be >= 1; got 0"),
    ("dedup: {threshold: 1.0}\n", "dedup.threshold must be between 0 and 1, exclusive, for minhash dedup"),
    ("dedup: {method: exact, threshold: 0}\n", "dedup.threshold must be between 0 and 1, exclusive, for exact"),
    ("dedup: {method: semantic, threshold: 1.5}\n", "dedup.threshold must be in (0, 1] for semantic dedup"),
    ("dedup: {ngram: 0}\n", "dedup.ngram must be >= 1; got 0"),
    ("dedup: {num_perm: 0}\n", "dedup.num_perm must be >= 1; got 0"),
    ("dedup: {shingle: token}\n", "dedup.shingle must be one of word, char"),
]


@pytest.mark.parametrize("text,fragment", STAGE_BAD, ids=[f"stage_bad{i}" for i in range(len(STAGE_BAD))])
def test_bad_stage_and_dedup_params_fail_at_load(tmp_path, text, fragment):
    p = _write(tmp_path, BASE + text)
    with pytest.raises(SynthError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}: "), msg
    assert fragment in msg, (fragment, msg)


def test_semantic_dedup_allows_threshold_one(tmp_path):
    cfg = load_pipeline(_write(tmp_path, BASE + "dedup: {method: semantic, threshold: 1}\n"))
    assert cfg.dedup.threshold == 1.0


@pytest.mark.parametrize("argv,fragment", [
    (["filter", "IN", "OUT", "--groups", "gen,gopherr"],
     "synth filter: groups: unknown group 'gopherr'; did you mean 'gopher'?"),
    (["dedup", "IN", "OUT", "--threshold", "1.0"],
     "synth dedup: threshold must be between 0 and 1, exclusive, for minhash dedup"),
    (["dedup", "IN", "OUT", "--ngram", "0"], "synth dedup: ngram must be >= 1"),
    (["dedup", "IN", "OUT", "--method", "fuzzy"], "synth dedup: method must be one of exact, minhash, semantic"),
])
def test_cli_options_use_the_loader_checks(tmp_path, argv, fragment):
    """The CLI rejects the same values with the same words, before it reads IN (which does
    not exist here) or starts Ray."""
    from typer.testing import CliRunner

    from synth.cli import app

    argv = [str(tmp_path / a) if a in ("IN", "OUT") else a for a in argv]
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert fragment in r.output, r.output
    assert not (tmp_path / "OUT").exists()
