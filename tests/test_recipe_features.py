"""What the recipe pipelines need, with the fake engine: several templates per chunk, teachers
in one run, majority vote, keeping only verified rows, self-written code tests, pass@k in the
manifest and the run summary. The shipped pipelines run with the real engine in
test_recipes.py."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.config import load_pipeline
from synth.errors import SynthError
from synth.io.shards import list_rejects, list_shards, read_shards, row_id
from synth.metrics import pass_at_k_table
from synth.io.manifest import pass_at_k_from_shards, tokenizer_identity
from synth.pipeline.prompts import build_prompts
from synth.pipeline.run import run_pipeline
from synth.stages.verify import VerifyCode, VerifyMath, majority_answer, split_self_tests
from tests.conftest import SAMPLE, lose_unit, write_pipeline

STYLES = ["rephrase_wikipedia", "rephrase_qa", "rephrase_distill", "rephrase_extract", "rephrase_list"]
FAKE = {"name": "fake", "backend": "fake", "batch_size": 8}


def _ids_on_disk(out) -> list[str]:
    files = list_shards(out) + list_rejects(out)
    return [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


# --------------------------------------------------------------------------- config


def _write(tmp_path, **sections):
    base = dict(name="t", seeds={"path": str(SAMPLE / "seeds")}, prompt={"template": "chat"})
    base.update(sections)
    return write_pipeline(tmp_path / "p.yaml", **base)


BAD = [  # (sections, fragments of the one-line error)
    (dict(prompt={"template": "chat", "templates": ["chat"]}), ["prompt.templates", "mutually exclusive"]),
    (dict(prompt={"templates": ["chat"], "user": "{text}"}), ["prompt.templates", "prompt.user"]),
    (dict(prompt={"templates": ["chat", "rephrase_wiki"]}), ["prompt.templates[1]", "rephrase_wikipedia"]),
    (dict(prompt={"templates": ["chat", "chat"]}), ["prompt.templates", "twice"]),
    (dict(prompt={"templates": []}), ["prompt.templates", "at least one"]),
    (dict(teachers=[{"name": "a", "modle": {}}]), ["teachers[0].modle", "did you mean 'model'"]),
    (dict(teachers=[{"model": {}}]), ["teachers[0].name"]),
    (dict(teachers=[{"name": "a"}, {"name": "a"}]), ["teachers[1].name", "twice"]),
    (dict(teachers=[{"name": "a", "seeds": {"path": "nowhere"}}]), ["teachers[0].seeds.path", "nowhere"]),
    (dict(teachers=[{"name": "a", "sampling": {"n": 0}}]), ["teachers[0].sampling.n", ">= 1"]),
    (dict(teachers=[{"name": "a", "sampling": {"temprature": 1}}]), ["teachers[0].sampling.temprature"]),
    (dict(teachers=[{"name": "a", "prompt": {"template": "nope"}}]), ["teachers[0].prompt.template"]),
    (dict(teachers=[]), ["teachers", "non-empty list"]),
    # stage parameters are checked when the file loads (the same check as building the stage)
    (dict(stages=[{"verify_math": {"drop": ["wrong"]}}]),
     ["stages[0].verify_math.drop: unknown verdict 'wrong'"]),
]


@pytest.mark.parametrize("sections,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_new_keys_are_named(tmp_path, sections, fragments):
    p = _write(tmp_path, **sections)
    with pytest.raises(SynthError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_teacher_overrides_merge(tmp_path):
    p = _write(tmp_path, model=FAKE, sampling={"max_tokens": 7, "logprobs": 2},
               teachers=[{"name": "a"},
                         {"name": "b", "sampling": {"n": 3},
                          "seeds": {"path": str(SAMPLE / "math" / "problems.jsonl"), "text_column": "problem"},
                          "prompt": {"template": "math_solution"}}])
    cfg = load_pipeline(p)
    a, b = cfg.teachers
    assert (a.sampling.max_tokens, a.prompt.template, a.seeds.path) == (7, "chat", str(SAMPLE / "seeds"))
    assert (b.sampling.n, b.sampling.max_tokens, b.sampling.logprobs) == (3, 7, 2)  # merged key by key
    assert b.prompt.template == "math_solution" and b.seeds.text_column == "problem"
    assert b.model == cfg.model
    units = cfg.units()
    assert [name for name, _ in units] == ["a", "b"] and units[1][1].teachers == ()
    assert cfg.generation_hash() != load_pipeline(_write(tmp_path, model=FAKE, sampling={"max_tokens": 7, "logprobs": 2})).generation_hash()


def test_new_keys_left_unset_keep_the_hash(tmp_path):
    """Runs written before `templates` and `teachers` existed resume under the same hash."""
    cfg = load_pipeline(_write(tmp_path))
    d = cfg.to_dict()
    for gone in ("teachers",):
        d.pop(gone)
    d["prompt"].pop("templates")
    d.pop("output")
    d["model"].pop("concurrency")
    d["model"].pop("batch_size")
    d["model"].pop("in_flight")  # like batch_size and concurrency: how, not what, is generated
    blob = json.dumps(d, sort_keys=True, default=str)
    assert cfg.generation_hash() == hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- templates


def test_templates_give_one_prompt_per_chunk_and_template(tmp_path):
    cfg = load_pipeline(_write(tmp_path, seeds={"path": str(SAMPLE / "seeds"), "chunk_tokens": 0},
                               prompt={"templates": STYLES}, model=FAKE))
    p = build_prompts(cfg, limit=12)
    assert p.column("task").to_pylist() == (STYLES * 3)[:12]  # chunk after chunk, every style
    seeds = p.column("seed_id").to_pylist()
    assert seeds[:5] == [seeds[0]] * 5 and seeds[5] != seeds[0]
    pids = p.column("prompt_id").to_pylist()
    assert len(set(pids)) == 12
    assert pids == build_prompts(cfg, limit=12).column("prompt_id").to_pylist()  # deterministic
    # the style text differs per template, the seed text does not
    msgs = [json.loads(m)[-1]["content"] for m in p.column("messages").to_pylist()[:5]]
    assert len(set(msgs)) == 5 and all(p.column("seed_text")[0].as_py() in m for m in msgs)


def test_single_template_ids_are_unchanged(tmp_path):
    cfg = load_pipeline(_write(tmp_path, prompt={"template": "rephrase_qa"}))
    p = build_prompts(cfg, limit=3)
    assert p.column("task").to_pylist() == ["rephrase_qa"] * 3  # the template's name
    for pid, s, c in zip(p.column("prompt_id").to_pylist(), p.column("seed_id").to_pylist(),
                         p.column("chunk_index").to_pylist()):
        assert pid == row_id("t", s, c)


def test_templates_run_and_resume(tmp_path, ray_session):
    cfg = load_pipeline(_write(tmp_path, name="multi", prompt={"templates": STYLES},
                               model={**FAKE, "batch_size": 4}, sampling={"n": 2}))
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=10)
    t = read_shards(out)
    assert r.rows == t.num_rows == 20
    assert sorted(set(t.column("task").to_pylist())) == sorted(STYLES)
    ids = t.column("id").to_pylist()
    assert len(set(ids)) == 20
    assert t.column("teacher").null_count == 20
    # a lost shard is generated again, and only it
    lost = pq.read_table(list_shards(out)[-1], columns=["id"]).column("id").to_pylist()
    lose_unit(list_shards(out)[-1])
    again = run_pipeline(cfg, out=out, limit=10)
    assert again.generated_rows == len(lost)
    assert sorted(read_shards(out).column("id").to_pylist()) == sorted(ids)
    assert run_pipeline(cfg, out=out, limit=10).generated_rows == 0


# --------------------------------------------------------------------------- teachers


def _teachers_pipeline(tmp_path, name="dist"):
    return load_pipeline(_write(
        tmp_path, name=name, model={**FAKE, "batch_size": 3},
        sampling={"max_tokens": 8, "logprobs": 3}, prompt={"template": "rephrase_distill"},
        teachers=[{"name": "rephrase"},
                  {"name": "rephrase2", "sampling": {"seed": 1}},  # same prompts, another teacher
                  {"name": "math", "seeds": {"path": str(SAMPLE / "math" / "problems.jsonl"),
                                             "text_column": "problem"},
                   "prompt": {"template": "math_solution"}}]))


def test_teachers_tag_rows_in_one_output(tmp_path, ray_session):
    cfg = _teachers_pipeline(tmp_path)
    out = tmp_path / "out"
    r = run_pipeline(cfg, out=out, limit=4)
    t = read_shards(out)
    assert r.rows == t.num_rows == 12 and r.prompts == 12
    rows = t.to_pylist()
    by = {}
    for x in rows:
        by.setdefault(x["teacher"], []).append(x)
    assert sorted(by) == ["math", "rephrase", "rephrase2"] and all(len(v) == 4 for v in by.values())
    assert {x["task"] for x in by["math"]} == {"math_solution"}
    assert all(len(x["top_logprob_ids"][0]) == 3 for x in rows)
    # the same prompts under two teachers: same seeds and chunks, different ids
    pairs = lambda name: {(x["seed_id"], x["chunk_index"]) for x in by[name]}  # noqa: E731
    assert pairs("rephrase") == pairs("rephrase2")
    assert not {x["id"] for x in by["rephrase"]} & {x["id"] for x in by["rephrase2"]}
    assert len(set(t.column("id").to_pylist())) == 12
    m = json.loads((out / "manifest.json").read_text())
    assert list(m["teachers"]) == ["rephrase", "rephrase2", "math"]
    assert m["teachers"]["math"]["rows"] == 4 and m["teachers"]["math"]["prompts"] == 4
    assert m["tokenizer"] == {"rephrase": None, "rephrase2": None, "math": None}  # the fake has none
    assert m["status"] == "complete" and m["counts"]["missing_rows"] == 0
    again = run_pipeline(cfg, out=out, limit=4)
    assert again.generated_rows == 0 and again.resumed_prompts == 12


def test_tokenizer_identity(model_path):
    ident = tokenizer_identity(model_path)
    data = open(f"{model_path}/tokenizer.json", "rb").read()
    assert ident["sha256"] == hashlib.sha256(data).hexdigest()
    assert ident["vocab_size"] == 49152 and ident["path"] == model_path
    assert tokenizer_identity("fake") is None and tokenizer_identity(None) is None


# --------------------------------------------------------------------------- majority vote


@pytest.mark.parametrize("answers,expected", [
    (["\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{3}"], "1/2"),  # equivalent answers are one vote
    (["\\boxed{4}", "\\boxed{4}", "\\boxed{5}", "\\boxed{5}"], None),  # a tie has no winner
    (["\\boxed{4}", "\\boxed{4}", "no idea", "I give up", "\\boxed{7}"], None),  # 2 of 5 is no majority
    (["\\boxed{4}", "\\boxed{4}", "\\boxed{4}", "no idea", "\\boxed{7}"], "4"),
    (["\\boxed{4}"], None),  # one sample is not a vote
    (["no idea", "none"], None),
    (["The answer is \\boxed{x^2}", "\\boxed{x**2}"], "x^2"),
])
def test_majority_answer(answers, expected):
    assert majority_answer(answers) == expected


def _math_batch(rows):
    return pa.Table.from_pylist([
        {"prompt_id": p, "sample_index": i, "response": r, "meta": json.dumps({"answer": a} if a else {})}
        for p, i, r, a in rows])


def test_verify_math_majority_where_no_reference():
    t = _math_batch([
        ("p", 0, "\\boxed{6}", None), ("p", 1, "so \\boxed{6}", None), ("p", 2, "\\boxed{7}", None),
        ("q", 0, "\\boxed{1}", "2"), ("q", 1, "\\boxed{2}", "2"),
        ("r", 0, "\\boxed{1}", None), ("r", 1, "\\boxed{2}", None),
    ])
    out = VerifyMath(majority=True, drop=["incorrect"])(t).to_pylist()
    assert [x["math_verdict"] for x in out] == ["correct", "correct", "incorrect", "incorrect", "correct",
                                                "unverifiable", "unverifiable"]
    assert [x["math_label"] for x in out] == ["majority"] * 3 + ["reference"] * 2 + [None] * 2
    assert "majority answer 6" in out[2]["math_reason"] and "no majority" in out[5]["math_reason"]
    assert [x["reject_reason"] for x in out] == [None, None, "math.incorrect", "math.incorrect", None, None, None]
    # without majority: no reference stays unverifiable
    plain = VerifyMath()(t).to_pylist()
    assert plain[0]["math_verdict"] == "unverifiable" and "reject_reason" not in plain[0]


def test_majority_refuses_a_split_prompt():
    t = _math_batch([("p", 2, "\\boxed{6}", None), ("p", 3, "\\boxed{6}", None)])
    with pytest.raises(SynthError, match="split across batches"):
        VerifyMath(majority=True)(t)


def test_drop_keeps_earlier_reasons():
    t = _math_batch([("p", 0, "\\boxed{1}", "2"), ("p", 1, "\\boxed{1}", "2")])
    t = t.append_column("reject_reason", pa.array(["decontam", None], pa.string()))
    out = VerifyMath(drop=["incorrect"])(t)
    assert out.column("reject_reason").to_pylist() == ["decontam", "math.incorrect"]
    assert out.column("math_verdict").to_pylist() == ["incorrect", "incorrect"]  # still judged


def _problems(tmp_path, rows) -> str:
    f = tmp_path / "problems.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(f)


def test_math_pipeline_keeps_correct_and_reports_pass_at_k(tmp_path, ray_session):
    seeds = _problems(tmp_path, [
        {"id": "a", "problem": "What is 20 + 2?", "answer": "22"},
        {"id": "b", "problem": "What is 20 + 3?", "answer": "23"},
        {"id": "c", "problem": "What is 11 * 2?"},  # no reference: the samples vote
    ])
    pipe = write_pipeline(
        tmp_path / "m.yaml", name="mathkeep",
        seeds={"path": seeds, "text_column": "problem", "chunk_tokens": 0},
        prompt={"template": "math_solution"},
        model={**FAKE, "engine_kwargs": {"constant": "Adding gives \\boxed{22}."}},
        sampling={"n": 4},
        stages=[{"verify_math": {"majority": True, "drop": ["incorrect", "unverifiable"]}}],
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(pipe), "--out", str(out)])
    assert r.exit_code == 0, r.output
    kept, rejected = read_shards(out).to_pylist(), pq.read_table(list_rejects(out)[0]).to_pylist()
    assert len(kept) == 8 and {x["seed_id"] for x in kept} == {"a", "c"}
    assert all(x["math_verdict"] == "correct" for x in kept)
    assert {x["math_label"] for x in kept if x["seed_id"] == "c"} == {"majority"}
    assert len(rejected) == 4 and {x["reject_reason"] for x in rejected} == {"math.incorrect"}
    assert all(x["math_verdict"] == "incorrect" and x["math_predicted"] == "22" for x in rejected)
    m = json.loads((out / "manifest.json").read_text())
    every = kept + rejected  # pass@k counts every sample, kept and rejected
    direct = pass_at_k_table([x["prompt_id"] for x in every],
                             [x["math_verdict"] == "correct" for x in every], (1, 2, 4))
    pk = m["pass_at_k"]["math_solution"]
    assert {k: pk[k] for k in direct} == pytest.approx(direct)
    assert pk["pass@1"] == pytest.approx(2 / 3) and pk["samples"] == 12 and pk["prompts"] == 3
    assert pk["majority_labelled"] == 4
    assert m["counts"]["reject_reasons"] == {"math.incorrect": 4}
    assert m["counts"]["rejected_verdicts"] == {"math_verdict": {"incorrect": 4}}
    assert "math_solution: pass@1 0.667, pass@2 0.667, pass@4 0.667" in r.output
    assert "rejected: 4 rows" in r.output and "math.incorrect 4" in r.output


def test_pass_at_k_per_teacher_and_task(tmp_path):
    from synth.io.shards import write_shard

    def table(teacher, task, ok):
        return pa.table({"prompt_id": ["p", "p", "q", "q"], "task": [task] * 4,
                         "teacher": [teacher] * 4, "code_verdict": ok})

    write_shard(table(None, "code_solution", ["passed", "failed", "failed", "failed"]), tmp_path, "part-1.parquet")
    write_shard(table("big", "code_solution", ["passed", "passed", "passed", "error"]), tmp_path, "part-2.parquet")
    write_shard(pa.table({"prompt_id": ["x"], "task": ["chat"]}), tmp_path, "part-3.parquet")  # no verdicts
    res = pass_at_k_from_shards(list_shards(tmp_path))
    assert set(res) == {"code_solution", "big/code_solution"}
    assert res["code_solution"]["pass@1"] == 0.25 and res["code_solution"]["pass@2"] == 0.5
    assert res["big/code_solution"]["pass@2"] == 1.0 and res["big/code_solution"]["correct"] == 3


# --------------------------------------------------------------------------- code with its own tests

SOLVED = "```python\ndef add(a, b):\n    return a + b\n```\n\n```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"


@pytest.mark.parametrize("response,program,tests", [
    (SOLVED, "def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"),
    ("```python\ndef f():\n    return 1\n\nassert f() == 1\nassert (\n    f() == 1\n)\n```",
     "def f():\n    return 1\n", "assert f() == 1\nassert (\n    f() == 1\n)\n"),
    ("```python\ndef f(:\nassert f() == 1\nassert f(\n```", "def f(:\n", "assert f() == 1\n"),  # does not parse
    ("```python\ndef f():\n    assert True\n    return 1\n```", "def f():\n    assert True\n    return 1\n", None),
    ("Here:\n```python\ndef f():\n    return 1\nassert f() == 1\nassert f(", "def f():\n    return 1\n",
     "assert f() == 1\n"),  # cut inside its only block: the cut statement is dropped
    ("No code here.", None, None),
])
def test_split_self_tests(response, program, tests):
    assert split_self_tests(response) == (program, tests)


def test_verify_code_self_tests():
    wrong = SOLVED.replace("a + b", "a - b")
    t = pa.table({
        "response": [SOLVED, wrong, SOLVED, "```python\ndef add(a, b):\n    return a + b\n```"],
        "meta": [json.dumps({}), json.dumps({}),
                 json.dumps({"tests": "assert add(2, 2) == 5", "mode": "assert"}), json.dumps({})],
    })
    out = VerifyCode(self_tests=True, timeout=5, drop=["failed", "unverifiable"])(t).to_pylist()
    assert [x["code_verdict"] for x in out] == ["passed", "failed", "failed", "unverifiable"]
    assert [x["code_tests_source"] for x in out] == ["response", "response", "problem", None]
    assert "assert" not in out[2]["code_program"]  # the reply's own asserts are not run with the problem's
    assert [x["reject_reason"] for x in out] == [None, "code.failed", "code.failed", "code.unverifiable"]
