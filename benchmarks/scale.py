"""Driver memory against input size: `synth run` with the fake engine over 100k and 1M seed
rows of about 1 KB each (jsonl, an id column), measuring the driver process's peak RSS
(VmHWM) for each. The baseline is the same run at a tenth of the size: a driver that holds
the seeds, prompts or ids grows ~10x between the two; one that streams stays flat.

Also checks that every row is there exactly once (ids read back from the shards).

    python benchmarks/scale.py [--sizes 100000 1000000] [--batch-size 256]

Prints per size: rows, seconds, driver peak RSS; the last line is
`driver_rss_growth: X` (peak RSS at the largest size over the smallest; target <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTH = str(Path(sys.executable).with_name("synth"))
ROWS_PER_FILE = 50_000
PARTS: dict[str, int] = {}
WORDS = ("river delta basin flood plain erosion sediment channel meander estuary tide current "
         "valley canyon glacier moraine aquifer spring marsh lagoon").split()


def write_seeds(folder: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(0, rows, ROWS_PER_FILE):
        with open(folder / f"part-{f // ROWS_PER_FILE:04d}.jsonl", "w") as fh:
            for i in range(f, min(rows, f + ROWS_PER_FILE)):
                text = " ".join(rng.choice(WORDS) for _ in range(150))[:1000]
                fh.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")


def peak_rss_run(args: list[str], env: dict) -> tuple[int, float, str]:
    """Run `args`; return (its peak RSS in bytes, seconds, output tail)."""
    t0 = time.time()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    peak = 0
    parts: dict[str, int] = {}  # what the peak is made of: heap, mapped files, shared memory
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
                elif line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    k = line.split(":")[0]
                    parts[k] = max(parts.get(k, 0), int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.1)
    PARTS.update(parts)
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"synth run failed ({proc.returncode}):\n{out[-3000:]}")
    return peak, time.time() - t0, out[-600:]


def check_rows(out: Path, expected: int) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    ids = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table(
        columns=["id"]).column("id")
    unique = len(pc.unique(ids))
    if len(ids) != expected or unique != expected:
        raise SystemExit(f"{out}: {len(ids)} rows, {unique} distinct, expected {expected}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="synth-scale-"))
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    env.pop("RAY_ADDRESS", None)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    peaks = {}
    try:
        for n in a.sizes:
            seeds = work / f"seeds-{n}"
            write_seeds(seeds, n)
            pipe = work / f"scale-{n}.yaml"
            pipe.write_text(json.dumps({
                "name": "scale", "seeds": {"path": str(seeds), "chunk_tokens": 0},
                "prompt": {"template": "rephrase_qa"},
                "model": {"name": "fake", "backend": "fake", "batch_size": a.batch_size},
                "sampling": {"n": 1, "max_tokens": 16},
            }))
            out = work / f"out-{n}"
            peak, secs, tail = peak_rss_run([SYNTH, "run", str(pipe), "--out", str(out)], env)
            check_rows(out, n)
            peaks[n] = peak
            print(f"rows {n}: {secs:.0f} s, {n / secs:.0f} rows/s, driver peak RSS "
                  f"{peak / 2**20:.0f} MiB (" + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in PARTS.items())
                  + f"; load average {os.getloadavg()[0]:.2f})", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(seeds, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    lo, hi = min(peaks), max(peaks)
    print(f"driver_rss_growth: {peaks[hi] / peaks[lo]:.2f}")


if __name__ == "__main__":
    main()
