"""Output locations on an object store: shards, inspect and the curation commands on s3:// URIs.

A real S3 server (moto's, started on localhost by the `s3_server` fixture in conftest.py) and
real `synth` subprocesses, pointed at it by the standard AWS variables only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.errors import OutputFailed
from synth.io import shards as sh

ROOT = Path(__file__).resolve().parents[1]

TEXTS = {
    "r0": ("The quick brown fox jumps over the lazy dog near the river bank today.", "stop"),
    "r1": ("The quick brown fox jumps over the lazy dog near the river bank today.", "stop"),
    "r2": ("the QUICK brown fox  jumps over the lazy dog near the river bank today!", "stop"),
    "r3": ("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.", "length"),
    "r4": ("I'm sorry, but I can't help with that request.", "stop"),
    "r5": ("Water boils at one hundred degrees Celsius at sea level pressure on Earth.", "stop"),
    "r6": ("Water boils at one hundred degrees Celsius at sea level pressure on Earth.", "stop"),
    "r7": ("Mount Everest is the highest mountain above sea level in the whole world.", "stop"),
}
SHARDS = [["r0", "r3", "r6"], ["r1", "r4"], ["r2", "r5", "r7"]]


def _table(ids):
    return pa.table({"id": ids, "response": [TEXTS[i][0] for i in ids],
                     "finish_reason": [TEXTS[i][1] for i in ids]})


def _write_input(uri: str) -> None:
    for k, ids in enumerate(SHARDS):
        sh.write_shard(_table(ids), uri, f"part-{k:06d}.parquet")


def _synth(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`synth ARGS` in a subprocess with this tree first on the path, its own local Ray, and the
    S3 variables of the session's server (inherited from os.environ)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="rs", dir="/tmp") as ray_tmp:  # short socket paths
        env["RAY_TMPDIR"] = ray_tmp
        return subprocess.run([sys.executable, "-c", "from synth.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _ids(files) -> list[str]:
    return sorted(i for f in files for i in sh.read_table(f, columns=["id"]).column("id").to_pylist())


# --------------------------------------------------------------------------- the storage API


def test_shards_api_on_s3(s3_server):
    base = s3_server.prefix("api")
    assert sh.is_uri(base) and not sh.exists(base) and sh.list_shards(base) == []
    assert sh.read_manifest(base) is None and sh.read_json(sh.join(base, "x.json")) is None

    path = sh.write_shard(_table(["r0", "r1"]), base, "part-000001.parquet", metadata={"unit": 7})
    sh.write_shard(_table(["r2"]), sh.join(base, sh.REJECTS), "part-000001.parquet")
    sh.write_shard(_table(["r3"]), base, "part-000000.parquet")
    sh.write_json_atomic({"stage": "x"}, sh.join(base, sh.MANIFEST))

    assert path == f"{base}/part-000001.parquet"
    assert sh.list_shards(base) == [f"{base}/part-000000.parquet", f"{base}/part-000001.parquet"]
    assert sh.list_rejects(base) == [f"{base}/rejects/part-000001.parquet"]
    assert sh.list_shards(path) == [path]  # one shard names itself
    assert sh.list_names(base) == ["manifest.json", "part-000000.parquet", "part-000001.parquet", "rejects"]
    assert sh.is_dir(base) and sh.is_file(path) and sh.exists(path) and not sh.is_dir(path)
    assert sh.read_footer(path) == {"unit": 7}
    assert sh.read_footer(f"{base}/part-000000.parquet") is None
    assert sh.read_manifest(base) == {"stage": "x"}
    assert sorted(sh.read_shards(base).column("id").to_pylist()) == ["r0", "r1", "r3"]
    assert sh.read_column(sh.list_shards(base), "id") == ["r3", "r0", "r1"]
    assert sh.name_of(path) == "part-000001.parquet"
    assert sh.expand_shards([base]) == sh.list_shards(base)

    # what another S3 client sees: exactly these objects, no temp objects
    under = base.split("/", 3)[3]
    assert s3_server.keys(under) == [f"{under}/{k}" for k in (
        "manifest.json", "part-000000.parquet", "part-000001.parquet", "rejects/part-000001.parquet")]
    with s3_server.filesystem().open_input_file(f"{s3_server.bucket}/{under}/part-000001.parquet") as f:
        assert pq.read_table(f).column("id").to_pylist() == ["r0", "r1"]

    sh.clean_tmp(base)  # nothing to clean on a store; must not fail
    sh.remove(path)
    sh.remove(path)  # missing: fine
    assert not sh.exists(path)
    assert sh.list_shards(base) == [f"{base}/part-000000.parquet"]

    fs, p = sh.open_fs(base)
    assert p == base[len("s3://"):] and fs.type_name == "s3"


def test_failed_upload_is_output_failed(s3_server):
    with pytest.raises(OutputFailed, match="cannot write s3://no-such-bucket-synth/out/part-000000.parquet"):
        sh.write_shard(_table(["r0"]), "s3://no-such-bucket-synth/out", "part-000000.parquet")


def test_file_uri_is_local(tmp_path):
    uri = f"file://{tmp_path}/out"
    got = sh.write_shard(_table(["r0"]), uri, "part-000000.parquet")
    assert got == tmp_path / "out" / "part-000000.parquet" and got.is_file()
    assert sh.list_shards(uri) == [got] and not sh.is_uri(uri)
    assert not (tmp_path / "out" / sh.TMP).exists()


# --------------------------------------------------------------------------- the commands


def test_inspect_dedup_filter_on_s3(s3_server):
    base = s3_server.prefix("cli")
    src, dedup_out, filt_out = f"{base}/in", f"{base}/dedup", f"{base}/filtered"
    _write_input(src)

    r = _synth("inspect", src, "--json", "-n", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert (report["path"], report["shards"], report["rows"]) == (src, 3, len(TEXTS))
    assert report["verdicts"]["finish_reason"] == {"stop": 7, "length": 1}

    r = _synth("dedup", src, dedup_out, "--method", "minhash")
    assert r.returncode == 0, r.stderr[-3000:]
    kept, rejects = sh.list_shards(dedup_out), sh.list_rejects(dedup_out)
    assert all(sh.is_uri(f) for f in kept + rejects)
    assert _ids(kept) == ["r0", "r3", "r4", "r5", "r7"]
    rej = pa.concat_tables([sh.read_table(f) for f in rejects])
    assert dict(zip(rej.column("id").to_pylist(), rej.column("reject_reason").to_pylist())) == {
        "r1": "exact_duplicate", "r2": "exact_duplicate", "r6": "exact_duplicate"}
    assert dict(zip(rej.column("id").to_pylist(), rej.column("duplicate_of").to_pylist())) == {
        "r1": "r0", "r2": "r0", "r6": "r5"}
    assert _ids(kept + rejects) == sorted(TEXTS)  # every row once
    manifest = sh.read_manifest(dedup_out)
    assert manifest["counts"]["rows"] == 5 and manifest["counts"]["rejected_rows"] == 3
    assert manifest["inputs"] == [f"{src}/part-{k:06d}.parquet" for k in range(3)]

    r = _synth("filter", dedup_out, filt_out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _ids(sh.list_shards(filt_out)) == ["r0", "r5", "r7"]
    rej = pa.concat_tables([sh.read_table(f) for f in sh.list_rejects(filt_out)])
    assert dict(zip(rej.column("id").to_pylist(), rej.column("reject_reason").to_pylist())) == {
        "r3": "gen.truncated", "r4": "gen.refusal"}

    under = base.split("/", 3)[3]
    assert not [k for k in s3_server.keys(under) if sh.TMP in k.split("/")]

    # a non-empty OUT and a missing IN are one-line user errors (exit 2), nothing written
    before = s3_server.keys(under)
    r = _synth("dedup", src, dedup_out)
    assert r.returncode == 2 and "is not empty" in r.stderr, r.stderr[-3000:]
    r = _synth("inspect", f"{base}/missing")
    assert r.returncode == 2 and "no such file or folder" in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert s3_server.keys(under) == before


def test_store_errors_are_one_line(s3_server, monkeypatch):
    """Refused credentials and an unknown scheme: one line naming the URI, exit 2."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    r = _synth("inspect", s3_server.uri("anything"))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert s3_server.uri("anything") in lines[0] and "ACCESS_DENIED" in lines[0]
    monkeypatch.undo()
    r = _synth("inspect", "nosuchscheme://bucket/x")
    assert r.returncode == 2 and r.stderr.startswith("error: nosuchscheme://bucket/x: "), r.stderr[-3000:]


def test_wrong_key_is_refused(s3_server):
    """The server checks credentials (so the tests above prove they reached every process)."""
    from pyarrow import fs

    wrong = fs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://", 1)[1], scheme="http",
                            region="us-east-1", access_key=s3_server.env["AWS_ACCESS_KEY_ID"],
                            secret_key="not-the-secret")
    with pytest.raises(OSError, match="ACCESS_DENIED|SignatureDoesNotMatch|403"):
        wrong.get_file_info(f"{s3_server.bucket}/anything")


def test_dedup_on_s3_in_a_running_ray(ray_session, s3_server):
    """`dedup_decisions` over s3:// shards in the session's Ray, whose workers were started
    before the AWS variables were set: the endpoint and keys travel with the filesystem."""
    from synth.stages.dedup import dedup_decisions

    src = f"{s3_server.prefix('ray')}/in"
    _write_input(src)
    d = dedup_decisions([src], method="exact", column="response").to_pydict()
    dup = {i: o for i, keep, o in zip(d["id"], d["keep"], d["duplicate_of"]) if not keep}
    assert dup == {"r1": "r0", "r2": "r0", "r6": "r5"} and sorted(d["id"]) == sorted(TEXTS)


# --------------------------------------------------------------------------- synth run on S3


def test_run_to_s3_then_inspect_dedup_resume(s3_server, tmp_path):
    """`synth run --out s3://...`: workers write shards, rejects and completion markers
    straight to the store; `synth inspect` and `synth dedup` read them there; a rerun finds
    every unit done (from the markers in the store) and generates nothing."""
    from tests.conftest import SAMPLE, write_pipeline

    out = f"{s3_server.prefix('run')}/gen"
    pipe = write_pipeline(
        tmp_path / "s3.yaml", name="s3run",
        seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake", "batch_size": 2},
        sampling={"n": 2}, stages=[{"quality_filter": {"min_words": 6}}],
    )
    r = _synth("run", str(pipe), "--out", out, "--limit", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = sh.read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["prompts"] == 8
    kept, rejects = sh.list_shards(out), sh.list_rejects(out)
    assert all(sh.is_uri(f) for f in kept + rejects)
    ids = _ids(kept + rejects)
    assert len(ids) == len(set(ids)) == 16  # 8 prompts x n=2, each once, kept or rejected
    assert manifest["counts"]["rows"] + manifest["counts"]["rejected_rows"] == 16
    under = out.split("/", 3)[3]
    assert [k for k in s3_server.keys(under) if "/_completions/" in k]
    assert not [k for k in s3_server.keys(under) if sh.TMP in k.split("/")]

    r = _synth("inspect", out, "--json", "-n", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["rows"] == manifest["counts"]["rows"]

    deduped = f"{out}-dedup"
    r = _synth("dedup", out, deduped, "--method", "exact", "--column", "response")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _ids(sh.list_shards(deduped) + sh.list_rejects(deduped)) == _ids(kept)

    r = _synth("run", str(pipe), "--out", out, "--limit", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    again = sh.read_manifest(out)
    assert again["last_run"]["generated_rows"] == 0 and again["attempts"] == 2
    assert again["last_run"]["resumed_prompts"] == 8
