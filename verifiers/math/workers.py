"""Running checks: the in-process stage, SymPy worker processes with hard timeouts (a
worker that overruns is killed), the verdict cache, and `check_math` / `check_math_batch`."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .compare import CORRECT, UNVERIFIABLE, _decide
from .exact import _ExactEngine
from .extract import MAX_ANSWER_CHARS, _extract, _Unbalanced
from .normalize import normalize_answer
from .parse import _parse_cached
from .sympy_engine import _points_table, _SympyEngine

STARTUP_TIMEOUT = 60.0  # a worker must import SymPy within this (not charged to a check)


@dataclass(frozen=True)
class MathResult:
    """Outcome of one check. `predicted` is the extracted answer and `reference` the gold
    answer, both normalized the same way; `reason` says which rule decided."""

    verdict: str  # "correct" | "incorrect" | "unverifiable"
    predicted: str | None
    reference: str
    reason: str

    @property
    def correct(self) -> bool:
        return self.verdict == CORRECT


# ------------------------------------------------------------------ the in-process stage


def _text(x) -> str | None:
    """A response or reference as text: bytes as UTF-8, None as "", anything else by str().
    None when it has none (its str() raised, e.g. an int of more than 4300 digits)."""
    if isinstance(x, str):
        return x
    if x is None:
        return ""
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("utf-8", "replace")
    try:
        return str(x)
    except Exception:
        return None


def _local_stage(response, reference) -> MathResult | tuple[str, str]:
    """Everything that runs in the calling process: a result, or the normalized pair for
    the SymPy worker."""
    response, reference = _text(response), _text(reference)
    if reference is None:
        return MathResult(UNVERIFIABLE, None, "", "reference is not text")
    if len(reference) > 4 * MAX_ANSWER_CHARS:
        return MathResult(UNVERIFIABLE, None, reference[:200], "reference too long")
    ref = normalize_answer(reference)
    if response is None:
        return MathResult(UNVERIFIABLE, None, ref, "response is not text")
    try:
        raw = _extract(response)
    except _Unbalanced:
        return MathResult(UNVERIFIABLE, None, ref, "unbalanced braces after \\boxed")
    if raw is None:
        return MathResult(UNVERIFIABLE, None, ref, "no final answer found")
    if len(raw) > MAX_ANSWER_CHARS:
        return MathResult(UNVERIFIABLE, None, ref, "answer too long")
    pred = normalize_answer(raw)
    if not pred:
        return MathResult(UNVERIFIABLE, pred, ref, "empty answer")
    if not ref:
        return MathResult(UNVERIFIABLE, pred, ref, "empty reference")
    try:
        verdict, reason = _decide(pred, ref, _ExactEngine())
    except RecursionError:  # parse trees are depth-capped; this is the last line of defence
        return MathResult(UNVERIFIABLE, pred, ref, "expression nested too deeply")
    if verdict is None:
        return pred, ref
    return MathResult(verdict, pred, ref, reason)


def _safe(fn, reference):
    try:
        return fn()
    except Exception as e:  # never raise on untrusted input
        ref = (_text(reference) or "")[:200]
        return MathResult(UNVERIFIABLE, None, ref, f"internal error: {type(e).__name__}: {e}"[:300])


# ------------------------------------------------------------------ worker processes

# A worker loads this package by path under a private name (`_synth_math`; its modules
# import each other relatively), so it needs no `verifiers` package on its sys.path.
_BOOT = (
    "import sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "import importlib.util\n"
    "spec = importlib.util.spec_from_file_location('_synth_math', sys.argv[1] + '/__init__.py',\n"
    "                                              submodule_search_locations=[sys.argv[1]])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod.workers._worker_main()\n"
)


def _watch_parent() -> None:
    """Exit when the parent process goes away (a busy worker would not see stdin close)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


_WARM_UP = [("3.14", "pi"), ("\\sec^2 y", "\\tan^2 y + 1"), ("y = \\sqrt{2} x", "y - sqrt(2)*x = 0"),
            ("e^{2x}", "exp(2*x)"), ("\\ln 2 + \\arctan x", "log(2) + atan(x)"), ("3+4i", "3 + 4*I"),
            ("x > \\sqrt{3}", "sqrt(3) < x"), ("\\lfloor x \\rfloor + |x|", "floor(x) + Abs(x)")]


def _worker_main() -> None:
    """Serve JSON-line requests {"p": pred, "r": ref} on stdin; answer {"v", "why"}."""
    # Not PR_SET_PDEATHSIG: it fires when the creating *thread* exits, and batches create
    # workers from short-lived threads.
    threading.Thread(target=_watch_parent, daemon=True).start()
    try:
        import resource
        cap = 2 << 30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except Exception:
        pass
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, not into the protocol
    _points_table()
    for pred, ref in _WARM_UP:  # load SymPy's lazy parts now: start-up is not charged to a check
        try:
            _decide(pred, ref, _SympyEngine())
        except Exception:
            pass
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            verdict, reason = _decide(req["p"], req["r"], _SympyEngine())
            if verdict is None:
                verdict, reason = UNVERIFIABLE, "undecided"
        except RecursionError:
            verdict, reason = UNVERIFIABLE, "expression nested too deeply"
        except MemoryError:
            verdict, reason = UNVERIFIABLE, "out of memory"
        except Exception as e:
            verdict, reason = UNVERIFIABLE, f"sympy error: {type(e).__name__}: {e}"[:300]
        out.write(json.dumps({"v": verdict, "why": reason}).encode() + b"\n")
        out.flush()


class _WorkerDied(Exception):
    pass


class _Worker:
    """One SymPy worker process, spoken to over pipes; killed when a check overruns."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, os.path.dirname(os.path.abspath(__file__))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True, start_new_session=True)
        self.owner = os.getpid()
        self.buf = b""
        self.ready = False

    def _readline(self, deadline: float) -> bytes | None:
        """The next line, None at the deadline; _WorkerDied if the process is gone."""
        import select

        fd = self.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerDied
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def check(self, pred: str, ref: str, timeout: float) -> tuple[str, str] | None:
        """(verdict, reason), or None if the worker overran `timeout`; _WorkerDied if it
        was gone or died on this request."""
        if not self.ready:
            if self._readline(time.monotonic() + STARTUP_TIMEOUT) is None:
                raise _WorkerDied
            self.ready = True
        try:
            self.proc.stdin.write(json.dumps({"p": pred, "r": ref}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise _WorkerDied from None
        line = self._readline(time.monotonic() + timeout)
        if line is None:
            return None
        msg = json.loads(line)
        return msg["v"], msg["why"]

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class _Pool:
    """A few persistent workers, shared by all threads; a worker that overruns is killed
    and replaced. Bounded: at most `limit` live workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()
        self.limit = max(4, 2 * (os.cpu_count() or 1))
        self.slots = threading.BoundedSemaphore(self.limit)

    def _reset_after_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child must not share its parent's pipes
            self.idle, self.pid = [], os.getpid()
            self.slots = threading.BoundedSemaphore(self.limit)

    def acquire(self) -> _Worker:
        with self.lock:
            self._reset_after_fork()
            slots = self.slots
        slots.acquire()
        with self.lock:
            if self.idle:
                return self.idle.pop()
        try:
            return _Worker()
        except BaseException:
            slots.release()
            raise

    def release(self, w: _Worker) -> None:
        with self.lock:
            if w.owner == os.getpid() == self.pid:
                self.idle.append(w)
                self.slots.release()
                return
        w.kill()

    def discard(self, w: _Worker) -> None:
        """Kill an overrunning worker and start its replacement in the background."""
        w.kill()
        with self.lock:
            if w.owner != os.getpid() or self.pid != os.getpid():
                return
            try:
                self.idle.append(_Worker())
            except Exception:
                pass
            self.slots.release()

    def shutdown(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for w in idle:
            if w.owner == os.getpid():
                w.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)

_CACHE: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 65536


def _cache_get(key):
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
        return hit


def _cache_put(key, value) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = value
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def _clear_caches() -> None:
    """Forget cached verdicts and parses (benchmarks time cold checks)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _parse_cached.cache_clear()


def _run(worker: _Worker | None, pred: str, ref: str, timeout: float) -> tuple[tuple[str, str], _Worker | None]:
    """Check one pair on `worker` (or a pooled one). Returns (verdict, reason) and the
    worker, still usable, or None if it was killed. A worker found dead is replaced once."""
    for _ in range(2):
        if worker is None:
            try:
                worker = _POOL.acquire()
            except Exception as e:
                return (UNVERIFIABLE, f"math worker unavailable: {e}"), None
        try:
            out = worker.check(pred, ref, timeout)
        except Exception:  # died (or spoke garbage): replace it and try once more
            _POOL.discard(worker)
            worker = None
            continue
        if out is None:
            _POOL.discard(worker)
            return (UNVERIFIABLE, f"timed out after {timeout:g}s"), None
        _cache_put((pred, ref), out)
        return out, worker
    return (UNVERIFIABLE, "math worker died on this input"), None


def _remote(pred: str, ref: str, timeout: float) -> tuple[str, str]:
    hit = _cache_get((pred, ref))
    if hit is not None:
        return hit
    out, worker = _run(None, pred, ref, timeout)
    if worker is not None:
        _POOL.release(worker)
    return out


# ----------------------------------------------------------------------------- the API


def _seconds(timeout) -> float:
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        return 5.0
    return min(max(t, 0.01), 3600.0) if t == t else 5.0


def check_math(response: str, reference: str, *, timeout: float = 5.0) -> MathResult:
    """Judge the final answer in `response` against the gold answer `reference`.

    Never raises. `timeout` (seconds) bounds the SymPy stage of the check; an overrun kills
    that worker process and the result is `unverifiable`. Safe to call from any thread."""
    timeout = _seconds(timeout)

    def run():
        stage = _local_stage(response, reference)
        if isinstance(stage, MathResult):
            return stage
        pred, ref = stage
        verdict, reason = _remote(pred, ref, timeout)
        return MathResult(verdict, pred, ref, reason)

    return _safe(run, reference)


def check_math_batch(pairs, *, workers: int | None = None, timeout: float = 5.0) -> list[MathResult]:
    """`check_math` over (response, reference) pairs, in order. The cheap exact stage runs
    here; pairs that need SymPy are spread over `workers` worker processes (default: one
    per CPU). Same results as calling `check_math` on each pair."""
    pairs, timeout = list(pairs), _seconds(timeout)
    results: list[MathResult | None] = [None] * len(pairs)
    pending: dict[tuple[str, str], list[int]] = {}
    for i, pair in enumerate(pairs):
        try:
            response, reference = pair
        except Exception:
            results[i] = MathResult(UNVERIFIABLE, None, "", "not a (response, reference) pair")
            continue
        stage = _safe(lambda resp=response, ref=reference: _local_stage(resp, ref), reference)
        if isinstance(stage, MathResult):
            results[i] = stage
            continue
        hit = _cache_get(stage)
        if hit is not None:
            results[i] = MathResult(hit[0], stage[0], stage[1], hit[1])
        else:
            pending.setdefault(stage, []).append(i)

    keys = list(pending)
    try:
        asked = int(workers) if workers else 0
    except (TypeError, ValueError, OverflowError):
        asked = 0
    n = max(1, min(asked or os.cpu_count() or 1, len(keys)))
    lock = threading.Lock()
    todo = iter(keys)

    def drain() -> None:
        w = None
        try:
            while True:
                with lock:
                    key = next(todo, None)
                if key is None:
                    return
                (verdict, reason), w = _run(w, key[0], key[1], timeout)
                for i in pending[key]:
                    results[i] = MathResult(verdict, key[0], key[1], reason)
        finally:
            if w is not None:
                _POOL.release(w)

    if keys:
        threads = [threading.Thread(target=drain, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [r if r is not None else MathResult(UNVERIFIABLE, None, "", "not checked") for r in results]
