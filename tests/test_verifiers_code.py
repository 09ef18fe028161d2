"""verifiers.code: verdicts, stdio comparison, the sample problems, and the sandbox under attack.

Every adversarial test checks one property, then `_assert_unharmed`: a trivial program still
passes, the fork server is the same process and alive, and none of its sandbox processes,
unreaped children, occupied cgroups or host work dirs is left behind.
"""

from __future__ import annotations

import ast
import glob
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from verifiers.sandbox import guard as _sandbox_guard
from verifiers.sandbox import isolation as _sandbox_isolation
from verifiers.code import (CodeResult, Limits, _server, _shutdown_server, check_code,
                            check_code_batch)

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [json.loads(line) for line in
            (ROOT / "sample_data" / "code" / "problems.jsonl").read_text().splitlines()
            if line.strip()]
TRIVIAL = ("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
QUICK = dict(timeout=1.5, memory_mb=256)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the code sandbox needs root")


# --------------------------------------------------------------------------- helpers


def _sandbox_pids(server_pid: int) -> list[int]:
    """Processes under a sandbox uid (UID_BASE + host pid) that belong to this server's runs
    (other test sessions on the machine may be running sandboxes of their own)."""
    found = []
    for status in glob.glob("/proc/[0-9]*/status"):
        pid = status.split("/")[2]
        try:
            uid = int(next(line for line in Path(status).read_text().splitlines()
                           if line.startswith("Uid:")).split()[1])
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except (OSError, StopIteration):
            continue
        ours = f"synth-sbx-{server_pid}-" in cgroups or not _sandbox_isolation.cgroup_parents()
        if uid >= _sandbox_isolation.UID_BASE and ours:
            found.append(int(pid))
    return found


def _children(ppid: int) -> list[int]:
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == ppid:
            kids.append(int(stat.split("/")[2]))
    return kids


def _slot_cgroups(server_pid: int | None = None) -> list[str]:
    name = f"synth-sbx-{server_pid}-*" if server_pid else "synth-sbx-*"
    return [p for parent in _sandbox_isolation.cgroup_parents().values()
            for p in glob.glob(f"{parent}/{name}")]


def _leftovers(server_pid: int) -> dict:
    occupied = [p for p in _slot_cgroups(server_pid) if Path(p, "cgroup.procs").read_text().strip()]
    return {"sandbox processes": _sandbox_pids(server_pid),
            "server children": _children(server_pid), "occupied cgroups": occupied,
            "work dirs": glob.glob(f"/tmp/synth-sbx-{server_pid}-*")}


def _assert_unharmed(server_pid: int) -> None:
    assert os.path.isdir(f"/proc/{server_pid}"), "the fork server died"
    r = check_code(*TRIVIAL, mode="assert")
    assert r.verdict == "passed", r
    assert _server().pid == server_pid, "the fork server was replaced"
    deadline = time.monotonic() + 5
    while (left := _leftovers(server_pid)) != {k: [] for k in left}:
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.05)


@pytest.fixture
def server_pid() -> int:
    """The fork server's pid, started if needed; the test asserts it is unharmed at the end."""
    return _server().pid


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


# --------------------------------------------------------------------------- adversarial


def test_infinite_loop_times_out(server_pid):
    r = _run("while True:\n    pass\n", timeout=1)
    assert r.verdict == "timeout" and 0.9 < r.elapsed_s < 3, r
    _assert_unharmed(server_pid)


def test_sleeping_program_times_out_on_wall_clock(server_pid):
    r = _run("import time\ntime.sleep(3600)\n", timeout=1)
    assert r.verdict == "timeout" and r.elapsed_s < 3, r
    _assert_unharmed(server_pid)


def test_fork_bomb_is_contained(server_pid):
    bomb = ("import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass\n")
    r = _run(bomb, timeout=2)
    assert r.verdict != "passed", r
    assert r.isolation["pid_ns"] and "pids" in r.isolation["cgroups"]
    _assert_unharmed(server_pid)


def test_memory_bomb_is_a_memory_verdict(server_pid):
    r = _run("chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n", memory_mb=256)
    assert r.verdict == "memory", r
    _assert_unharmed(server_pid)


def test_memory_bomb_across_processes_hits_the_cgroup(server_pid):
    prog = ("import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n"
            "        b = b'x' * (200 << 20)\n        time.sleep(1)\n        os._exit(0)\n"
            "for _ in range(4):\n    os.wait()\n")
    r = _run(prog, memory_mb=300, timeout=10)  # each child fits its own address-space limit
    assert r.verdict == "memory" and r.elapsed_s < 5, r
    _assert_unharmed(server_pid)


def test_output_flood_is_cut_while_streaming(server_pid):
    r = _run("while True:\n    print('x' * 1000)\n", timeout=10)
    assert r.verdict == "error" and "output limit" in r.reason, r
    assert r.elapsed_s < 5 and len(r.stdout) <= 4000
    _assert_unharmed(server_pid)


def test_deep_recursion_is_not_a_pass(server_pid):
    prog = "import sys\nsys.setrecursionlimit(10 ** 9)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n"
    r = _run(prog, memory_mb=256, timeout=3)
    assert r.verdict in ("memory", "error", "timeout"), r
    _assert_unharmed(server_pid)


def test_parent_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_SECRET", "hunter2-do-not-leak")
    _shutdown_server()  # the next server is started with the secret in our environment
    server_pid = _server().pid
    prog = f"""
import os
print(dict(os.environ))
for pid in ("self", "1", "{os.getpid()}", "{server_pid}"):
    try:
        print(open(f"/proc/{{pid}}/environ", "rb").read())
    except OSError as e:
        print(pid, e)
"""
    r = _run(prog)
    assert r.verdict == "passed", r
    assert "hunter2" not in r.stdout and "SYNTH_TEST_SECRET" not in r.stdout
    assert "PATH" in r.stdout  # the program did print its (scrubbed) environment
    _assert_unharmed(server_pid)


def test_proc_shows_only_the_run(server_pid):
    prog = ("import os\n"
            "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.getpid())\n")
    r = _run(prog)
    assert r.stdout.split("]")[0] + "]" == "[1]" and r.stdout.split()[-1] == "1", r
    _assert_unharmed(server_pid)


def test_cannot_read_outside_the_work_dir(server_pid):
    prog = """
for path in ("/etc/shadow", "/root/.bashrc", "/root/.ray/auth_token", "/proc/1/root/etc/shadow"):
    try:
        open(path, "rb").read()
        print("READ", path)
    except OSError:
        print("denied", path)
"""
    r = _run(prog)
    assert r.verdict == "passed" and "READ" not in r.stdout and r.stdout.count("denied") == 4, r
    _assert_unharmed(server_pid)


def test_cannot_write_outside_the_work_dir(server_pid):
    name = f"synth-sandbox-escape-{os.getpid()}"
    targets = [f"{ROOT}/{name}", f"/etc/{name}", f"/root/{name}", f"/tmp/{name}",
               f"/var/tmp/{name}", f"/dev/shm/{name}"]
    prog = f"""
import os
for path in {targets!r}:
    try:
        with open(path, "w") as f:
            f.write("pwned")
    except OSError as e:
        print("denied", path)
with open("inside.txt", "w") as f:
    f.write("fine")
print(os.getcwd(), open("inside.txt").read())
"""
    r = _run(prog)
    assert r.verdict == "passed", r
    assert "fine" in r.stdout
    assert [t for t in targets if os.path.exists(t)] == []
    _assert_unharmed(server_pid)


def test_filling_the_disk_is_bounded(server_pid):
    free_before = shutil.disk_usage("/").free
    prog = """
import os
written = 0
for i in range(10 ** 6):
    try:
        with open(f"fill{i}", "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1 << 20))
                written += 1 << 20
    except OSError:
        if i > 200:
            break
print(written)
"""
    r = _run(prog, timeout=10)
    assert r.verdict == "passed", r
    assert int(r.stdout.split()[-1]) <= (Limits().tmpfs_mb + 1) << 20
    assert free_before - shutil.disk_usage("/").free < 200 << 20
    _assert_unharmed(server_pid)


def test_no_network(server_pid):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0synth-sandbox-test")
    abstract.listen()
    abstract.settimeout(0.5)
    prog = f"""
import socket
for addr in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 443)):
    try:
        socket.create_connection(addr, timeout=1)
        print("CONNECTED", addr)
    except OSError as e:
        print("blocked", addr, e)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(b"\\0synth-sandbox-test")
    print("CONNECTED abstract")
except OSError as e:
    print("blocked abstract", e)
try:
    socket.getaddrinfo("example.com", 80)
    print("RESOLVED")
except OSError as e:
    print("blocked dns", e)
"""
    try:
        r = _run(prog, timeout=10)
        assert r.verdict == "passed", r
        assert "CONNECTED" not in r.stdout and "RESOLVED" not in r.stdout, r.stdout
        for sock in (listener, abstract):
            with pytest.raises(TimeoutError):
                sock.accept()
    finally:
        listener.close()
        abstract.close()
    _assert_unharmed(server_pid)


def test_cannot_kill_the_parent_or_the_server(server_pid):
    prog = f"""
import os, signal
for pid in ({os.getpid()}, {server_pid}, os.getppid(), -1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as e:
        print("refused", pid, e)
"""
    r = _run(prog)
    assert r.verdict in ("passed", "error"), r
    _assert_unharmed(server_pid)  # we are still here, and so is the same server


def test_blocking_on_stdin_returns_at_once(server_pid):
    r = _run("import sys\ndata = sys.stdin.read()\nline = input()\n", timeout=10)
    assert r.verdict == "error" and "EOFError" in r.reason and r.elapsed_s < 2, r
    _assert_unharmed(server_pid)


def test_double_fork_setsid_daemon_is_killed(server_pid):
    prog = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:        # a daemon holding stdout open, in its own session
            time.sleep(0.1)
    os._exit(0)
"""
    r = _run(prog, timeout=10)
    assert r.verdict == "passed" and r.elapsed_s < 3, r
    _assert_unharmed(server_pid)  # includes: no process with a sandbox uid is left


def test_ctypes_cannot_regain_privileges(server_pid):
    prog = """
import ctypes, os, resource
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x20000
print("setuid", libc.setuid(0), os.getuid())
print("unshare-user", libc.unshare(CLONE_NEWUSER))
print("unshare-net", libc.unshare(CLONE_NEWNET | CLONE_NEWNS))
print("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
print("ptrace", libc.ptrace(16, 1, 0, 0))
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("RAISED RLIMIT")
except (ValueError, OSError):
    print("rlimit refused")
"""
    r = _run(prog)
    assert r.verdict == "passed", r
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["setuid"].split()[0] == "-1" and out["setuid"].split()[1] != "0"
    assert out["unshare-user"] == out["unshare-net"] == out["mount"] == out["ptrace"] == "-1"
    assert out["rlimit"] == "refused"
    _assert_unharmed(server_pid)


def test_ctypes_segfault_is_an_error(server_pid):
    r = _run("import ctypes\nctypes.string_at(0)\n")
    assert r.verdict == "error" and "SIGSEGV" in r.reason, r
    _assert_unharmed(server_pid)


def test_runs_unprivileged_with_no_stray_fds(server_pid):
    prog = ("import os\n"
            "print(os.getuid(), os.getgid(), os.getgroups(),"
            " sorted(os.listdir('/proc/self/fd')))\n")
    r = _run(prog)
    uid, gid, rest = r.stdout.split(" ", 2)
    assert int(uid) == r.isolation["uid"] >= _sandbox_isolation.UID_BASE and int(gid) == int(uid)
    # fds 0-2, the report pipe (3), and the directory being listed (4): nothing inherited
    assert rest.startswith("[] ") and ast.literal_eval(rest[3:]) == ["0", "1", "2", "3", "4"]
    _assert_unharmed(server_pid)


def test_sys_exit_before_the_tests_is_not_a_pass(server_pid):
    r = _run(TRIVIAL[0] + "import sys\nsys.exit(0)\n", TRIVIAL[1])
    assert r.verdict == "error" and "SystemExit" in r.reason, r
    _assert_unharmed(server_pid)


def test_os_exit_before_the_tests_is_not_a_pass(server_pid):
    r = _run(TRIVIAL[0] + "import os\nos._exit(0)\n", TRIVIAL[1])
    assert r.verdict == "error" and "before the tests finished" in r.reason, r
    _assert_unharmed(server_pid)


def test_exiting_during_the_tests_is_not_a_pass(server_pid):
    prog = "import os\ndef add(a, b):\n    os._exit(0)\n"
    r = _run(prog, TRIVIAL[1])
    assert r.verdict == "error", r
    _assert_unharmed(server_pid)


def test_forged_done_line_is_not_a_pass(server_pid):
    prog = """
import os
os.write(3, b'{"event": "program_ok"}\\n{"event": "done", "nonce": "0000"}\\n')
os._exit(0)
"""
    r = _run(prog, "assert False\n")
    assert r.verdict == "error", r
    _assert_unharmed(server_pid)


def test_always_equal_object_does_not_pass(server_pid):
    prog = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __contains__(self, item): return True
    __hash__ = object.__hash__

def solve(x):
    return Anything()
"""
    for tests in ("assert solve(1) == 2\n", "assert solve(1) == [1, 2]\n", "assert 3 == solve(1)\n",
                  "assert solve(1) in ('a', 'b')\n", "assert 'a' in solve(1)\n",
                  "assert not (solve(1) != 'x')\n"):
        r = _run(prog, tests)
        assert r.verdict == "failed" and "refused" in r.reason, (tests, r)
    _assert_unharmed(server_pid)


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
