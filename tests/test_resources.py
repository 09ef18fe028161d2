"""Engine reservations (synth/backends/resources.py): the plan without GPUs, and the placement
group mechanics on the real (CPU) Ray runtime."""

from __future__ import annotations

import pytest

from synth.backends.resources import EnginePlacement, actor_options, engine_placement
from synth.errors import SynthError

GPU = {"GPU": 1, "CPU": 1}


@pytest.mark.parametrize("backend,kwargs,nodes,actor,bundles,strategy,executor", [
    # not vLLM: nothing reserved, whatever the cluster
    ("fake", {}, [8], {"num_cpus": 0}, 0, None, None),
    ("openai", {"tensor_parallel_size": 8}, [], {"num_cpus": 0}, 0, None, None),
    ("hybrid", {}, [0, 0], {"num_cpus": 0}, 0, None, None),
    # vLLM on a CPU-only cluster (this machine): one core
    ("vllm", {}, [], {"num_cpus": 1, "num_gpus": 0}, 0, None, None),
    ("vllm", {"tensor_parallel_size": 2}, [0, 0], {"num_cpus": 1, "num_gpus": 0}, 0, None, None),
    # one GPU: plain resources
    ("vllm", {}, [1], {"num_cpus": 1, "num_gpus": 1}, 0, None, None),
    ("vllm", {"tensor_parallel_size": 1, "pipeline_parallel_size": 1}, [8, 8],
     {"num_cpus": 1, "num_gpus": 1}, 0, None, None),
    # a 70B teacher: TP=8 on one 8-GPU node
    ("vllm", {"tensor_parallel_size": 8}, [8], {"num_cpus": 1, "num_gpus": 0}, 8, "STRICT_PACK", "ray"),
    ("vllm", {"tensor_parallel_size": 2}, [4, 4], {"num_cpus": 1, "num_gpus": 0}, 2, "STRICT_PACK", "ray"),
    # pipeline stages across nodes: PACK
    ("vllm", {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}, [8, 8],
     {"num_cpus": 1, "num_gpus": 0}, 16, "PACK", "ray"),
    ("vllm", {"pipeline_parallel_size": 4}, [1, 1, 1, 1], {"num_cpus": 1, "num_gpus": 0}, 4, "PACK", "ray"),
    # explicit ray executor on one GPU: a group of one bundle
    ("vllm", {"distributed_executor_backend": "ray"}, [2], {"num_cpus": 1, "num_gpus": 0}, 1,
     "STRICT_PACK", "ray"),
    # explicit mp executor: the actor holds the GPUs itself
    ("vllm", {"tensor_parallel_size": 4, "distributed_executor_backend": "mp"}, [8],
     {"num_cpus": 1, "num_gpus": 4}, 0, None, "mp"),
])
def test_engine_placement(backend, kwargs, nodes, actor, bundles, strategy, executor):
    p = engine_placement(backend, kwargs, nodes)
    assert p.actor_options == actor
    assert p.bundles == tuple(GPU for _ in range(bundles))
    assert p.uses_placement_group == bool(bundles)
    assert p.strategy == strategy
    assert p.engine_kwargs.get("distributed_executor_backend") == executor
    for k, v in kwargs.items():
        assert p.engine_kwargs[k] == v  # the rest passes through unchanged
    assert "distributed_executor_backend" not in kwargs or kwargs == p.engine_kwargs
    if backend == "vllm" and any(nodes):
        assert p.gpus == kwargs.get("tensor_parallel_size", 1) * kwargs.get("pipeline_parallel_size", 1)


@pytest.mark.parametrize("kwargs,nodes,engines,needle", [
    ({"tensor_parallel_size": 8}, [4], 1, "needs 8 GPUs per engine; the cluster has 4"),
    ({"tensor_parallel_size": 8}, [4, 4], 1, "needs 8 GPUs on one node; the largest node has 4"),
    ({"tensor_parallel_size": 4, "pipeline_parallel_size": 4}, [8], 1, "needs 16 GPUs per engine"),
    ({"tensor_parallel_size": 8}, [8], 2, "2 engines x 8 GPUs needs 16 GPUs; the cluster has 8; "
                                          "lower model.concurrency to 1"),
    ({"tensor_parallel_size": 4, "distributed_executor_backend": "mp"}, [2, 2], 1,
     "largest node has 2"),
    ({"tensor_parallel_size": 2, "pipeline_parallel_size": 2, "distributed_executor_backend": "mp"},
     [2, 2], 1, "use distributed_executor_backend: ray to span nodes"),
    ({"tensor_parallel_size": 0}, [8], 1, "tensor_parallel_size must be a whole number >= 1, got 0"),
    ({"pipeline_parallel_size": "2"}, [8], 1, "pipeline_parallel_size must be a whole number"),
    ({"tensor_parallel_size": True}, [8], 1, "tensor_parallel_size must be a whole number"),
])
def test_engine_placement_impossible(kwargs, nodes, engines, needle):
    with pytest.raises(SynthError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        engine_placement("vllm", kwargs, nodes, engines=engines)


def test_engine_placement_does_not_change_its_input():
    kwargs = {"tensor_parallel_size": 2}
    engine_placement("vllm", kwargs, [2])
    assert kwargs == {"tensor_parallel_size": 2}


def test_plain_options_need_no_ray():
    assert actor_options(engine_placement("vllm", {}, [1])) == {"num_cpus": 1, "num_gpus": 1}


def test_actor_runs_in_its_placement_group(ray_session):
    """The mechanics on this CPU cluster: a group of tiny CPU bundles (a GPU bundle cannot be
    placed here), an actor scheduled into it sees it as its current group (what vLLM reads),
    and a second call by name reuses the group."""
    ray = ray_session
    plan = EnginePlacement(actor_options={"num_cpus": 0}, engine_kwargs={},
                           bundles=({"CPU": 0.01}, {"CPU": 0.01}), strategy="STRICT_PACK")
    opts = actor_options(plan, name="synth-test-pg", timeout_s=60)
    pg = opts["scheduling_strategy"].placement_group
    assert opts["scheduling_strategy"].placement_group_capture_child_tasks is True

    @ray.remote
    class Probe:
        def group(self):
            from ray.util import get_current_placement_group

            g = get_current_placement_group()
            return g.id.hex() if g else None

    try:
        probe = Probe.options(**opts).remote()
        assert ray.get(probe.group.remote(), timeout=60) == pg.id.hex()
        again = actor_options(plan, name="synth-test-pg", timeout_s=60)
        assert again["scheduling_strategy"].placement_group.id == pg.id
        ray.kill(probe)
    finally:
        ray.util.remove_placement_group(pg)


def test_unplaceable_group_is_a_clear_error_and_removed(ray_session):
    ray = ray_session
    plan = engine_placement("vllm", {"tensor_parallel_size": 2}, [2])  # no GPU on this cluster
    before = set(ray.util.placement_group_table())
    with pytest.raises(SynthError, match=r"could not reserve 2 bundles .*STRICT_PACK.* in 1s"):
        actor_options(plan, timeout_s=1)
    created = [v for k, v in ray.util.placement_group_table().items() if k not in before]
    assert created and all(v["state"] == "REMOVED" for v in created)
