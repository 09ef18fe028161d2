"""Verification stages in pipelines and `synth verify` over shards and single answers."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.config import load_pipeline
from synth.io.shards import read_shards, write_shard
from synth.pipeline.run import run_pipeline
from synth.stages.verify import VerifyMath, extract_program
from tests.conftest import SAMPLE, write_pipeline
from verifiers.math import check_math

runner = CliRunner()

# (response, answer in meta, expected verdict)
MATH_ROWS = [
    ("... so the total is \\boxed{42}.", "42", "correct"),
    ("The final answer is 3/4", "0.75", "correct"),
    ("I think it is \\boxed{7}", "8", "incorrect"),
    ("I am not sure how to approach this problem at all.", "5", "unverifiable"),
    ("\\boxed{x^2+2x}", "x**2 + 2*x", "correct"),
]


def _math_table():
    return pa.table({
        "id": [str(i) for i in range(len(MATH_ROWS))],
        "response": [r for r, _, _ in MATH_ROWS],
        "meta": [json.dumps({"answer": a}) for _, a, _ in MATH_ROWS],
    })


def test_verify_math_stage_reads_meta():
    out = VerifyMath()(_math_table())
    assert out.column("math_verdict").to_pylist() == [v for _, _, v in MATH_ROWS]
    for row, (resp, ans, _) in zip(out.to_pylist(), MATH_ROWS):
        direct = check_math(resp, ans)
        assert row["math_verdict"] == direct.verdict and row["math_predicted"] == direct.predicted


def test_verify_math_stage_column_and_missing_reference():
    t = pa.table({"response": ["\\boxed{1}", "\\boxed{2}"], "gold": ["1", None]})
    out = VerifyMath(reference_column="gold")(t)
    assert out.column("math_verdict").to_pylist() == ["correct", "unverifiable"]
    assert "no reference" in out.column("math_reason").to_pylist()[1]


@pytest.mark.parametrize("response,expected", [
    ("Here:\n```python\ndef f():\n    return 1\n```\nDone", "def f():\n    return 1\n"),
    ("```python\na = 1\n```\ntext\n```py\nb = 2\n```", "b = 2\n"),
    ("def g(x):\n    return x", "def g(x):\n    return x"),
    ("I cannot solve this.", None),
    ("", None),
])
def test_extract_program(response, expected):
    assert extract_program(response) == expected


def test_pipeline_with_verify_stage(tmp_path, ray_session):
    pipe = write_pipeline(
        tmp_path / "m.yaml", name="mathfake",
        seeds={"path": str(SAMPLE / "math" / "problems.jsonl"), "text_column": "problem"},
        prompt={"template": "math_solution"},
        model={"name": "fake", "backend": "fake", "batch_size": 4},
        stages=[{"verify_math": {"timeout": 5}}],
    )
    cfg = load_pipeline(pipe)
    run_pipeline(cfg, out=tmp_path / "out", limit=6)
    t = read_shards(tmp_path / "out")
    assert t.num_rows == 6 and "math_verdict" in t.column_names
    for row in t.to_pylist():  # consistent with a direct call on the same row
        assert row["math_verdict"] == check_math(row["response"], json.loads(row["meta"])["answer"]).verdict
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sum(m["counts"]["verdicts"]["math_verdict"].values()) == 6


def test_unknown_stage_is_named(tmp_path):
    from synth.errors import SynthError

    pipe = write_pipeline(tmp_path / "m.yaml", name="x", seeds={"path": str(SAMPLE / "seeds")},
                          prompt={"template": "chat"}, stages=["verify_maths"])
    with pytest.raises(SynthError, match="unknown stage 'verify_maths'.*verify_math"):
        load_pipeline(pipe)
    pipe = write_pipeline(tmp_path / "m.yaml", name="x", seeds={"path": str(SAMPLE / "seeds")},
                          prompt={"template": "chat"}, stages=[{"verify_math": {"timout": 1}}])
    with pytest.raises(SynthError, match="stages\\[0\\].verify_math.timout"):
        load_pipeline(pipe)


def test_cli_verify_math_over_shards(tmp_path):
    src = tmp_path / "in"
    write_shard(_math_table(), src, "part-000000.parquet")
    out = tmp_path / "out"
    r = runner.invoke(app, ["verify", "math", str(src), str(out)])
    assert r.exit_code == 0, r.output
    assert "math_verdict: correct 3" in r.output
    t = read_shards(out)
    assert t.column("math_verdict").to_pylist() == [v for _, _, v in MATH_ROWS]
    assert json.loads((out / "manifest.json").read_text())["counts"]["rows"] == len(MATH_ROWS)


@pytest.mark.parametrize("case", ["missing", "corrupt", "no_column", "not_empty"])
def test_cli_verify_bad_input(tmp_path, case):
    src = tmp_path / "in"
    out = tmp_path / "out"
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "corrupt":
        write_shard(_math_table(), src, "part-000000.parquet")
        (src / "part-000001.parquet").write_bytes(b"garbage")
    elif case == "no_column":
        write_shard(pa.table({"text": ["a"]}), src, "part-000000.parquet")
    else:
        write_shard(_math_table(), src, "part-000000.parquet")
        out.mkdir()
        (out / "keep.txt").write_text("x")
    r = runner.invoke(app, ["verify", "math", str(src), str(out)])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and "Traceback" not in r.output
    if case == "corrupt":
        assert "part-000001.parquet" in r.output
    if case == "no_column":
        assert "'response'" in r.output
    if case == "not_empty":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists() or not any(out.glob("part-*.parquet"))


@pytest.mark.parametrize("response,reference,code,verdict", [
    ("\\boxed{\\frac{1}{2}}", "0.5", 0, "correct"),
    ("\\boxed{3}", "4", 1, "incorrect"),
])
def test_cli_verify_math_single(response, reference, code, verdict):
    r = runner.invoke(app, ["verify", "math", "--response", response, "--reference", reference, "--json"])
    assert r.exit_code == code
    assert json.loads(r.output)["verdict"] == verdict


# ------------------------------------------------------------------ code

CODE_ROWS = [  # (response, tests, mode, expected verdict)
    ("```python\ndef add(a, b):\n    return a + b\n```", "assert add(1, 2) == 3", "assert", "passed"),
    ("```python\ndef add(a, b):\n    return a - b\n```", "assert add(1, 2) == 3", "assert", "failed"),
    ("Sorry, I cannot write code.", "assert add(1, 2) == 3", "assert", "unverifiable"),
    ("```python\nprint(int(input()) * 2)\n```", json.dumps([{"input": "4\n", "output": "8"}]), "stdio", "passed"),
    ("```python\nwhile True:\n    pass\n```", "assert True", "assert", "timeout"),
]


def test_verify_code_stage_matches_direct_check():
    from synth.stages.verify import VerifyCode
    from verifiers.code import check_code

    t = pa.table({
        "response": [r for r, _, _, _ in CODE_ROWS],
        "meta": [json.dumps({"tests": tst, "mode": m}) for _, tst, m, _ in CODE_ROWS],
    })
    out = VerifyCode(timeout=2.0)(t)
    assert out.column("code_verdict").to_pylist() == [v for *_, v in CODE_ROWS]
    for row, (resp, tst, mode, _) in zip(out.to_pylist()[:2], CODE_ROWS[:2]):
        direct = check_code(extract_program(resp), tst, mode=mode, timeout=2.0)
        assert row["code_verdict"] == direct.verdict


def test_cli_verify_code_single(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("def sq(x):\n    return x * x\n")
    tests = tmp_path / "t.py"
    tests.write_text("assert sq(3) == 9\n")
    r = runner.invoke(app, ["verify", "code", "--program", str(prog), "--tests", str(tests)])
    assert r.exit_code == 0 and r.output.startswith("passed"), r.output
    tests.write_text("assert sq(3) == 10\n")
    r = runner.invoke(app, ["verify", "code", "--program", str(prog), "--tests", str(tests), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["verdict"] == "failed"
    r = runner.invoke(app, ["verify", "code", "--program", str(prog), "--tests", str(tests), "--mode", "stdio"])
    assert r.exit_code == 2 and "JSON list" in r.output


def test_cli_verify_code_over_shards(tmp_path):
    src = tmp_path / "in"
    rows = CODE_ROWS[:4]
    write_shard(pa.table({
        "response": [r for r, _, _, _ in rows],
        "tests": [tst for _, tst, _, _ in rows],
        "mode": [m for _, _, m, _ in rows],
    }), src, "part-000000.parquet")
    r = runner.invoke(app, ["verify", "code", str(src), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert read_shards(tmp_path / "out").column("code_verdict").to_pylist() == [v for *_, v in rows]
