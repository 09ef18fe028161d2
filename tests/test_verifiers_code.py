"""verifiers.code: verdicts, stdio comparison, the sample problems, batches, timeouts from
threads, processes and Ray actors, the fork server's slots and cgroups, and the isolation
levels (cgroup v2 discovery, refusing to run unisolated). The attacks are in
tests/test_sandbox_attacks.py."""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from verifiers.sandbox import guard as _sandbox_guard
from verifiers.sandbox import isolation as _sandbox_isolation
from verifiers.code import (CodeResult, _server, _shutdown_server, check_code,
                            check_code_batch)

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [json.loads(line) for line in
            (ROOT / "sample_data" / "code" / "problems.jsonl").read_text().splitlines()
            if line.strip()]
TRIVIAL = ("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
QUICK = dict(timeout=1.5, memory_mb=256)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the code sandbox needs root")


# --------------------------------------------------------------------------- helpers


def _slot_cgroups(server_pid: int) -> list[str]:
    return [p for parent in set(_sandbox_isolation.cgroup_parents().values())
            for p in glob.glob(f"{parent}/synth-sbx-{server_pid}-*")]


def _run(program: str, tests: str = "assert True\n", **kw) -> CodeResult:
    return check_code(program, tests, mode="assert", **{**QUICK, **kw})


# --------------------------------------------------------------------------- verdicts

VERDICTS = [
    # (name, program, tests, mode, expected verdict)
    ("passes", *TRIVIAL, "assert", "passed"),
    ("wrong answer", "def add(a, b):\n    return a - b\n", TRIVIAL[1], "assert", "failed"),
    ("exception in a test", "def add(a, b):\n    raise ValueError\n", TRIVIAL[1], "assert",
     "failed"),
    ("syntax error", "def add(a, b)\n    return a + b\n", TRIVIAL[1], "assert", "error"),
    ("raises at top level", "raise RuntimeError('boom')\n", TRIVIAL[1], "assert", "error"),
    ("missing function", "x = 1\n", TRIVIAL[1], "assert", "failed"),
    ("MemoryError", "raise MemoryError\n", TRIVIAL[1], "assert", "memory"),
    ("NUL byte in the program", "x = 1\0\n", TRIVIAL[1], "assert", "error"),
    ("stdlib imports work", "import unicodedata, decimal, json\n" + TRIVIAL[0], TRIVIAL[1],
     "assert", "passed"),
    ("a list of assert lines", TRIVIAL[0], ["assert add(1, 1) == 2", "assert add(0, 0) == 0"],
     "assert", "passed"),
    ("empty tests", TRIVIAL[0], "  \n", "assert", "unverifiable"),
    ("tests do not parse", TRIVIAL[0], "assert add(1, 2) ==\n", "assert", "unverifiable"),
    ("unknown mode", *TRIVIAL, "pytest", "unverifiable"),
    ("stdio passes", "print(int(input()) * 2)\n", [{"input": "4\n", "output": "8\n"}], "stdio",
     "passed"),
    ("stdio wrong output", "print(int(input()) * 3)\n", [{"input": "4\n", "output": "8"}], "stdio",
     "failed"),
    ("stdio crash", "print(1 / 0)\n", [{"input": "", "output": "0"}], "stdio", "error"),
    ("stdio sys.exit(0) is a normal end", "print(8)\nimport sys\nsys.exit(0)\n",
     [{"input": "", "output": "8"}], "stdio", "passed"),
    ("stdio non-zero exit", "print(8)\nimport sys\nsys.exit(3)\n", [{"input": "", "output": "8"}],
     "stdio", "error"),
    ("stdio tests not JSON", "print(1)\n", "[{input: 1}]", "stdio", "unverifiable"),
    ("stdio no cases", "print(1)\n", [], "stdio", "unverifiable"),
]


@pytest.mark.parametrize("name,program,tests,mode,expected", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdicts(name, program, tests, mode, expected):
    r = check_code(program, tests, mode=mode, **QUICK)
    assert r.verdict == expected, r


def test_every_test_statement_is_reported_and_a_failure_does_not_stop_the_rest():
    tests = "assert add(1, 1) == 2\nassert add(1, 1) == 3\nassert add(2, 2) == 4\n"
    r = check_code(TRIVIAL[0], tests, mode="assert")
    assert r.verdict == "failed"
    assert [t.passed for t in r.tests] == [True, False, True]
    assert r.tests[1].name.startswith("line 2: assert add(1, 1) == 3")
    assert "AssertionError" in r.tests[1].error and "line 2" in r.reason


def test_stdio_takes_a_json_string_and_ignores_trailing_whitespace():
    cases = json.dumps([{"input": "1 2\n", "output": "3\n"},
                        {"input": "5 5\n", "output": "10  \n\n"}])
    r = check_code("a, b = map(int, input().split())\nprint(a + b, end='   \\n\\n\\n')\n", cases,
                   mode="stdio")
    assert r.verdict == "passed", r
    assert [t.name for t in r.tests] == ["case 0", "case 1"]


def test_stdio_stops_at_the_first_case_that_does_not_pass():
    cases = [{"input": "1\n", "output": "1"}, {"input": "2\n", "output": "3"},
             {"input": "3\n", "output": "3"}]
    r = check_code("print(input())\n", cases, mode="stdio")
    assert r.verdict == "failed" and r.reason.startswith("case 1 of 3")
    assert [t.passed for t in r.tests] == [True, False]


def test_large_stdin_is_fed_while_the_program_reads():
    data = "x" * (3 << 20)  # far more than a pipe buffer
    r = check_code("import sys\nprint(len(sys.stdin.read()))\n",
                   [{"input": data, "output": str(len(data))}], mode="stdio")
    assert r.verdict == "passed", r


def test_import_is_light():
    code = ("import sys, verifiers.code\n"
            "print([m for m in ('torch', 'vllm', 'ray', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sample_reference_solutions_pass():
    items = [dict(program=p["solution"], tests=p["tests"], mode=p["mode"]) for p in PROBLEMS]
    results = check_code_batch(items)
    bad = {p["id"]: (r.verdict, r.reason) for p, r in zip(PROBLEMS, results)
           if r.verdict != "passed"}
    assert not bad
    assert len(results) == len(PROBLEMS) >= 20


def _broken(problem: dict) -> str:
    if problem["mode"] == "stdio":
        return "import sys\nsys.stdin.read()\nprint('wrong')\n"
    return f"def {problem['entry_point']}(*args, **kwargs):\n    return None\n"


def test_sample_broken_variants_fail():
    items = [dict(program=_broken(p), tests=p["tests"], mode=p["mode"]) for p in PROBLEMS]
    results = check_code_batch(items)
    verdicts = {p["id"]: r.verdict for p, r in zip(PROBLEMS, results)}
    assert verdicts == {p["id"]: "failed" for p in PROBLEMS}


def test_batch_keeps_order_and_runs_in_parallel():
    items = [dict(program=f"import time\ntime.sleep(1)\nX = {i}\n", tests=f"assert X == {i}\n",
                  mode="assert") for i in range(4)]
    t = time.monotonic()
    results = check_code_batch(items, workers=4)
    assert [r.verdict for r in results] == ["passed"] * 4
    assert time.monotonic() - t < 3.5  # four 1 s sleeps side by side, not one after another


def test_batch_accepts_tuples_and_reports_bad_items():
    results = check_code_batch([(*TRIVIAL, "assert"), {"program": "x", "tests": "y"}, 42])
    assert [r.verdict for r in results] == ["passed", "unverifiable", "unverifiable"]


def test_cgroups_of_a_killed_server_are_swept_by_the_next():
    pid = _server().pid
    assert check_code(*TRIVIAL, mode="assert").verdict == "passed" and _slot_cgroups(pid)
    os.kill(pid, 9)
    _shutdown_server()
    assert check_code(*TRIVIAL, mode="assert").verdict == "passed"
    assert _slot_cgroups(pid) == []


def test_server_reuses_slots_and_removes_them_on_shutdown():
    check_code_batch([(*TRIVIAL, "assert")] * 16, workers=2)
    pid = _server().pid
    slots = _slot_cgroups(pid)
    # one slot per run in flight (a few, with two workers), not one per run
    assert 0 < len(slots) <= 4 * len(_sandbox_isolation.cgroup_parents())
    _shutdown_server()
    assert _slot_cgroups(pid) == [] and not os.path.exists(f"/proc/{pid}")
    assert check_code(*TRIVIAL, mode="assert").verdict == "passed"  # a new server starts


# --------------------------------------------------------------------------- hard timeouts


def test_timeout_from_threads():
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: _run("while True: pass\n", timeout=1), range(3)))
    assert [r.verdict for r in results] == ["timeout"] * 3
    assert all(r.elapsed_s < 3 for r in results)


def _timeout_verdict_in_child() -> str:
    return check_code("while True:\n    pass\n", "assert True\n", mode="assert", timeout=1).verdict


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_timeout_from_another_process(start):
    _server()  # with "fork", the child must not reuse this process's server
    with multiprocessing.get_context(start).Pool(1) as pool:
        assert pool.apply(_timeout_verdict_in_child) == "timeout"


def test_timeout_from_a_ray_actor(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Checker:
        def verdict(self):
            from verifiers.code import check_code

            return check_code("while True:\n    pass\n", "assert True\n", mode="assert",
                              timeout=1).verdict

        def close(self):
            from verifiers.code import _shutdown_server

            _shutdown_server()  # a killed actor's server would leave its cgroups to the next sweep

    checker = Checker.remote()
    assert ray.get(checker.verdict.remote(), timeout=60) == "timeout"
    ray.get(checker.close.remote(), timeout=60)
    ray.kill(checker)


# --------------------------------------------------------------------------- the comparison guard
# (more in test_sandbox_hacks.py)


@pytest.mark.parametrize("value,other,ok", [
    (3, 3, True), ([1, (2, "a")], [1, (2, "a")], True), ({"a": {1, 2}}, {"a": {1, 2}}, True),
    (__import__("collections").Counter("aab"), {"a": 2, "b": 1}, True),
    (__import__("fractions").Fraction(1, 2), 0.5, True),
])
def test_guard_lets_library_types_compare(value, other, ok):
    assert _sandbox_guard.eq(value, other) is ok


def test_guard_treats_none_as_identity_for_program_types():
    node = type("Node", (), {"__eq__": lambda s, o: True})()
    assert _sandbox_guard.eq(node, None) is False
    assert _sandbox_guard.ne(node, None) is True
    with pytest.raises(AssertionError, match="refused"):
        _sandbox_guard.eq([node], [1])


def test_seccomp_filter_builds_for_known_architectures():
    for arch in ("x86_64", "aarch64"):
        code = __import__("verifiers.sandbox.seccomp", fromlist=["x"]).build_filter(arch)
        assert code and len(code) % 8 == 0 and len(code) // 8 < 4096


# --------------------------------------------------------------------------- isolation levels


def _fake_cgroup2(root: Path, layout: dict[str, dict[str, str]]) -> str:
    """A cgroup v2 tree under `root` (directories with the files given) and its mountinfo."""
    for rel, files in layout.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for name, text in {"cgroup.procs": "", "cgroup.subtree_control": "", **files}.items():
            (d / name).write_text(text)
    return f"30 23 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"


SCOPE = "user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope"


@pytest.mark.parametrize("limits,enabled_at,expected", [
    # a systemd user slice: our scope's parent gives its children memory and pids
    ({}, "user.slice/user-1000.slice/user@1000.service/app.slice",
     "user.slice/user-1000.slice/user@1000.service/app.slice"),
    # the controllers are only enabled higher up, past nothing that limits us: found there
    ({}, "user.slice", "user.slice"),
    # our own scope has a memory limit: a cgroup above it would escape it, so none is used
    ({SCOPE: {"memory.max": "1073741824"}}, "user.slice", None),
    # a pids limit on the way up, the same
    ({"user.slice/user-1000.slice/user@1000.service": {"pids.max": "100"}}, "user.slice", None),
    # nowhere are the controllers enabled for children: rlimits only
    ({}, None, None),
])
def test_cgroup_v2_place_never_escapes_a_limit(tmp_path, limits, enabled_at, expected):
    parts = SCOPE.split("/")
    layout = {"/".join(parts[:i]): {"memory.max": "max", "pids.max": "max"}
              for i in range(1, len(parts) + 1)}
    for rel, files in limits.items():
        layout[rel].update(files)
    if enabled_at:
        layout[enabled_at]["cgroup.subtree_control"] = "cpu memory pids\n"
    mountinfo = _fake_cgroup2(tmp_path / "cg", layout)
    found = _sandbox_isolation.cgroup_parents(mountinfo, f"0::/{SCOPE}\n")
    assert found == ({"v2": str(tmp_path / "cg" / expected)} if expected else {})


def test_cgroup_v1_is_used_when_writable(tmp_path):
    (tmp_path / "memory" / "a").mkdir(parents=True)
    (tmp_path / "pids").mkdir()
    mountinfo = (f"35 31 0:32 / {tmp_path}/memory rw - cgroup cgroup rw,memory\n"
                 f"39 31 0:36 / {tmp_path}/pids rw - cgroup cgroup rw,pids\n")
    found = _sandbox_isolation.cgroup_parents(mountinfo, "4:memory:/a\n8:pids:/\n0::/\n")
    assert found == {"memory": str(tmp_path / "memory" / "a"), "pids": str(tmp_path / "pids") + "/"}


_NO_USERNS = """
import ctypes, json, os, sys
from verifiers.sandbox import seccomp
seccomp.install(ctypes.CDLL(None, use_errno=True), seccomp.build_filter())  # no new namespaces
from verifiers.code import IsolationUnavailable, check_code
try:
    r = check_code("def f():\\n    return 1\\n", "assert f() == 1\\n", mode="assert")
    print(json.dumps({"verdict": r.verdict, "level": r.isolation.get("level")}))
except IsolationUnavailable as e:
    print(json.dumps({"error": str(e)}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to uid 65534 itself")
def test_no_root_and_no_user_namespaces_is_one_line_unless_opted_in():
    """An ordinary user whose kernel refuses user namespaces (here: a seccomp filter that
    refuses new namespaces, inherited by the fork server): the check raises one clear line;
    with SYNTH_SANDBOX_UNISOLATED=1 it runs, and the result says `level: none`."""
    from tests.rootless import NOBODY, become, env_for, python_for, stage

    python = python_for(NOBODY)
    assert python, "no Python interpreter that uid 65534 can run"
    work = stage()
    try:
        outs = []
        for extra in ({}, {"SYNTH_SANDBOX_UNISOLATED": "1"}):
            r = subprocess.run([python, "-c", _NO_USERNS], cwd=work, env={**env_for(work), **extra},
                               preexec_fn=become(NOBODY), capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr
            outs.append(json.loads(r.stdout))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    refused, opted_in = outs
    assert "user namespaces are refused" in refused["error"] and "\n" not in refused["error"]
    assert "SYNTH_SANDBOX_UNISOLATED=1" in refused["error"]
    assert opted_in == {"verdict": "passed", "level": "none"}
