"""Check model-written Python by running it against tests in a sandbox.

    >>> from verifiers.code import check_code
    >>> check_code("def add(a, b): return a + b", "assert add(2, 2) == 4", mode="assert").verdict
    'passed'

`check_code(program, tests, mode="assert")` runs `tests` (Python source, or a list of source
lines) after `program` in the same fresh process, one top-level test statement at a time; it
passes only if every statement ran and none failed. `check_code(program, cases, mode="stdio")`
runs the program once per `{"input", "output"}` case (a list, or that list as a JSON string)
with the input on stdin, stops at the first case that does not pass, and compares stdout with
the expected output after stripping trailing whitespace from every line and trailing blank
lines. `timeout` and `memory_mb` apply to each execution (each case in stdio mode).
`check_code_batch(items)` runs many checks in parallel. Neither raises on model output.

Verdicts, in the order they are decided:

- `unverifiable`: the check could not be made: empty or malformed tests, an unknown mode, or a
  sandbox that could not be set up (the reason says which). Not the program's fault.
- `memory`: the run's memory cgroup OOM-killed a process (all processes of a run share
  `memory_mb`), or a MemoryError (each process's address space is capped at `memory_mb`).
- `timeout`: wall-clock `timeout` passed, or the CPU-time limit (`int(timeout) + 1` s) fired.
- `error`: the run did not get to its end: the program did not compile, raised at top level,
  exited (`sys.exit`, `os._exit`, any code) or was killed before the tests finished, exited
  non-zero in stdio mode, or wrote more than `Limits.output_bytes`.
- `failed`: everything ran and at least one test failed (an assert, any exception inside a test
  statement, a wrong stdio output).
- `passed`: everything ran and nothing failed.

Isolation levels (each result's `isolation["level"]`; its `isolation` map records what held
for that run, and on this project's machines everything below holds for both levels):

- `root`: the checker runs as root. Each run drops to a uid of its own.
- `rootless`: the checker is an ordinary user (a laptop, a Slurm job, a KubeRay pod as uid
  1000). The fork server enters a user namespace of its own (uid 0 there is the user) and
  becomes PID 1 of a PID namespace it owns; each run has the same namespaces, filesystem,
  seccomp filter and limits as with root, and gives up every capability for good instead of
  switching uid (so it runs as the user, which is why its filesystem is an allow-list).
- `none`: neither root nor user namespaces. The first check raises `IsolationUnavailable`,
  one line saying what is missing and how to enable it, unless `SYNTH_SANDBOX_UNISOLATED=1`
  opts in to running model-written code with rlimits and seccomp only; every result then
  says `level: none`.

What is covered (Linux, root and rootless):

- A warm fork server (one per client process, started with `python -I` and a fixed minimal
  environment) forks one child per run and watches all runs from one `poll` loop; nothing is
  exec'd, so a run costs a few milliseconds of CPU, not an interpreter start. Deadlines are
  enforced by that loop with pidfds, never by signals in the caller: they work from any
  thread, subprocess or Ray actor (each Ray worker gets its own server). A run whose caller
  goes away is killed. See `verifiers.sandbox.server` for the moving parts.
- The child is PID 1 of a new PID namespace, in its own session and process group. When it
  ends, the kernel kills everything left in that namespace, so double-forked `setsid`
  daemons die with it.
- Network: the child joins an empty network namespace (no interfaces up, not even loopback,
  and the host's abstract unix sockets are out of reach). Namespaces are kept per server
  *slot* and reused by runs one after another, never by two runs at once: making one per run
  costs more kernel CPU than the rest of the run, and an unprivileged run leaves nothing in it.
- Filesystem, from an allow-list (in the manner of bubblewrap): a new mount namespace whose
  root is a read-only tmpfs holding read-only binds of /usr (and the /bin, /lib... links or
  directories), a few /etc files (passwd, group, hosts, ld.so.cache, localtime...), the
  Python install and its site-packages, the devices null, zero, full, random and urandom,
  private tmpfs on /tmp (the work dir is /tmp/work, size `Limits.tmpfs_mb`), /var/tmp and
  /dev/shm, and a /proc that shows only the run's processes. Home directories, the project
  tree, the host's /tmp, /sys, /run and every other mount do not exist in the run; no host
  path is writable, and what the run writes vanishes with it.
- cgroups, inside the caller's own place so that limits above still apply: v1 (per slot,
  in the caller's own memory and pids cgroups, when writable) or v2 (a child of the nearest
  cgroup we may write whose children get memory and pids, with no limit between it and our
  own cgroup that the runs would escape: as root, or in a delegated subtree such as a
  systemd user slice). Memory (`memory_mb`, swap included) and pids (`Limits.max_procs`: a
  fork bomb stops there). Without either (rootless without delegation), rlimits only.
- rlimits: CPU time, address space, processes, file size, open files, stack; no core dumps,
  no POSIX message queues.
- Privileges: as root, the child drops to an unprivileged uid/gid of its own (1000000000 +
  its pid on the host, so concurrent runs cannot signal or read each other; 65534 inside a
  user namespace) with no supplementary groups; rootless, it empties every capability set
  (bounding and ambient included) and locks the securebits so nothing brings one back. Then
  no_new_privs (setuid binaries give nothing back), a parent-death SIGKILL, and a seccomp
  filter refusing new namespaces (an unprivileged user namespace would be "root" inside it),
  mount, ptrace, bpf, keyrings, perf, io_uring and module loading. It cannot raise its rlimits
  or write anywhere but its private mounts.
- File descriptors: stdin is the case's input or /dev/null, stdout and stderr are pipes whose
  total is capped while the data streams (the run is killed at the cap), every other inherited
  fd is closed. The environment is fixed and minimal; the fork server was started with it, so
  not even /proc/self/environ holds the caller's secrets.
- Other runs: the program, tests and stdin travel as read-only in-memory files that only the
  run's child reads, never the fork server, and a child wipes the other runs' buffers it
  inherited (their output so far, their reports): no run sees another's tests, key or state,
  in memory or on disk.
- Results come from the harness only: the report pipe's first line is a per-run key the
  child makes after the fork, before anything untrusted runs, and every later line carries
  its HMAC. A line the program writes there (forged, malformed, or a cut-off line of its own)
  is the program's failure (`error`), and a run counts as finished only when the signed
  `done` line arrives: `sys.exit`, `os._exit`, a signal or a crash before that is never a
  pass.
- No method of a class the program defined decides a check (`verifiers.sandbox.guard`). The
  whole test module, with the functions and classes it defines, is rewritten before the program
  runs so that comparisons (chained too), `in`, truth tests (`assert`, `if`, `while`, `and`,
  `or`, `not`, `bool`, `all`, `any`), arithmetic and augmented assignment, `operator`'s
  functions, `math.isclose` and the asserts of `unittest.TestCase` go through helpers that look
  at types: an object whose `__eq__` always returns True (or whose `__bool__`, `__contains__`,
  `__sub__` ... lies) fails with "... of program-defined type 'X' refused", compared with a
  literal, a variable, inside a list or through `UserList`, `SimpleNamespace`, `ChainMap`,
  `mappingproxy` or a weak reference alike. Honest values pass: program subclasses of builtins
  (named tuples, `IntEnum`, `str`/`dict`/`list` subclasses, `OrderedDict`, `Counter`) compare by
  their builtin value, read through the builtin type's own methods; instances of the program's
  other classes (dataclasses) compare with instances of the same class. Library classes the
  program patched count as its own; the tests' builtin names (`abs`, `all`), the modules they
  import (`math.isclose`, `unittest.TestCase`) and `import` itself are the real ones even if
  the program replaced or shadowed them.

What is not covered:

- Kernel bugs: this is namespaces + seccomp + dropped privileges, not a VM or gVisor.
- The allow-listed system files stay readable (/usr, the Python install, site-packages, the
  listed /etc files): keep secrets out of them.
- Tests and program share one interpreter. A program written against this harness can reach
  its state through `gc`, frames, `sys.modules` or ctypes (the report key and fd, the guard's
  helpers) and forge a pass, change library code the tests call (a function's `__code__`),
  install a trace function from code the tests call (jumping over later asserts), or put a
  pipe of its own behind the report fd from a thread. Rebinding `os.write`, `json.dumps` or
  `sys.settrace` does not reach the harness. The guards stop accidental and generic reward
  hacks, not a targeted attack on the checker's own process. Freed memory the fork server
  once used may still hold bytes of earlier results (never of programs or tests, which it
  never reads).
- The comparison guard leaves alone explicit calls into the program (`len(obj)`, `abs(obj)`,
  `str(obj)`, `obj.method()`: only their results are checked; such a method is not handed the
  expected value), comparisons and hashing inside builtins and libraries (`min`, `max`,
  `sorted`, `list.index`, `d[obj]`), `match` statements, code the tests `eval` or `exec`, and
  third-party containers (numpy object arrays). Two instances of one program class are compared
  by that class (nothing else can decide `Point(1, 2) == Point(1, 2)`), so tests that only
  compare the program's objects with each other cannot catch a lying `__eq__`; tests that use
  `in`, truth tests or arithmetic with the program's own classes (`assert 3 in my_set`,
  `assert stack` if its class has a `__len__`, `v * 2`) fail as refused. The tests' builtin
  names are the real builtins, so a task whose function is named like a builtin (`sum`) is
  checked against the builtin.
- Fairness: concurrent runs share the CPUs as the scheduler sees fit; do not run more parallel
  checks than memory allows (`workers` x `memory_mb`).
- Rootless: supplementary groups cannot be dropped (setgroups is denied in an unprivileged
  user namespace); without a delegated cgroup, memory is capped per process (RLIMIT_AS), so
  a run's total is bounded by `max_procs` x `memory_mb`, and RLIMIT_NPROC counts all of the
  user's processes.
- If a fork server is SIGKILLed (a Ray worker torn down mid-run), its runs die with it
  (parent-death signal), but its empty cgroups stay until the next server starts.
- Weaker kernels degrade, as `isolation` shows: as root without PID namespaces or a pids
  cgroup, leftovers are killed by `kill(-1)` as the run's uid; as root without a mount
  namespace the work dir is a host directory under /tmp (removed afterwards) and the host's
  filesystem is visible (rootless, no run starts then); without a network namespace the
  network is open; seccomp has tables for x86-64 and aarch64 only.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import signal as _signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from verifiers.sandbox import server as _srv

__all__ = ["CaseResult", "CodeResult", "Limits", "check_code", "check_code_batch",
           "default_workers"]

Verdict = Literal["passed", "failed", "error", "timeout", "memory", "unverifiable"]
Mode = Literal["assert", "stdio"]
TAIL_CHARS = 4000
_ANSWER_SLACK_S = 30.0  # how long past the run's own deadline the client waits for an answer


@dataclass(frozen=True)
class Limits:
    """Per-run limits other than time and memory (those are `check_code` arguments)."""

    output_bytes: int = 1 << 20  # stdout + stderr together; the run is killed past this
    max_procs: int = 64  # processes and threads (pids cgroup and RLIMIT_NPROC)
    file_size_mb: int = 16  # largest single file (RLIMIT_FSIZE)
    max_open_files: int = 256
    stack_mb: int = 64
    tmpfs_mb: int = 64  # the private /tmp, work dir included


@dataclass(frozen=True)
class CaseResult:
    """One test statement (assert mode) or one input/output case (stdio mode)."""

    name: str
    passed: bool
    error: str | None = None


@dataclass(frozen=True)
class CodeResult:
    verdict: Verdict
    reason: str = ""  # one line: why this verdict
    stdout: str = ""  # tail of the (last) run's stdout
    stderr: str = ""  # tail of the (last) run's stderr
    elapsed_s: float = 0.0  # wall time inside the sandbox, summed over runs
    tests: tuple[CaseResult, ...] = ()
    isolation: Mapping[str, Any] = field(default_factory=dict)  # which isolation steps held

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- the fork server

# Loads the sandbox modules by path under private names (no `verifiers` package, and nothing of
# the package's directories on sys.path, where `code.py` and `math/` would shadow the standard
# library).
_BOOT = """
import importlib.util, sys
here = sys.argv[2]
for name in ("seccomp", "isolation", "harness", "server"):
    spec = importlib.util.spec_from_file_location(f"_synth_sandbox_{name}",
                                                  f"{here}/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
mod.serve(int(sys.argv[1]), sys.argv[3] == "1")
"""


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here (no root and no user namespaces, and no opt-in to running
    code unisolated), or its fork server failed. Raised by `check_code` and
    `check_code_batch`: it is about this machine, not about the program."""


class IsolationUnavailable(SandboxUnavailable):
    """Neither root nor user namespaces, and no opt-in: no check can be made on this machine.
    The one error `check_code` raises instead of returning a result."""


UNISOLATED_ENV = "SYNTH_SANDBOX_UNISOLATED"


def _unisolated_allowed() -> bool:
    return os.environ.get(UNISOLATED_ENV, "").strip().lower() in ("1", "true", "yes")


class _ForkServer:
    """The client side of one fork server process (see `_sandbox_server`)."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        here = str(Path(__file__).resolve().parent / "sandbox")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, str(theirs.fileno()), here,
             "1" if _unisolated_allowed() else "0"],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={"PATH": _srv.ENV_PATH, "LANG": "C.UTF-8"}, cwd="/", start_new_session=True,
        )
        theirs.close()
        ours.settimeout(60)
        try:
            self.hello = json.loads(ours.recv(1 << 16) or b"null")
        except (OSError, ValueError):
            self.hello = None
        ours.settimeout(None)
        self.ctl, self.owner, self.lock = ours, os.getpid(), threading.Lock()
        if not isinstance(self.hello, dict):
            self.close()
            raise SandboxUnavailable("the sandbox fork server did not start")
        if self.hello.get("level") == "none" and not _unisolated_allowed():
            self.close()
            raise IsolationUnavailable(f"the code sandbox cannot isolate programs here: "
                                     f"{self.hello.get('why')}; or set {UNISOLATED_ENV}=1 to run "
                                     "model-written code without isolation (every result says so)")

    @property
    def pid(self) -> int:
        """The fork server's pid on the host: the process that forks and watches the runs
        (rootless, a child of the process started here: PID 1 of a PID namespace of its own)."""
        return int(self.hello.get("pid", self.proc.pid))

    @property
    def level(self) -> str:
        """"root", "rootless" or "none" (see `sandbox.isolation.enter`)."""
        return str(self.hello.get("level"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, job: dict, wait_s: float) -> dict:
        """Send one job: its limits over a fresh socketpair (the answer comes back on it), the
        program and tests, and the stdin data, as read-only files the child reads itself."""
        mine, theirs = socket.socketpair()
        files = [_readonly_file("synth-job", json.dumps(
            {"program": job["program"], "tests": job["tests"]}).encode())]
        if job["stdin"] is not None:
            files.append(_readonly_file("synth-stdin",
                                        job["stdin"].encode("utf-8", "surrogateescape")))
        limits = {k: v for k, v in job.items() if k not in ("program", "tests", "stdin")}
        try:
            with self.lock:
                socket.send_fds(self.ctl, [b"J"], [theirs.fileno(), *files])
            theirs.close()
            mine.settimeout(wait_s)
            _srv.send_msg(mine, limits)
            return _srv.recv_msg(mine)
        finally:
            mine.close()
            theirs.close()
            for fd in files:
                os.close(fd)

    def close(self) -> None:
        try:
            self.ctl.close()  # EOF on the control socket: the server exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _readonly_file(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding `data`, opened read-only at offset 0."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


_server_lock = threading.Lock()
_server_obj: _ForkServer | None = None


def _server() -> _ForkServer:
    global _server_obj
    with _server_lock:
        if _server_obj is not None and not _server_obj.alive():
            _server_obj.close()
            _server_obj = None
        if _server_obj is None:
            _server_obj = _ForkServer()
        return _server_obj


def _shutdown_server() -> None:
    """Stop this process's fork server (a new one starts on the next check)."""
    global _server_obj
    with _server_lock:
        if _server_obj is not None:
            _server_obj.close()
            _server_obj = None


def _after_fork_in_child() -> None:
    # A forked caller must not share its parent's control socket: start a server of its own.
    global _server_lock, _server_obj
    _server_lock = threading.Lock()
    if _server_obj is not None:
        try:
            _server_obj.ctl.close()
        except OSError:
            pass
        _server_obj = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_server)  # the server would exit on its own (EOF); this waits for it


def _submit(job: dict) -> dict:
    wait_s = job["timeout"] + _ANSWER_SLACK_S
    for attempt in (1, 2):
        server = _server()
        try:
            return server.submit(job, wait_s)
        except (BrokenPipeError, ConnectionResetError, EOFError) as e:
            if attempt == 2 or server.alive():
                raise SandboxUnavailable(f"the sandbox fork server failed: {e}") from e
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- verdicts


def _tail(text: str) -> str:
    return text[-TAIL_CHARS:]


def _signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _limit_verdict(raw: dict, limits: Limits) -> tuple[Verdict, str] | None:
    """Verdicts every execution shares: sandbox trouble, time, memory, output flood."""
    if "sandbox_error" in raw:
        return "unverifiable", f"sandbox error: {raw['sandbox_error']}"
    if raw["setup_error"]:
        return "unverifiable", f"sandbox setup failed: {raw['setup_error']}"
    if raw.get("forged"):
        return "error", (f"the program wrote {raw['forged']} line(s) to the sandbox's report "
                         "channel (results come from the harness only)")
    if raw["oom"]:  # checked first: a run whose process was OOM-killed may then hang
        return "memory", "the memory cgroup's OOM killer stopped a process"
    if raw["timed_out"]:
        return "timeout", f"wall-clock limit reached after {raw['elapsed']:.2f} s"
    if raw["cpu_limit"]:
        return "timeout", f"CPU time limit reached ({raw['cpu']:.2f} s)"
    if any(e.get("kind") == "memory" or e.get("memory") for e in raw["events"]):
        return "memory", "MemoryError (address-space limit)"
    if raw["output_limit"]:
        return "error", f"output limit exceeded ({limits.output_bytes} bytes); the run was killed"
    return None


def _ended_early(raw: dict) -> str:
    if raw["signal"] is not None:
        return f"killed by {_signal_name(raw['signal'])}"
    return f"exited with code {raw['exit_code']}"


def _assert_verdict(raw: dict, limits: Limits) -> tuple[Verdict, str, tuple[CaseResult, ...]]:
    tests = tuple(
        CaseResult(str(e.get("name", "")), bool(e.get("passed")), e.get("error"))
        for e in raw.get("events", ()) if e.get("event") == "test"
    )
    decided = _limit_verdict(raw, limits)
    if decided:
        return (*decided, tests)
    for e in raw["events"]:
        if e.get("event") == "tests_invalid":
            return "unverifiable", f"the tests do not parse: {e.get('error')}", tests
        if e.get("event") == "program_error":
            return "error", f"the program failed before the tests: {e.get('error')}", tests
    if not raw["finished"]:
        return "error", f"{_ended_early(raw)} before the tests finished", tests
    failed = [t for t in tests if not t.passed]
    if failed:
        first = failed[0]
        return "failed", f"{len(failed)} of {len(tests)} test statements failed; first: " \
                         f"{first.name}: {first.error}", tests
    return "passed", f"{len(tests)} test statements passed", tests


def _normalize(text: str) -> str:
    lines = text.replace("\r\n", "\n").rstrip().split("\n")
    return "\n".join(line.rstrip() for line in lines)


def _stdio_case_verdict(raw: dict, expected: str, limits: Limits) -> tuple[Verdict, str]:
    decided = _limit_verdict(raw, limits)
    if decided:
        return decided
    for e in raw["events"]:
        if e.get("event") == "program_error":
            return "error", f"runtime error: {e.get('error')}"
    if raw["exit_code"] != 0:
        return "error", f"{_ended_early(raw)}"
    got = _normalize(raw["stdout"])
    if got != _normalize(expected):
        return "failed", f"wrong output: expected {_normalize(expected)[:200]!r}, got {got[:200]!r}"
    return "passed", "output matches"


# --------------------------------------------------------------------------- inputs


def _parse_cases(tests) -> list[dict]:
    """Stdio cases from a list (or its JSON text) of {"input": str, "output": str}."""
    if isinstance(tests, (str, bytes)):
        tests = json.loads(tests)
    if not isinstance(tests, list) or not tests:
        raise ValueError("stdio tests must be a non-empty list of {input, output}")
    cases = []
    for i, case in enumerate(tests):
        if not isinstance(case, dict) or not isinstance(case.get("output"), str):
            raise ValueError(f"case {i} needs a string 'output'")
        stdin = case.get("input", "")
        if not isinstance(stdin, str):
            raise ValueError(f"case {i} needs a string 'input'")
        cases.append({"input": stdin, "output": case["output"]})
    return cases


def _job(program: str, mode: str, tests, stdin, timeout: float, memory_mb: int,
         limits: Limits) -> dict:
    return {
        "program": program, "mode": mode, "tests": tests, "stdin": stdin,
        "timeout": float(timeout), "memory_mb": int(memory_mb),
        "output_limit": limits.output_bytes, "max_procs": limits.max_procs,
        "file_size_mb": limits.file_size_mb, "max_open_files": limits.max_open_files,
        "stack_mb": limits.stack_mb, "tmpfs_mb": limits.tmpfs_mb,
    }


def _unverifiable(reason: str) -> CodeResult:
    return CodeResult("unverifiable", reason)


# --------------------------------------------------------------------------- public API


def check_code(program: str, tests, *, mode: Mode, timeout: float = 10.0, memory_mb: int = 1024,
               limits: Limits | None = None) -> CodeResult:
    """Run `program` against `tests` in the sandbox and return a `CodeResult` (never raises)."""
    try:
        return _check(program, tests, mode, timeout, memory_mb, limits or Limits())
    except IsolationUnavailable:
        raise  # about this machine, for every program: the caller must hear it once
    except Exception as e:  # the checker's own failure must not take the pipeline down
        return _unverifiable(f"sandbox error: {type(e).__name__}: {e}")


def _check(program, tests, mode, timeout, memory_mb, limits: Limits) -> CodeResult:
    if not isinstance(program, str):
        return _unverifiable(f"the program must be a string, not {type(program).__name__}")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        return _unverifiable(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not (isinstance(memory_mb, int) and memory_mb >= 32):
        return _unverifiable(f"memory_mb must be an int >= 32, not {memory_mb!r}")
    if mode == "assert":
        if isinstance(tests, (list, tuple)) and all(isinstance(t, str) for t in tests):
            tests = "\n".join(tests) + "\n"  # a list of assert lines (MBPP's test_list)
        if not isinstance(tests, str) or not tests.strip():
            return _unverifiable("assert-mode tests must be non-empty Python source")
        try:
            compile(tests, "tests.py", "exec", flags=0x400, dont_inherit=True)  # PyCF_ONLY_AST
        except (SyntaxError, ValueError) as e:
            return _unverifiable(f"the tests do not parse: {e}")
        raw = _submit(_job(program, mode, tests, None, timeout, memory_mb, limits))
        verdict, reason, details = _assert_verdict(raw, limits)
        return CodeResult(verdict, reason, _tail(raw.get("stdout", "")),
                          _tail(raw.get("stderr", "")), raw.get("elapsed", 0.0), details,
                          raw.get("isolation", {}))
    if mode == "stdio":
        try:
            cases = _parse_cases(tests)
        except (ValueError, TypeError) as e:
            return _unverifiable(f"bad stdio tests: {e}")
        details, elapsed, raw = [], 0.0, {}
        for i, case in enumerate(cases):
            raw = _submit(_job(program, mode, None, case["input"], timeout, memory_mb, limits))
            elapsed += raw.get("elapsed", 0.0)
            verdict, reason = _stdio_case_verdict(raw, case["output"], limits)
            details.append(CaseResult(f"case {i}", verdict == "passed",
                                      None if verdict == "passed" else reason))
            if verdict != "passed":  # the first case that does not pass decides
                return CodeResult(verdict, f"case {i} of {len(cases)}: {reason}",
                                  _tail(raw.get("stdout", "")), _tail(raw.get("stderr", "")),
                                  elapsed, tuple(details), raw.get("isolation", {}))
        return CodeResult("passed", f"all {len(cases)} cases passed", _tail(raw.get("stdout", "")),
                          _tail(raw.get("stderr", "")), elapsed, tuple(details),
                          raw.get("isolation", {}))
    return _unverifiable(f"unknown mode {mode!r} (expected 'assert' or 'stdio')")


def _call(item) -> CodeResult:
    if isinstance(item, Mapping):
        kwargs = dict(item)
        program, tests = kwargs.pop("program", None), kwargs.pop("tests", None)
        return check_code(program, tests, **kwargs) if "mode" in kwargs else \
            _unverifiable("batch item has no 'mode'")
    try:
        program, tests, mode = item
    except (TypeError, ValueError):
        return _unverifiable("batch items are dicts (program, tests, mode, ...) or 3-tuples")
    return check_code(program, tests, mode=mode)


def default_workers() -> int:
    """Runs in flight for `check_code_batch`: one and a half per CPU. A run is CPU-bound, but
    its slot also waits while the kernel tears down the run's namespaces and while the client
    collects the result and sends the next job; with one run per CPU those gaps leave the
    CPUs idle about a fifth of the time. Measured on 2 CPUs with `benchmarks/sandbox.py`'s
    programs (root): 2 in flight 165-204 runs/s, 3 in flight 234-237, 4 in flight 241-247."""
    return max(2, (os.cpu_count() or 1) * 3 // 2)


def check_code_batch(items: Iterable, *, workers: int | None = None) -> list[CodeResult]:
    """`check_code` over many items in parallel; results in input order.

    Items are dicts of `check_code` arguments (`program`, `tests`, `mode`, optional `timeout`,
    `memory_mb`, `limits`) or `(program, tests, mode)` tuples. `workers` defaults to
    `default_workers()`; each run may use up to its `memory_mb`."""
    items = list(items)
    n = workers or default_workers()
    if n <= 1 or len(items) <= 1:
        return [_safe_call(it) for it in items]
    with ThreadPoolExecutor(max_workers=min(n, len(items)),
                            thread_name_prefix="check_code") as pool:
        return list(pool.map(_safe_call, items))


def _safe_call(item) -> CodeResult:
    try:
        return _call(item)
    except IsolationUnavailable:
        raise
    except Exception as e:
        return _unverifiable(f"bad batch item: {type(e).__name__}: {e}")
