"""The runner's plumbing on the real Ray runtime with the deterministic fake engine.

The real vLLM engine is exercised in test_e2e_vllm.py; here the engine is fake so that the
resume and output-folder rules can be checked fast and exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synth.config import load_pipeline
from synth.errors import SynthError
from synth.io.shards import list_shards, read_shards, row_id
from synth.pipeline.prompts import build_prompts
from synth.pipeline.run import run_pipeline
from tests.conftest import SAMPLE, write_pipeline


def fake_pipeline(tmp_path: Path, name="fake", n=2, batch_size=8, **model) -> Path:
    return write_pipeline(
        tmp_path / f"{name}.yaml",
        name=name,
        seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 200},
        prompt={"template": "rephrase_qa"},
        model={"name": "fake", "backend": "fake", "batch_size": batch_size, **model},
        sampling={"n": n, "max_tokens": 16, "logprobs": 3},
    )


def expected_ids(cfg, limit=None) -> set[str]:
    prompts = build_prompts(cfg, limit=limit)
    return {row_id(cfg.name, s, c, j)
            for s, c in zip(prompts.column("seed_id").to_pylist(), prompts.column("chunk_index").to_pylist())
            for j in range(cfg.sampling.n)}


def read_ids(out: Path) -> list[str]:
    return read_shards(out, columns=["id"]).column("id").to_pylist() if list_shards(out) else []


def test_run_writes_shards_and_manifest(tmp_path, ray_session):
    cfg = load_pipeline(fake_pipeline(tmp_path))
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out)
    ids = read_ids(out)
    assert sorted(ids) == sorted(expected_ids(cfg))
    assert r.rows == len(ids) == r.prompts * 2
    assert r.shards == len(list_shards(out)) > 1  # one shard per batch
    t = read_shards(out)
    assert t.schema.field("top_logprobs").type.value_type.value_type.bit_width == 32
    row = t.slice(0, 1).to_pylist()[0]
    assert row["response"] and row["finish_reason"] == "stop"
    assert len(row["top_logprob_ids"]) == len(row["token_ids"]) == row["completion_tokens"]
    assert all(len(k) == 3 for k in row["top_logprob_ids"])
    assert json.loads(row["messages"])[-1]["role"] == "user"
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert m["counts"]["rows"] == len(ids) and m["counts"]["missing_rows"] == 0
    assert m["generation_hash"] == cfg.generation_hash()
    assert m["config"]["sampling"]["n"] == 2
    assert "pyarrow" in m["versions"] and "elapsed_s" in m["last_run"]
    assert not (out / ".tmp").exists() or not any((out / ".tmp").iterdir())


def test_ids_are_deterministic(tmp_path, ray_session):
    cfg = load_pipeline(fake_pipeline(tmp_path))
    run_pipeline(cfg, out=tmp_path / "a", limit=12)
    run_pipeline(cfg, out=tmp_path / "b", limit=12)
    a = read_shards(tmp_path / "a").sort_by("id")
    b = read_shards(tmp_path / "b").sort_by("id")
    assert a.column("id").equals(b.column("id"))
    assert a.column("response").equals(b.column("response"))


def test_resume_generates_only_missing_rows(tmp_path, ray_session, monkeypatch):
    count_file = tmp_path / "calls.txt"
    monkeypatch.setenv("SYNTH_FAKE_COUNT_FILE", str(count_file))
    cfg = load_pipeline(fake_pipeline(tmp_path, batch_size=4))
    out = tmp_path / "out"
    first = run_pipeline(cfg, out=out, limit=10)
    assert first.generated_rows == 20
    # Simulate a run cut off at two points: one unit never written (shard and marker gone),
    # and one killed between its shard and its completion marker (shard kept, marker gone).
    shards = list_shards(out)
    markers = sorted((out / "_completions").iterdir())
    assert len(shards) == len(markers) >= 2  # one per unit (4 seeds, a few chunks each)
    lost = pq.read_metadata(shards[0]).num_rows
    shards[0].unlink()
    (out / "_completions" / (shards[0].stem.split("-", 1)[1] + ".json")).unlink()
    (out / "_completions" / (shards[1].stem.split("-", 1)[1] + ".json")).unlink()
    count_file.unlink(missing_ok=True)
    second = run_pipeline(cfg, out=out)  # no limit now: also extends to every prompt
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) == len(expected_ids(cfg))
    assert second.generated_rows == len(expected_ids(cfg)) - 20 + lost
    assert second.resumed_prompts == 10 - lost // 2
    # The engine saw only prompts of the lost unit and the new ones; none of the finished ones.
    if count_file.exists():  # engine actors may run with another environment on some hosts
        sent = count_file.read_text().split()
        done_before = set(pq.ParquetDataset([str(x) for x in shards[1:]]).read().column("prompt_id").to_pylist())
        assert not done_before & set(sent)
    assert (out / "_completions" / (shards[1].stem.split("-", 1)[1] + ".json")).exists()
    third = run_pipeline(cfg, out=out)
    assert third.generated_rows == 0 and third.resumed_prompts == third.prompts


def test_fresh_replaces_and_changed_config_refuses(tmp_path, ray_session):
    cfg = load_pipeline(fake_pipeline(tmp_path))
    out = tmp_path / "out"
    run_pipeline(cfg, out=out, limit=4)
    other = load_pipeline(fake_pipeline(tmp_path, name="fake", n=3))
    with pytest.raises(SynthError, match="different configuration.*--fresh"):
        run_pipeline(other, out=out, limit=4)
    r = run_pipeline(other, out=out, limit=4, resume=False)
    assert r.rows == 12 and len(read_ids(out)) == 12


def test_refuses_foreign_folder(tmp_path, ray_session):
    cfg = load_pipeline(fake_pipeline(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match="not empty"):
        run_pipeline(cfg, out=out)
    assert (out / "notes.txt").read_text() == "mine"


def test_shards_open_in_other_tools(tmp_path, ray_session):
    cfg = load_pipeline(fake_pipeline(tmp_path))
    out = tmp_path / "out"
    run_pipeline(cfg, out=out, limit=6)
    n = 12
    import duckdb
    import polars as pl
    from datasets import load_dataset

    assert pl.read_parquet(str(out / "part-*.parquet")).height == n
    assert duckdb.sql(f"select count(*) from '{out}/part-*.parquet'").fetchall()[0][0] == n
    ds = load_dataset("parquet", data_files=str(out / "part-*.parquet"), split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert len(ds) == n and ds[0]["response"]
    assert read_shards(out).num_rows == n
    meta = pq.ParquetFile(list_shards(out)[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_write_split_sends_rejects_to_their_folder(tmp_path):
    import pyarrow as pa

    from synth.io.shards import list_rejects, write_split

    t = pa.table({"id": ["a", "b", "c"], "reject_reason": [None, "gen.empty", "decontam"]})
    kept, dropped, why = write_split(t, tmp_path, "part-000.parquet")
    assert (kept, dropped, why) == (1, 2, {"gen.empty": 1, "decontam": 1})
    assert read_shards(tmp_path).column("id").to_pylist() == ["a"]
    assert pq.read_table(list_rejects(tmp_path)[0]).column("id").to_pylist() == ["b", "c"]


def test_units_in_several_windows_are_each_written_once(tmp_path, ray_session, monkeypatch):
    """A run longer than one window (WINDOW_UNITS units per Ray Data execution) writes every
    unit once: a shard and a marker each, every expected row exactly once."""
    import synth.pipeline.run as run_mod

    monkeypatch.setattr(run_mod, "WINDOW_UNITS", 2)
    cfg = load_pipeline(fake_pipeline(tmp_path, batch_size=2))
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=12)
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) == len(expected_ids(cfg, limit=12)) == r.rows
    markers = list((out / "_completions").glob("*.json"))
    assert len(markers) == len(list_shards(out)) == r.shards >= 3  # more than one window


def test_every_unit_reaches_the_engine_at_once(tmp_path, ray_session):
    """With `in_flight` >= the units of a run, every unit is in the engine actor together (the
    engine's continuous batching needs them there): Ray Data must not queue a unit behind
    another on one worker. The fake engine holds each batch for a second, so a unit sent
    only after another finished shows as a peak below min(units, in_flight)."""
    import ray

    from synth.backends.pool import get_engines
    from synth.pipeline.prompts import resolve_model
    from synth.pipeline.run import engine_spec

    cfg = load_pipeline(fake_pipeline(tmp_path, name="inflight", batch_size=2, in_flight=4,
                                      engine_kwargs={"delay": 1.0}))
    r = run_pipeline(cfg, out=tmp_path / "out", limit=12)
    assert r.shards >= 3  # a unit (and a shard) per 2 seeds
    (engine,) = get_engines(engine_spec(cfg, resolve_model(cfg)))
    assert ray.get(engine.peak_calls.remote()) == min(r.shards, 4)
