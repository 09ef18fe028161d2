"""What runs inside the sandboxed child, after isolation is in place: the program, then the tests.

Stdlib only; loaded by the fork server (`sandbox.server`) before it forks, so each child
starts with it already imported. The program and tests arrive on `JOB_FD` (a read-only file
the client made: the fork server never reads them). It talks to the fork server through one
pipe (`REPORT_FD`): a first line with the run's key (written by the child before anything
untrusted runs), then one signed JSON event per line (`sign`: an HMAC of the line under that
key, so lines the program writes to the pipe are told apart and count as its failure):

    {"event": "program_ok"}                      the program ran to its end
    {"event": "program_error", "kind": ..., "error": ...}
    {"event": "test", "name": ..., "passed": ..., "error": ..., "memory": ...}
    {"event": "done"}                            every test statement ran

Assert mode runs each top-level statement of the tests on its own (in the program's
namespace), so one failing assert is reported and the next still runs. The run counts as
finished only when the signed `done` line arrives: a program that exits, calls `os._exit` or
gets killed before that is not a pass, whatever it printed.

The tests are rewritten and compiled before the program runs, so that no method of a class the
program defined decides a comparison, a membership or truth test or arithmetic in them: an
object whose `__eq__` always returns True fails the assertion instead of passing it. See
`sandbox.guard` (loaded beside this module).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import io
import linecache
import os
import sys
import traceback
import types

from _hashlib import hmac_digest as _hmac_digest
from _json import encode_basestring_ascii as _json_str

# What the harness still calls after the program ran is captured now, and its functions look
# builtins up in a private copy (a function takes its builtins from its module's globals when
# it is created): a program that rebinds `os.write`, `json.dumps`, `sys.settrace` or
# `builtins.isinstance` cannot rewrite the reports or keep tracing the tests.
__builtins__ = dict(builtins.__dict__)
_REAL_BUILTINS = builtins.__dict__
_write, _exit, _settrace, _setprofile = os.write, os._exit, sys.settrace, sys.setprofile

REPORT_FD = 3
JOB_FD = 4  # the job file (program, tests), read and closed before the program runs
PROGRAM_FILE = "solution.py"
TESTS_FILE = "tests.py"
_MAX_DETAILS = 200


def _load_guard():
    """`guard.py` beside this file: from the package in the client and the tests, by path under
    the fork server's private naming (`_synth_sandbox_<name>`) in the server."""
    if __name__.startswith("verifiers."):
        from verifiers.sandbox import guard

        return guard
    name = "_synth_sandbox_guard"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


guard = _load_guard()


# --------------------------------------------------------------------------- reporting


# The run's report key: made by the child after it was forked, sent to the fork server as the
# report's first line before any untrusted code ran; every later line carries its MAC, so a
# line the program writes to the report fd is recognised as forged (the program's failure).
_KEY = b""
_MAC_HEX = 32  # 128 bits of HMAC-SHA256


def _json_line(obj: dict) -> str:
    """`json.dumps(obj)` for the report's flat dicts (str keys; str, bool, None, int values)."""
    parts = []
    for k, v in obj.items():
        if v is True or v is False or v is None:
            text = "true" if v is True else "false" if v is False else "null"
        elif type(v) is int:
            text = int.__repr__(v)
        else:
            text = _json_str(str(v))
        parts.append(_json_str(k) + ": " + text)
    return "{" + ", ".join(parts) + "}"


def _mac(key: bytes, body: bytes) -> bytes:
    return _hmac_digest(key, body, "sha256").hex()[:_MAC_HEX].encode()


def sign(key: bytes, obj: dict) -> bytes:
    body = _json_line(obj).encode()
    return _mac(key, body) + b" " + body + b"\n"


def verify(key: bytes, line: bytes) -> dict | None:
    """The event a signed report line carries, or None if its MAC or JSON is not right."""
    import hmac
    import json

    mac, _, body = line.partition(b" ")
    if not hmac.compare_digest(mac, _mac(key, body)):
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def report_to(fd: int, key: bytes, obj: dict) -> None:
    data = sign(key, obj)
    try:
        while data:
            data = data[_write(fd, data):]
    except OSError:
        pass


def _report(obj: dict) -> None:
    report_to(REPORT_FD, _KEY, obj)


def _short_error(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-2000:]


def _print_traceback(exc: BaseException) -> None:
    """The traceback as Python would print it, minus this harness's own frame."""
    try:
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    except BaseException:
        pass


def _statement_name(stmt: ast.stmt, lines: list) -> str:
    """`line N: <source, whitespace collapsed>`; `lines` split as `ast.get_source_segment`
    splits them (once for all statements). Offsets are in UTF-8 bytes."""
    first, last = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
    try:
        if first == last:
            seg = lines[first].encode()[stmt.col_offset:stmt.end_col_offset].decode()
        else:
            seg = (lines[first].encode()[stmt.col_offset:].decode() + "".join(lines[first + 1:last])
                   + lines[last].encode()[:stmt.end_col_offset].decode())
    except (IndexError, TypeError, UnicodeDecodeError):
        seg = ""
    seg = " ".join((seg or type(stmt).__name__).split())
    return f"line {stmt.lineno}: {seg[:100]}"


# --------------------------------------------------------------------------- running


def _fresh_streams() -> None:
    """New sys.std* over fds 0-2 (the fork server's own streams are not the program's)."""
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding="utf-8", errors="surrogateescape")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding="utf-8", errors="surrogateescape")
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _flush() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass


def _fresh_main(workdir: str) -> dict:
    main = types.ModuleType("__main__")
    main.__file__ = os.path.join(workdir, PROGRAM_FILE)
    main.__builtins__ = _REAL_BUILTINS
    sys.modules["__main__"] = main
    sys.argv = [main.__file__]
    sys.path.insert(0, workdir)
    return main.__dict__


def _run_program(source: str, ns: dict, mode: str) -> bool:
    """Exec the program; report how it ended. True if the tests may run."""
    filename = ns["__file__"]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        exec(code, ns)
    except SystemExit as e:
        if mode == "stdio" and e.code in (None, 0):  # a normal way to end a stdio program
            _report({"event": "program_ok"})
            return True
        _report({"event": "program_error", "kind": "exit",
                 "error": f"SystemExit({e.code!r}) before the tests ran"})
        return False
    except MemoryError as e:
        _report({"event": "program_error", "kind": "memory", "error": _short_error(e)})
        return False
    except BaseException as e:
        _print_traceback(e)
        _report({"event": "program_error", "kind": "exception", "error": _short_error(e)})
        return False
    _report({"event": "program_ok"})
    return True


def _compile_tests(source: str, workdir: str):
    """Before the program runs (it could patch `ast`): the rewritten top-level statements, each
    as (report name, quiet, code or the compile error to raise in its turn), and what
    `guard.prepare` puts back; or the SyntaxError if the tests do not parse."""
    filename = os.path.join(workdir, TESTS_FILE)
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError) as e:
        return e
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    quiet = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    lines = ast._splitlines_no_ff(source)  # what ast.get_source_segment splits by
    heads = [(_statement_name(stmt, lines), isinstance(stmt, quiet)) for stmt in tree.body]
    plan = guard.restore_plan(tree)
    guard.import_early(plan)
    statements = []
    for (name, is_quiet), stmt in zip(heads, guard.rewrite_tests(tree).body):
        try:
            code = guard.compile_statement(stmt, filename)
        except (SyntaxError, ValueError) as e:  # `return` outside a function, say: fails later
            code = e
        statements.append((name, is_quiet, code))
    return statements, plan


def _run_tests(compiled, ns: dict) -> None:
    if isinstance(compiled, BaseException):
        _report({"event": "tests_invalid", "error": _short_error(compiled)})
        return
    statements, plan = compiled
    guard.prepare(ns, plan)
    _settrace(None)
    _setprofile(None)
    n_details = 0
    for name, quiet, code in statements:
        try:
            guard.before_statement(ns)
            if isinstance(code, BaseException):
                raise code
            exec(code, ns)
        except MemoryError as e:
            _report({"event": "test", "name": name, "passed": False, "memory": True,
                     "error": _short_error(e)})
            n_details += 1
        except BaseException as e:  # AssertionError, any exception, even SystemExit: a fail
            _print_traceback(e)
            _report({"event": "test", "name": name, "passed": False, "error": _short_error(e)})
            n_details += 1
        else:
            if not quiet and n_details < _MAX_DETAILS:
                _report({"event": "test", "name": name, "passed": True})
                n_details += 1
        _settrace(None)
        _setprofile(None)


def _interpreter_exit_steps() -> None:
    """What a normal interpreter exit does: wait for non-daemon threads, run atexit hooks."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException as e:
        _print_traceback(e)


def _read_job(fd: int) -> dict:
    """The program and tests, from the read-only file the client made (fd `JOB_FD`)."""
    import json

    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def run(limits: dict, workdir: str, key: bytes) -> None:
    """Run the job's program (and tests) in this process, report, and `os._exit`."""
    global _KEY
    _KEY = key
    job = {**limits, **_read_job(JOB_FD)}
    _fresh_streams()
    ns = _fresh_main(workdir)
    compiled = _compile_tests(job["tests"], workdir) if job["mode"] == "assert" else None
    ok = _run_program(job["program"], ns, job["mode"])
    if ok and job["mode"] == "stdio":
        _interpreter_exit_steps()
    _flush()
    if ok and job["mode"] == "assert":
        _run_tests(compiled, ns)
        _flush()
    if ok:
        _report({"event": "done"})
    _exit(0 if ok else 1)
