"""Corrupt, truncated and unreadable inputs, for every command that reads seeds or shards.

Without `--skip-bad-inputs` each bad file is one `error:` line naming it, exit 2, no traceback
and nothing written to OUT. With it the work goes on over the good files: exactly their rows
come out, once each, and the manifest (train.json for training, the printed report for
`synth inspect`) lists the skipped file with a reason.

Not covered: a Parquet file whose footer is intact but whose page bytes were overwritten with
values that still decode (Parquet page checksums are optional, so nothing can tell).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.io.shards import list_rejects, list_shards
from tests.conftest import write_pipeline
from tests.test_train import micro_config, teacher_shards

runner = CliRunner()

WORDS = ("river stone forest cloud market engine garden winter letter planet signal bridge "
         "harbor candle meadow copper lantern orchard violet thunder").split()


def _doc(i: int) -> str:
    rng = random.Random(i)
    return " ".join(rng.choice(WORDS) for _ in range(60)) + f" document {i}."


GOOD_IDS = [f"g{i}" for i in range(6)]


# --------------------------------------------------------------------------- corruptions


def _valid_parquet_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ["b0", "b1"], "text": [_doc(100), _doc(101)]}), buf)
    return buf.getvalue()


def truncated_parquet(p: Path) -> None:
    data = _valid_parquet_bytes()
    p.write_bytes(data[: len(data) // 2])


def garbage_parquet(p: Path) -> None:
    p.write_bytes(random.Random(0).randbytes(3000))


def empty_file(p: Path) -> None:
    p.write_bytes(b"")


def unreadable(p: Path) -> None:
    p.write_bytes(_valid_parquet_bytes() if p.suffix == ".parquet" else b"some text")
    p.chmod(0)


def non_utf8_text(p: Path) -> None:
    p.write_bytes("caf\u00e9 au lait, a text in Latin-1".encode("latin-1"))


def bad_jsonl_line(p: Path) -> None:
    p.write_text(json.dumps({"id": "k1", "text": "a good line before the bad one"}) + "\n{broken\n")


AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UNREADABLE = pytest.param(unreadable, marks=pytest.mark.skipif(AS_ROOT, reason="root reads any file"))

SHARD_KINDS = [truncated_parquet, garbage_parquet, empty_file, UNREADABLE]
# (corruption, seed file name)
SEED_KINDS = [
    (truncated_parquet, "bad.parquet"),
    (garbage_parquet, "bad.parquet"),
    (empty_file, "bad.parquet"),
    (non_utf8_text, "bad.txt"),
    (bad_jsonl_line, "bad.jsonl"),
    pytest.param(unreadable, "bad.txt", marks=pytest.mark.skipif(AS_ROOT, reason="root reads any file")),
]


# --------------------------------------------------------------------------- inputs


def shard_inputs(tmp_path: Path, corrupt) -> tuple[Path, Path]:
    """IN: two good shards (ids g0..g5) and one bad one (third in order)."""
    src = tmp_path / "in"
    src.mkdir()
    for k in range(2):
        ids = GOOD_IDS[3 * k : 3 * k + 3]
        pq.write_table(pa.table({"id": ids, "text": [_doc(int(i[1:])) for i in ids]}),
                       src / f"part-{k:06d}.parquet")
    bad = src / "part-000002.parquet"
    corrupt(bad)
    return src, bad


def train_inputs(tmp_path: Path, corrupt, teacher_dirs: list[Path] | None = None) -> tuple[list[Path], Path]:
    """--data folders: two good ones (text shards, or teacher shards) and a bad one."""
    if teacher_dirs is None:
        src, _ = shard_inputs(tmp_path, empty_file)
        (src / "part-000002.parquet").unlink()
        good = [src]
    else:
        good = teacher_dirs
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = bad_dir / "part-000000.parquet"
    corrupt(bad)
    return [*good, bad_dir], bad


def seed_inputs(tmp_path: Path, corrupt, name: str) -> tuple[Path, Path]:
    """Seeds: a.txt, b.jsonl (ids j1, j2) and one bad file."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Alpha: " + _doc(1))
    (seeds / "b.jsonl").write_text("".join(json.dumps({"id": f"j{i}", "text": _doc(10 + i)}) + "\n"
                                           for i in (1, 2)))
    bad = seeds / name
    corrupt(bad)
    return seeds, bad


GOOD_SEED_IDS = {"a.txt", "j1", "j2"}


def pipeline(tmp_path: Path, seeds: Path) -> Path:
    return write_pipeline(
        tmp_path / "bad.yaml", name="bad",
        seeds={"path": str(seeds), "chunk_tokens": 0},
        prompt={"template": "rephrase_qa"},
        model={"name": "fake", "backend": "fake", "batch_size": 8},
        sampling={"n": 1, "max_tokens": 8},
    )


@pytest.fixture(scope="module")
def teacher_dirs(tmp_path_factory) -> list[Path]:
    """Two folders of teacher rows (top-k log-probs) from an untrained micro model."""
    import torch

    from synth.model import HybridLM
    from synth.train.config import TrainConfig
    from synth.train.loop import model_config
    from synth.train.tokenizer import load_tokenizer

    tmp = tmp_path_factory.mktemp("teachers")
    tok = load_tokenizer()
    torch.manual_seed(0)
    cfg = TrainConfig(mode="distill", data=(str(tmp),), out=str(tmp / "x"), model=micro_config(tmp))
    model = HybridLM(model_config(cfg, tok.vocab_size)).eval()
    return [teacher_shards(tmp, tok, model, "ta", ["Say hello.", "Count to three."], teacher="t"),
            teacher_shards(tmp, tok, model, "tb", ["Name a colour.", "2+2="], teacher="t")]


TRAIN_ARGS = ["--steps", "2", "--batch-size", "2", "--seq-len", "32", "--eval-every", "1",
              "--ckpt-every", "2", "--threads", "1"]


def command(cmd: str, tmp_path: Path, corrupt, teacher_dirs=None) -> tuple[list[str], Path, Path]:
    """(argv, OUT, the bad file) for one command over inputs with one bad file."""
    out = tmp_path / "out"
    if cmd.startswith("train"):
        data, bad = train_inputs(tmp_path, corrupt, teacher_dirs if cmd == "train distill" else None)
        argv = cmd.split() + [a for d in data for a in ("--data", str(d))] + [
            "--out", str(out), "--config", micro_config(tmp_path), *TRAIN_ARGS]
        return argv, out, bad
    src, bad = shard_inputs(tmp_path, corrupt)
    if cmd == "inspect":
        return ["inspect", str(src), "--json"], out, bad
    argv = [cmd, str(src), str(out)]
    if cmd == "decontam":
        evals = tmp_path / "eval.jsonl"
        evals.write_text(json.dumps({"id": "e1", "question": "What is the boiling point of water "
                                     "at sea level in degrees Celsius on a normal day?"}) + "\n")
        argv += ["--against", str(evals)]
    if cmd == "dedup":
        argv += ["--method", "exact"]
    return argv, out, bad


SHARD_COMMANDS = ["filter", "dedup", "decontam", "inspect", "train pretrain", "train distill"]


def assert_one_line_error(r, bad: Path) -> None:
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and bad.name in lines[0], lines[0]
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))


# --------------------------------------------------------------------------- without the flag


@pytest.mark.parametrize("corrupt", SHARD_KINDS)
@pytest.mark.parametrize("cmd", SHARD_COMMANDS)
def test_bad_shard_is_one_line_error(tmp_path, cmd, corrupt, request):
    teachers = request.getfixturevalue("teacher_dirs") if cmd == "train distill" else None
    argv, out, bad = command(cmd, tmp_path, corrupt, teachers)
    r = runner.invoke(app, argv)
    assert_one_line_error(r, bad)
    assert_nothing_written(out)


@pytest.mark.parametrize("corrupt,name", SEED_KINDS)
def test_bad_seed_file_is_one_line_error(tmp_path, corrupt, name):
    seeds, bad = seed_inputs(tmp_path, corrupt, name)
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(pipeline(tmp_path, seeds)), "--out", str(out)])
    assert_one_line_error(r, bad)
    assert_nothing_written(out)


# --------------------------------------------------------------------------- with the flag


def _ids(folder: Path) -> list[str]:
    files = list_shards(folder) + list_rejects(folder)
    return sorted(i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())


def _assert_skipped(entries: list[dict], bad: Path) -> None:
    assert [Path(e["path"]).name for e in entries] == [bad.name], entries
    assert Path(entries[0]["path"]) == bad and entries[0]["reason"]


@pytest.mark.parametrize("corrupt", [truncated_parquet, garbage_parquet])
@pytest.mark.parametrize("cmd", ["filter", "dedup", "decontam"])
def test_curation_skips_bad_shards(tmp_path, cmd, corrupt, ray_session):
    argv, out, bad = command(cmd, tmp_path, corrupt)
    r = runner.invoke(app, [*argv, "--skip-bad-inputs"])
    assert r.exit_code == 0, r.output
    assert _ids(out) == GOOD_IDS  # every good row exactly once (kept or rejected)
    m = json.loads((out / "manifest.json").read_text())
    _assert_skipped(m["skipped_inputs"], bad)
    assert str(bad) not in m["inputs"]
    assert f"skipped {bad}" in r.output


@pytest.mark.parametrize("corrupt", [truncated_parquet, empty_file])
def test_inspect_skips_bad_shards(tmp_path, corrupt):
    argv, _, bad = command("inspect", tmp_path, corrupt)
    r = runner.invoke(app, [*argv, "--skip-bad-inputs"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["rows"] == len(GOOD_IDS) and report["shards"] == 2
    _assert_skipped(report["skipped"], bad)
    plain = runner.invoke(app, ["inspect", argv[1], "--skip-bad-inputs"])
    assert plain.exit_code == 0 and f"skipped {bad}" in plain.output.replace("\n", "")


@pytest.mark.parametrize("cmd", ["train pretrain", "train distill"])
def test_train_skips_bad_shards(tmp_path, cmd, request):
    teachers = request.getfixturevalue("teacher_dirs") if cmd == "train distill" else None
    argv, out, bad = command(cmd, tmp_path, garbage_parquet, teachers)
    r = runner.invoke(app, [*argv, "--skip-bad-inputs"])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "train.json").read_text())
    _assert_skipped(info["skipped_inputs"], bad)


def test_text_data_keeps_exactly_the_good_documents(tmp_path):
    from synth.train.data import TextData
    from synth.train.tokenizer import load_tokenizer

    data, bad = train_inputs(tmp_path, truncated_parquet)
    d = TextData.from_shards(data, load_tokenizer(), "text", 0.2, 32, skip_bad=True)
    assert d.documents == len(GOOD_IDS)
    _assert_skipped(d.skipped, bad)


@pytest.mark.parametrize("corrupt,name", SEED_KINDS)
def test_read_seeds_skips_bad_files_whole(tmp_path, corrupt, name):
    from synth.io.seeds import read_seeds

    seeds, bad = seed_inputs(tmp_path, corrupt, name)
    skipped: list[dict] = []
    ids = [s.seed_id for s in read_seeds(seeds, skip_bad=True, skipped=skipped)]
    assert sorted(ids) == sorted(GOOD_SEED_IDS)  # nothing from the bad file, not even line 1
    _assert_skipped(skipped, bad)


@pytest.mark.parametrize("corrupt,name", [(garbage_parquet, "bad.parquet"), (bad_jsonl_line, "bad.jsonl")])
def test_run_skips_bad_seed_files(tmp_path, corrupt, name, ray_session):
    seeds, bad = seed_inputs(tmp_path, corrupt, name)
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(pipeline(tmp_path, seeds)), "--out", str(out), "--skip-bad-inputs"])
    assert r.exit_code == 0, r.output
    seed_ids = [i for f in list_shards(out) for i in pq.read_table(f).column("seed_id").to_pylist()]
    assert sorted(seed_ids) == sorted(GOOD_SEED_IDS)  # n=1: each good seed exactly once
    m = json.loads((out / "manifest.json").read_text())
    _assert_skipped(m["skipped_inputs"], bad)
    assert f"skipped {bad}" in r.output


def test_all_inputs_bad_is_still_an_error(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    garbage_parquet(src / "part-000000.parquet")
    r = runner.invoke(app, ["filter", str(src), str(tmp_path / "out"), "--skip-bad-inputs"])
    assert r.exit_code == 2 and "no readable shards" in r.stderr
