"""The code sandbox under attack: one property per test, then `_assert_unharmed` (a trivial
program still passes, the fork server is the same process and alive, and none of its run
processes, unreaped children, occupied cgroups or host work dirs is left behind).

The module runs as whoever runs pytest. In CI that is root, and
`test_the_attacks_hold_for_an_unprivileged_user` runs this same module again as uid 65534
(rootless: the fork server in a user namespace of its own), so every attack is tried at both
isolation levels. Stdlib, pytest and `verifiers` only: no conftest fixtures.
"""

from __future__ import annotations

import ast
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verifiers.code import CodeResult, Limits, _server, _shutdown_server, check_code
from verifiers.sandbox import isolation

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = ("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
QUICK = dict(timeout=1.5, memory_mb=256)
LEVEL = "root" if os.geteuid() == 0 else "rootless"


# --------------------------------------------------------------------------- helpers


def _ppids() -> dict[int, int]:
    out = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            out[int(stat.split("/")[2])] = int(Path(stat).read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return out


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (a run's processes, also those a daemonizing program left in
    its PID namespace: their reaper is the run's first process, itself the server's child)."""
    ppids, found, todo = _ppids(), [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in ppids.items() if pp == parent]
        found += kids
        todo += kids
    return found


def _run_uid_pids() -> list[int]:
    """As root: processes running under a run's uid (UID_BASE + host pid)."""
    found = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            uid = int(next(line for line in Path(status).read_text().splitlines()
                           if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if uid >= isolation.UID_BASE:
            found.append(int(status.split("/")[2]))
    return found


def _slot_cgroups(server_pid: int) -> list[str]:
    return [p for parent in set(isolation.cgroup_parents().values())
            for p in glob.glob(f"{parent}/synth-sbx-{server_pid}-*")]


def _leftovers(server_pid: int) -> dict:
    occupied = [p for p in _slot_cgroups(server_pid) if Path(p, "cgroup.procs").read_text().strip()]
    mine = _descendants(server_pid)
    uid_pids = [p for p in _run_uid_pids() if p in mine] if LEVEL == "root" else []
    return {"run processes": mine, "run uid processes": uid_pids, "occupied cgroups": occupied,
            "work dirs": glob.glob(f"/tmp/synth-sbx-{server_pid}-*")}


def _ways_through(directory: str) -> set[str]:
    """The names a run may see in `directory` of the host: the next step towards each path
    of the run's allow-listed filesystem below it (e.g. `.pyenv` in /root)."""
    names = set()
    for _, path, _ in isolation.filesystem_plan():
        rel = os.path.relpath(path, directory)
        if not rel.startswith(".."):
            names.add(rel.split("/")[0])
    return names


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


def test_level_is_what_this_user_can_have(server_pid):
    r = _run("pass\n")
    assert r.verdict == "passed" and r.isolation["level"] == LEVEL, r
    assert all(r.isolation[k] for k in ("pid_ns", "net_ns", "ipc_ns", "mount_ns", "private_root",
                                       "seccomp")), r.isolation
    _assert_unharmed(server_pid)


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
    # rootless without a delegated cgroup: RLIMIT_NPROC (counted per user) stops it instead
    assert r.isolation["pid_ns"] and ("pids" in r.isolation["cgroups"] or LEVEL == "rootless")
    _assert_unharmed(server_pid)


def test_memory_bomb_is_a_memory_verdict(server_pid):
    r = _run("chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n", memory_mb=256)
    assert r.verdict == "memory", r
    _assert_unharmed(server_pid)


def test_memory_bomb_across_processes_hits_the_cgroup(server_pid):
    if "memory" not in _run("pass\n").isolation["cgroups"]:
        pytest.skip("no memory cgroup here (rootless without a delegated cgroup v2 subtree): "
                    "each process is capped by RLIMIT_AS, the run by max_procs x memory_mb")
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
print("setuid", libc.setuid(0 if os.getuid() else 1), os.getuid())
print("caps", [l.split()[1] for l in open("/proc/self/status") if l.startswith("Cap")])
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
    assert out["setuid"].split()[0] == "-1"  # neither back to root nor (rootless) another uid
    assert out["setuid"].split()[1] == ("0" if LEVEL == "rootless" else str(r.isolation["uid"]))
    # no capability, in any set: effective, permitted, inheritable, bounding, ambient
    assert set(ast.literal_eval(out["caps"])) == {"0000000000000000"}, out["caps"]
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
    groups, fds = rest.split("] ", 1)
    if LEVEL == "root":  # a uid of its own, no groups
        assert int(uid) == r.isolation["uid"] >= isolation.UID_BASE and int(gid) == int(uid)
        assert groups == "["
    else:  # uid 0 of the server's user namespace (the user), without any capability
        assert int(uid) == r.isolation["uid"] == 0 and r.isolation["capabilities"] == "none"
    # fds 0-2, the report pipe (3), and the directory being listed (4): nothing inherited
    # (the job file, fd 4 while the harness starts, is closed before the program runs)
    assert ast.literal_eval(fds) == ["0", "1", "2", "3", "4"]
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
os.write(3, b'{"event": "program_ok"}\\n{"event": "done"}\\n')
os._exit(0)
"""
    r = _run(prog, "assert False\n")
    assert r.verdict == "error" and "report channel" in r.reason, r
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


# --------------------------------------------------------------------------- the filesystem


def test_a_private_file_of_the_user_is_out_of_reach(server_pid, tmp_path):
    """Rootless, the run is the user: only the allow-listed filesystem keeps it from what the
    user can read. As root, the same holds (and the run's own uid would be refused anyway)."""
    secret = tmp_path / "id_secret"
    secret.write_text("the user's private key")
    secret.chmod(0o600)
    home = Path(os.path.expanduser("~"))
    prog = f"""
import os
for path in ({str(secret)!r}, {str(tmp_path)!r}, {str(home)!r}, "/etc/shadow", "/etc/ssh"):
    try:
        if os.path.isfile(path):
            print("READ", path, open(path).read())
        else:
            print("LISTED", path, sorted(os.listdir(path)))
    except OSError as e:
        print("denied", path, type(e).__name__)
"""
    r = _run(prog)
    assert r.verdict == "passed" and "private key" not in r.stdout, r
    lines = r.stdout.splitlines()
    assert not [line for line in lines if line.startswith("READ ")], r.stdout
    for line in lines:  # a directory on the way to an allow-listed one shows only that way
        if line.startswith("LISTED "):
            _, path, names = line.split(" ", 2)
            assert set(ast.literal_eval(names)) <= _ways_through(path), line
    assert sum(line.startswith("denied") for line in lines) >= 4, r.stdout
    _assert_unharmed(server_pid)


def test_the_project_tree_is_out_of_reach(server_pid):
    """The source tree (this repository) is not there; a virtualenv inside it is, read-only,
    when the interpreter is that virtualenv's (it holds the site-packages)."""
    venv = Path(sys.prefix).resolve()
    prog = f"""
import os
for path in ({str(ROOT / "README.md")!r}, {str(ROOT / "verifiers" / "code.py")!r},
             {str(Path(__file__).resolve())!r}, {str(ROOT / ".git" / "config")!r}):
    try:
        open(path).read()
        print("READ", path)
    except OSError as e:
        print("denied", path)
try:
    print("LISTED", sorted(os.listdir({str(ROOT)!r})))
except OSError:
    print("denied listing")
"""
    r = _run(prog)
    assert r.verdict == "passed" and "\nREAD " not in "\n" + r.stdout, r
    listed = [line for line in r.stdout.splitlines() if line.startswith("LISTED")]
    if listed:  # only the path down to the virtualenv, nothing else of the tree
        assert venv.is_relative_to(ROOT), r.stdout
        assert ast.literal_eval(listed[0].split(" ", 1)[1]) == [venv.relative_to(ROOT).parts[0]]
    _assert_unharmed(server_pid)


def test_no_file_survives_in_any_visible_directory(server_pid):
    """The program tries to create a file in every directory it can see. Writable are only
    its private tmpfs mounts; afterwards none of the files exists on the host."""
    name = f".synth-probe-{secrets.token_hex(6)}"
    prog = f"""
import os
seen = created = 0
for top, dirs, files in os.walk("/"):
    if top.startswith("/proc"):
        dirs[:] = []
        continue
    seen += 1
    path = os.path.join(top, {name!r})
    try:
        with open(path, "w") as f:
            f.write("left behind")
        created += 1
        print("CREATED", path)
    except OSError:
        pass
print("seen", seen, "created", created)
"""
    r = _run(prog, timeout=60, memory_mb=512)
    assert r.verdict == "passed", r
    created = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("CREATED")]
    seen = int(r.stdout.split()[-3])
    assert seen > 100, r.stdout[-500:]  # it did walk the system directories
    private = ("/tmp", "/var/tmp", "/dev/shm")
    assert created and all(os.path.dirname(p).startswith(private) for p in created), created
    assert not [p for p in created if os.path.exists(p)]
    found = subprocess.run(["find", "/tmp", "/var/tmp", "/dev/shm", "/etc", str(ROOT),
                            "-name", name], capture_output=True, text=True)
    assert found.stdout.strip() == "", found.stdout
    _assert_unharmed(server_pid)


def test_another_concurrent_run_is_out_of_reach(server_pid):
    """Run A holds a secret in its tests and its work dir and sleeps; run B, forked while A
    is in flight, searches the filesystem it sees and its own memory (inherited from the fork
    server) for it. B finds its own marker only, never A's secret."""
    token = secrets.token_hex(8)
    prog_a = (f"import time\nopen('note.txt', 'w').write('XSECRETX-{token}')\n"
              "time.sleep(4)\n")
    tests_a = f"assert 'XSECRETX-{token}' != ''\n"
    prog_b = """
import glob, os, re
needle = b"XSECRETX" + b"-"
found = set()
for path in glob.glob("/tmp/**", recursive=True) + glob.glob("/proc/*/cwd/*") + \\
        glob.glob("/var/tmp/*") + glob.glob("/dev/shm/*"):
    try:
        data = open(path, "rb").read()
    except OSError:
        continue
    for m in re.finditer(re.escape(needle) + rb"[0-9a-f]{16}", data):
        found.add(m.group().decode())
import ctypes
regions = 0
with open("/proc/self/maps") as maps:  # the heap and anonymous memory, inherited or not
    for line in maps:
        fields = line.split()
        if not fields[1].startswith("r") or (len(fields) > 5 and fields[5] not in ("[heap]",
                                                                                   "[stack]")):
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        chunk = ctypes.string_at(lo, hi - lo)
        regions += 1
        for m in re.finditer(re.escape(needle) + rb"[0-9a-f]{16}", chunk):
            found.add(m.group().decode())
print(regions, sorted(found))
"""
    results = {}

    def run_a():
        results["a"] = _run(prog_a, tests_a, timeout=10)

    thread = threading.Thread(target=run_a)
    thread.start()
    time.sleep(1.0)  # A is in flight: its child has been forked and is sleeping
    r = _run(prog_b, timeout=20, memory_mb=512)
    thread.join()
    assert results["a"].verdict == "passed", results["a"]
    assert r.verdict == "passed" and int(r.stdout.split()[0]) > 3, r  # it did scan its memory
    assert token not in r.stdout, r.stdout
    _assert_unharmed(server_pid)


# --------------------------------------------------------------------------- a second pass


@pytest.mark.slow
@pytest.mark.skipif(LEVEL != "root", reason="run as root, it runs this module as another user")
def test_the_attacks_hold_for_an_unprivileged_user():
    """This module again, as uid 65534 (an ordinary user: no capability, no sudo): the fork
    server isolates rootless, and every attack above must hold there too. The module, the
    `verifiers` package and pytest are copied where that user can read them."""
    from tests.rootless import NOBODY, become, env_for, python_for, stage

    python = python_for(NOBODY)
    assert python, "no Python interpreter that uid 65534 can run (tried this one and python3)"
    work = stage([Path(__file__)], with_pytest=True)
    try:
        r = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                            "-c", str(work / "pytest.ini"), str(work / "tests")],
                           cwd=work, env=env_for(work), preexec_fn=become(NOBODY),
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        summary = r.stdout.strip().splitlines()[-1]
        passed = int(summary.split(" passed")[0].split()[-1])
        assert passed >= 25, summary
        print(summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
