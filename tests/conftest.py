"""Shared fixtures: one Ray runtime and one embedded model per test session.

Engine actors live as long as the Ray driver (this pytest process), so every in-process
pipeline run with the same model spec reuses one loaded vLLM engine (see synth.backends.pool).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def ray_session():
    """The real Ray runtime, started once (a local cluster on this machine)."""
    from synth.ray_runtime import init_ray

    init_ray(None)
    import ray

    yield ray
    from synth.backends.pool import forget_engines

    forget_engines()
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny tensors (the hybrid model, NVFP4): one intra-op thread is faster
    (more threads only add sync overhead) and immune to a busy 2-core machine. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_path() -> str:
    """The embedded default model as a local HF folder (pulled once, then cached)."""
    from synth.models import DEFAULT_MODEL, pull

    return str(pull(DEFAULT_MODEL))


def write_pipeline(path: Path, **sections) -> Path:
    """Write a pipeline YAML file from keyword sections; returns its path."""
    import yaml

    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def lose_unit(shard: Path) -> None:
    """Undo one finished unit of a run, as if it had never been written: its shard, its
    rejects and its completion marker (`part-<unit>-<p0>.parquet`, `_completions/<unit>-<p0>.json`)."""
    out = shard.parent
    shard.unlink()
    (out / "rejects" / shard.name).unlink(missing_ok=True)
    (out / "_completions" / (shard.stem.split("-", 1)[1] + ".json")).unlink()
