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

Comparisons in the tests against a literal (`f(x) == 3`, `f(x) in ("a", "b")`) are rewritten to
go through `_literal_compare`, which only lets values whose types the program did not define
take part: an object with an `__eq__` that always returns True fails the assertion instead of
passing it. See `_trusted`.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import io
import json
import linecache
import operator
import os
import sys
import traceback
import types

REPORT_FD = 3
JOB_FD = 4  # the job file (program, tests), read and closed before the program runs
PROGRAM_FILE = "solution.py"
TESTS_FILE = "tests.py"
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class created by a `class` statement
_TRUST_BUDGET = 1_000_000  # objects visited per comparison before giving the benefit of doubt
_MAX_DETAILS = 200

# Captured at import, before any program runs, so a program rebinding builtins cannot reach
# the comparison helper through them.
_type, _id, _len, _isinstance, _getattr = type, id, len, isinstance, getattr
_CONTAINERS = (list, tuple, set, frozenset, dict)
_OPS = {
    ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne), ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b), ast.NotIn: ("not in", lambda a, b: a not in b),
}
_OP_BY_NAME = {name: fn for name, fn in _OPS.values()}


# --------------------------------------------------------------------------- literal guard


def _trusted_roots() -> tuple[str, ...]:
    """Install locations of Python and its packages: root-owned, so the program cannot add files."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


_TRUSTED_ROOTS = _trusted_roots()


def _type_is_foreign(t: type) -> bool:
    """True if `t` may have been defined by the program (so its `__eq__` cannot be trusted).

    Static (C) types cannot be created from Python code. A heap type (any `class` statement)
    is trusted only when it is the class of that name in a module loaded from Python's own
    install tree (`collections.Counter`, `fractions.Fraction`), not one the program made."""
    if not (t.__flags__ & _HEAPTYPE):
        return False
    mod = sys.modules.get(_getattr(t, "__module__", None) or "")
    if mod is None or mod.__name__ == "__main__":
        return True
    path = _getattr(mod, "__file__", None) or ""
    if not path or not os.path.realpath(path).startswith(_TRUSTED_ROOTS):
        return True
    obj = mod
    for part in (_getattr(t, "__qualname__", "") or "").split("."):
        obj = _getattr(obj, part, None)
    return obj is not t


def _trusted(value) -> bool:
    """Every object reachable through builtin containers has a type the program did not make."""
    stack, seen, budget = [value], set(), _TRUST_BUDGET
    while stack:
        budget -= 1
        if budget < 0:
            return True
        v = stack.pop()
        if _type_is_foreign(_type(v)):
            return False
        if _isinstance(v, _CONTAINERS) and _id(v) not in seen:
            seen.add(_id(v))
            if _isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                stack.extend(v)
    return True


def _literal_compare(left, op: str, right, literal_side: str):
    """`left OP right` where one side is a literal, refusing values of program-defined types."""
    other, lit = (right, left) if literal_side == "left" else (left, right)
    if not _trusted(other):
        if lit is None and op in ("==", "!="):  # `x == None` means identity for any class
            return (other is None) == (op == "==")
        raise AssertionError(
            f"comparison {op!r} between a literal of type {_type(lit).__name__} and a value of "
            f"program-defined type {_type(other).__name__!r} is not trusted"
        )
    return _OP_BY_NAME[op](left, right)


def _is_literal(node: ast.AST) -> bool:
    """An expression built only from constants, displays and operators (`"z" * 10`, `[1, -2]`)."""
    if isinstance(node, ast.Constant):
        return node.value is not Ellipsis
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(
            _is_literal(v) for v in node.values
        )
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    return False


class _LiteralCompareRewriter(ast.NodeTransformer):
    """`a OP <literal>` -> `_literal_compare(a, "OP", <literal>, "right")` (single-op compares)."""

    def __init__(self, helper: str):
        self.helper = helper

    def visit_Compare(self, node: ast.Compare):
        self.generic_visit(node)
        if len(node.ops) != 1 or type(node.ops[0]) not in _OPS:
            return node
        left, right = node.left, node.comparators[0]
        lit_l, lit_r = _is_literal(left), _is_literal(right)
        if lit_l == lit_r:  # neither side, or both sides, literal
            return node
        call = ast.Call(
            func=ast.Name(id=self.helper, ctx=ast.Load()),
            args=[left, ast.Constant(_OPS[type(node.ops[0])][0]), right,
                  ast.Constant("left" if lit_l else "right")],
            keywords=[],
        )
        return ast.copy_location(call, node)


def rewrite_tests(source: str, helper: str) -> ast.Module:
    tree = ast.parse(source, TESTS_FILE)
    tree = _LiteralCompareRewriter(helper).visit(tree)
    return ast.fix_missing_locations(tree)


# --------------------------------------------------------------------------- reporting


# The run's report key: made by the child after it was forked, sent to the fork server as the
# report's first line before any untrusted code ran; every later line carries its MAC, so a
# line the program writes to the report fd is recognised as forged (the program's failure).
_KEY = b""
_MAC_HEX = 32  # 128 bits of HMAC-SHA256


def sign(key: bytes, obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()[:_MAC_HEX].encode() + b" " + body + b"\n"


def verify(key: bytes, line: bytes) -> dict | None:
    """The event a signed report line carries, or None if its MAC or JSON is not right."""
    mac, _, body = line.partition(b" ")
    want = hmac.new(key, body, hashlib.sha256).hexdigest()[:_MAC_HEX].encode()
    if not hmac.compare_digest(mac, want):
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
            data = data[os.write(fd, data):]
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


def _statement_name(stmt: ast.stmt, source: str) -> str:
    seg = ast.get_source_segment(source, stmt) or type(stmt).__name__
    seg = " ".join(seg.split())
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
    main.__builtins__ = __builtins__
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


def _run_tests(source: str, ns: dict, workdir: str) -> None:
    helper = "__synth_literal_compare__"
    try:
        tree = rewrite_tests(source, helper)
    except SyntaxError as e:
        _report({"event": "tests_invalid", "error": _short_error(e)})
        return
    filename = os.path.join(workdir, TESTS_FILE)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # Installed after the program ran, so the program cannot have planted its own version.
    ns[helper] = _literal_compare
    sys.settrace(None)
    sys.setprofile(None)
    n_details = 0
    quiet = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    for stmt in tree.body:
        name = _statement_name(stmt, source)
        try:
            code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec",
                           dont_inherit=True)
            ns[helper] = _literal_compare
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
            if not isinstance(stmt, quiet) and n_details < _MAX_DETAILS:
                _report({"event": "test", "name": name, "passed": True})
                n_details += 1
        sys.settrace(None)
        sys.setprofile(None)


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
    ok = _run_program(job["program"], ns, job["mode"])
    if ok and job["mode"] == "stdio":
        _interpreter_exit_steps()
    _flush()
    if ok and job["mode"] == "assert":
        _run_tests(job["tests"], ns, workdir)
        _flush()
    if ok:
        _report({"event": "done"})
    os._exit(0 if ok else 1)
