"""Sandboxed code execution throughput, root and rootless, vs a plain subprocess per program.

    python benchmarks/sandbox.py [--programs 300] [--workers N] [--rounds 3]

All sides run the same tiny assert-mode programs (a function plus two asserts) with the same
number of parallel workers (default: `check_code_batch`'s own, 1.5 per CPU). The sandbox sides
are `check_code_batch`: each program gets its own PID/network/mount/IPC namespaces, a root filesystem of read-only
binds, rlimits, a seccomp filter and, as root, cgroups and a uid of its own; rootless (the
checker runs as an ordinary user, uid 65534 here: started from a root run, in a process of
its own with a world-readable copy of `verifiers`), the fork server lives in a user namespace
and each run drops every capability. The baseline is `subprocess.run([sys.executable, "-c",
program + tests])` with no isolation at all: one fresh interpreter per program. Server
start-up is excluded (one warm-up check first). The sides alternate in `--rounds` chunks so
that load from other work on the machine falls on all of them. Run as an ordinary user, only
the rootless side is measured. The last line is `executions_per_s: X`, the slower of the
sandbox sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifiers.code import check_code, check_code_batch, default_workers  # noqa: E402


def programs(n: int) -> list[tuple[str, str]]:
    return [(f"def f(x):\n    return x * {i} + 1\n",
             f"assert f(2) == {2 * i + 1}\nassert f(0) == 1\n") for i in range(n)]


def run_sandbox(progs, workers: int) -> tuple[float, int]:
    items = [dict(program=p, tests=t, mode="assert") for p, t in progs]
    t = time.perf_counter()
    results = check_code_batch(items, workers=workers)
    return time.perf_counter() - t, sum(r.verdict == "passed" for r in results)


def run_plain(progs, workers: int) -> tuple[float, int]:
    def one(pt):
        p, tests = pt
        return subprocess.run([sys.executable, "-c", p + tests], capture_output=True,
                              timeout=60).returncode == 0

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = sum(pool.map(one, progs))
    return time.perf_counter() - t, ok


class _Rootless:
    """`check_code_batch` as uid 65534, in a process of its own (`--serve`), chunk by chunk."""

    def __init__(self, n: int, workers: int):
        from tests.rootless import NOBODY, become, env_for, python_for, stage

        python = python_for(NOBODY)
        if python is None:
            raise SystemExit("no Python interpreter that uid 65534 can run")
        self.work = stage([Path(__file__)])
        self.proc = subprocess.Popen(
            [python, str(self.work / "benchmarks" / Path(__file__).name), "--serve",
             "--programs", str(n), "--workers", str(workers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self.work,
            env=env_for(self.work), preexec_fn=become(NOBODY))
        self.hello = json.loads(self.proc.stdout.readline())

    def __call__(self, start: int, step: int) -> tuple[float, int]:
        self.proc.stdin.write(json.dumps({"start": start, "step": step}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return out["s"], out["ok"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)


def serve(progs, workers: int) -> None:
    """The rootless side's process: warm up, say which isolation held, then time chunks."""
    warm = check_code(*progs[0], mode="assert")
    print(json.dumps({"verdict": warm.verdict, "isolation": dict(warm.isolation)}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        dt, ok = run_sandbox(progs[job["start"]::job["step"]], workers)
        print(json.dumps({"s": dt, "ok": ok}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=default_workers(),
                    help="runs in flight on every side (default: check_code_batch's own)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations between the sides")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    progs = programs(args.programs)
    if args.serve:
        return serve(progs, args.workers)

    print(f"machine: {os.cpu_count()} CPUs, {args.workers} workers, {args.programs} programs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sides = {"plain": run_plain}
    rootless = None
    if os.geteuid() == 0:
        warm = check_code(*progs[0], mode="assert")  # starts the fork server
        assert warm.verdict == "passed", warm
        print("root isolation: " + ", ".join(f"{k}={v}" for k, v in warm.isolation.items()))
        sides["root"] = run_sandbox
        rootless = _Rootless(len(progs), args.workers)
        assert rootless.hello["verdict"] == "passed", rootless.hello
        print("rootless isolation: " + ", ".join(
            f"{k}={v}" for k, v in rootless.hello["isolation"].items()))
        sides["rootless"] = None  # `rootless(round, rounds)`: its own process runs the slice
    else:
        warm = check_code(*progs[0], mode="assert")
        assert warm.verdict == "passed", warm
        print("rootless isolation: " + ", ".join(f"{k}={v}" for k, v in warm.isolation.items()))
        sides["rootless"] = run_sandbox

    # Alternate the sides in rounds, so load from anything else on the machine falls on all.
    totals = {name: [0.0, 0] for name in sides}
    rounds = max(1, min(args.rounds, len(progs)))
    try:
        for r in range(rounds):
            chunk = progs[r::rounds]
            for name, fn in sides.items():
                if name == "rootless" and rootless is not None:
                    dt, ok = rootless(r, rounds)
                else:
                    dt, ok = fn(chunk, args.workers)
                totals[name][0] += dt
                totals[name][1] += ok
    finally:
        if rootless is not None:
            rootless.close()
    rates = {name: len(progs) / t for name, (t, _) in totals.items()}
    print(f"plain subprocess.run per program (no isolation): {rates['plain']:.1f} executions/s "
          f"({totals['plain'][1]} passed)")
    for name in ("root", "rootless"):
        if name in rates:
            print(f"synth sandbox, {name} (check_code_batch): {rates[name]:.1f} executions/s "
                  f"({totals[name][1]} passed), {rates[name] / rates['plain']:.2f}x plain")
    slower = min(rate for name, rate in rates.items() if name != "plain")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"executions_per_s: {slower:.1f}")


if __name__ == "__main__":
    main()
