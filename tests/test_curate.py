"""Curation as commands over shards (`synth filter | dedup | decontam`) and in pipelines."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.config import load_pipeline
from synth.io.shards import list_rejects, read_shards, write_shard
from synth.pipeline.run import run_pipeline
from tests.conftest import SAMPLE, write_pipeline

runner = CliRunner()

TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "The quick brown fox jumps over the lazy dog near the river bank today.",  # exact copy
    "the QUICK brown fox  jumps over the lazy dog near the river bank today!",  # normalized copy
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants.",
    "I'm sorry, but I can't help with that request.",
]


def _shards(tmp_path, n_files=2):
    src = tmp_path / "in"
    ids = [f"r{i}" for i in range(len(TEXTS))]
    reasons = ["stop", "stop", "stop", "length", "stop"]
    half = len(TEXTS) // n_files + 1
    for k in range(n_files):
        sl = slice(k * half, (k + 1) * half)
        write_shard(pa.table({"id": ids[sl], "response": TEXTS[sl], "finish_reason": reasons[sl]}),
                    src, f"part-{k:06d}.parquet")
    return src


def _rejects(out):
    files = list_rejects(out)
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def test_filter_command(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["filter", str(_shards(tmp_path)), str(out)])
    assert r.exit_code == 0, r.output
    rej = _rejects(out)
    got = dict(zip(rej.column("id").to_pylist(), rej.column("reject_reason").to_pylist()))
    assert got == {"r3": "gen.truncated", "r4": "gen.refusal"}
    assert sorted(read_shards(out).column("id").to_pylist()) == ["r0", "r1", "r2"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["reject_reasons"] == {"gen.truncated": 1, "gen.refusal": 1}
    assert "gen.refusal" in r.output and "kept" in r.output  # the summary table


@pytest.mark.parametrize("method,kept", [("exact", {"r0", "r3", "r4"}), ("minhash", {"r0", "r3", "r4"})])
def test_dedup_command(tmp_path, ray_session, method, kept):
    out = tmp_path / "out"
    r = runner.invoke(app, ["dedup", str(_shards(tmp_path)), str(out), "--method", method,
                            "--threshold", "0.7", "--ngram", "3"])
    assert r.exit_code == 0, r.output
    t = read_shards(out)
    assert set(t.column("id").to_pylist()) == kept
    assert all(c for c in t.column("cluster_id").to_pylist())  # cluster id on every row
    rej = _rejects(out)
    assert set(rej.column("id").to_pylist()) == {"r1", "r2"}
    assert set(rej.column("duplicate_of").to_pylist()) == {"r0"}
    # minhash also names exact copies (found first, for free) as exact duplicates
    allowed = {"exact_duplicate"} | ({"minhash_duplicate"} if method == "minhash" else set())
    assert set(rej.column("reject_reason").to_pylist()) <= allowed


def test_decontam_command(tmp_path):
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"id": "q7", "question": TEXTS[3]}) + "\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["decontam", str(_shards(tmp_path)), str(out), "--against", str(evals),
                            "--ngram", "8"])
    assert r.exit_code == 0, r.output
    rej = _rejects(out)
    assert rej.column("id").to_pylist() == ["r3"]
    assert rej.column("decontam_match").to_pylist() == ["eval.jsonl:q7"]


@pytest.mark.parametrize("command", [["filter"], ["dedup", "--method", "exact"],
                                     ["decontam", "--against", str(SAMPLE / "seeds" / "extra.jsonl")]])
@pytest.mark.parametrize("case", ["empty", "corrupt", "no_column"])
def test_bad_input(tmp_path, command, case):
    src = tmp_path / "in"
    src.mkdir()
    if case == "corrupt":
        write_shard(pa.table({"id": ["a"], "response": ["x y z"]}), src, "part-000000.parquet")
        (src / "part-000001.parquet").write_bytes(b"PAR1garbage")
    elif case == "no_column":
        write_shard(pa.table({"id": ["a"], "body": ["x"]}), src, "part-000000.parquet")
    out = tmp_path / "out"
    r = runner.invoke(app, [command[0], str(src), str(out), *command[1:]])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output
    if case == "corrupt":
        assert "part-000001.parquet" in r.output
    assert not out.exists() or not any(out.rglob("*.parquet"))


def test_pipeline_filters_and_dedup(tmp_path, ray_session):
    """Fake engine answering the same text to every prompt: all but one row are duplicates."""
    pipe = write_pipeline(
        tmp_path / "c.yaml", name="curate",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": 4,
               "engine_kwargs": {"constant": "Water boils at one hundred degrees Celsius at sea level."}},
        stages=[{"quality_filter": {"groups": ["gen"], "min_words": 3}}],
        dedup={"method": "exact", "column": "response"},
    )
    cfg = load_pipeline(pipe)
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=10)
    t = read_shards(out)
    assert t.num_rows == 1 and r.rows == 1
    rej = _rejects(out)
    assert rej.num_rows == 9 and set(rej.column("reject_reason").to_pylist()) == {"exact_duplicate"}
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["counts"]["missing_rows"] == 0
    assert m["counts"]["reject_reasons"] == {"exact_duplicate": 9}
    again = run_pipeline(cfg, out=out, limit=10)  # rejects count as done: nothing regenerated
    assert again.generated_rows == 0
