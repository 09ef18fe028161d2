"""What each engine actor reserves on the cluster: a core, a GPU, or a placement group.

A vLLM engine with `tensor_parallel_size` x `pipeline_parallel_size` = N > 1 GPUs runs one
worker process per GPU. Under Ray those workers are Ray actors that vLLM starts itself
(`distributed_executor_backend="ray"`): when the engine is built inside an actor that was
scheduled in a placement group, vLLM uses that group (`ray.util.get_current_placement_group()`,
vllm/v1/executor/ray_utils.py `initialize_ray_cluster`), requires at most one GPU per bundle,
and puts one worker in each GPU bundle with `num_cpus=0`. So an engine actor of N GPUs gets
a placement group of N bundles `{"GPU": 1, "CPU": 1}` and itself asks for one CPU and no GPU
(Ray Data's `vLLMEngineStage` reserves the same way). The bundles are packed on one node
(`STRICT_PACK`) for tensor parallelism alone; with pipeline parallelism the stages may span
nodes (`PACK`), each stage's tensor-parallel group still fitting a node.

`engine_placement` is pure (unit-tested without GPUs); `actor_options` creates the group on
a running Ray cluster and returns the options for `ActorClass.options(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.errors import SynthError


@dataclass(frozen=True)
class EnginePlacement:
    """The reservation of one engine actor.

    `actor_options`: `num_cpus`/`num_gpus` for the actor itself. `engine_kwargs`: the
    engine's kwargs with `distributed_executor_backend` set when a placement group is used.
    `bundles`/`strategy`: the placement group (empty: none; the actor is scheduled as usual).
    """

    actor_options: dict
    engine_kwargs: dict
    bundles: tuple = ()
    strategy: str | None = None
    gpus: int = 0  # GPUs the engine holds in all
    notes: tuple = field(default=(), compare=False)

    @property
    def uses_placement_group(self) -> bool:
        return bool(self.bundles)


def _size(engine_kwargs: dict, key: str) -> int:
    v = engine_kwargs.get(key, 1)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SynthError(f"model.engine_kwargs.{key} must be a whole number >= 1, got {v!r}")
    return v


def engine_placement(backend: str, engine_kwargs: dict, node_gpus: list[float] | tuple = (),
                     *, engines: int = 1) -> EnginePlacement:
    """The reservation for each of `engines` engine actors of `backend` on a cluster whose
    alive nodes have `node_gpus` GPUs each (empty or all zero: no GPUs).

    - openai, hybrid, fake: no reservation (`num_cpus=0`), as before.
    - vllm without GPUs (the CPU build): one core; tensor/pipeline parallelism, if asked,
      is vLLM's own (processes inside the actor).
    - vllm on 1 GPU: one core and one GPU, no placement group.
    - vllm on N = TP x PP > 1 GPUs (or `distributed_executor_backend: ray`): a placement
      group of N bundles `{"GPU": 1, "CPU": 1}`, `STRICT_PACK` when PP = 1 (all on one node),
      else `PACK`; the actor asks for 1 CPU, 0 GPUs; `distributed_executor_backend` = "ray".
    - vllm with `distributed_executor_backend` "mp" (or "uni") on N GPUs: no placement group;
      the actor itself holds the N GPUs, so they must be on one node.

    Raises `SynthError` when the cluster can never hold one engine (too few GPUs in all, or on
    the largest node for what must share a node), or all `engines` at once.
    """
    if backend != "vllm":
        return EnginePlacement({"num_cpus": 0}, dict(engine_kwargs))
    kwargs = dict(engine_kwargs)
    tp = _size(kwargs, "tensor_parallel_size")
    pp = _size(kwargs, "pipeline_parallel_size")
    world = tp * pp
    gpus = [float(g) for g in node_gpus if g]
    total, largest = int(sum(gpus)), int(max(gpus, default=0))
    if total == 0:
        return EnginePlacement({"num_cpus": 1, "num_gpus": 0}, kwargs,
                               notes=("no GPUs in the cluster: the engine runs on CPU",))
    sizes = f"tensor_parallel_size {tp} x pipeline_parallel_size {pp}"
    if world > total:
        raise SynthError(f"model.engine_kwargs {sizes} needs {world} GPUs per engine; the cluster "
                         f"has {total} ({len(gpus)} GPU nodes); lower them or add GPU nodes")
    if engines * world > total:
        raise SynthError(f"model.concurrency {engines} engines x {world} GPUs needs {engines * world} "
                         f"GPUs; the cluster has {total}; lower model.concurrency to "
                         f"{total // world} or add GPU nodes")
    if tp > largest:
        raise SynthError(f"model.engine_kwargs.tensor_parallel_size {tp} needs {tp} GPUs on one node; "
                         f"the largest node has {largest}; lower it (and raise "
                         "pipeline_parallel_size to span nodes)")
    executor = kwargs.get("distributed_executor_backend") or ("ray" if world > 1 else "uni")
    if executor != "ray":
        if world > largest:
            raise SynthError(f"model.engine_kwargs {sizes} with distributed_executor_backend "
                             f"{executor!r} needs {world} GPUs on one node; the largest has "
                             f"{largest}; use distributed_executor_backend: ray to span nodes")
        return EnginePlacement({"num_cpus": 1, "num_gpus": world}, kwargs, gpus=world)
    kwargs["distributed_executor_backend"] = "ray"
    return EnginePlacement(
        actor_options={"num_cpus": 1, "num_gpus": 0},
        engine_kwargs=kwargs,
        bundles=tuple({"GPU": 1, "CPU": 1} for _ in range(world)),
        strategy="STRICT_PACK" if pp == 1 else "PACK",
        gpus=world,
    )


def node_gpus() -> list[float]:
    """GPUs of each alive node of the connected Ray cluster."""
    import ray

    return [n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")]


def actor_options(placement: EnginePlacement, *, name: str | None = None,
                  timeout_s: float = 600.0) -> dict:
    """Options for `ActorClass.options(...)` of one engine actor: `placement.actor_options`,
    plus, when it needs a placement group, a `PlacementGroupSchedulingStrategy` over a group
    created now (or the existing group called `name`, so a restarted driver step or a second
    call reuses it) and ready (its GPUs reserved).

    The group lives as long as the driver (Ray removes it with the job); a restarted actor
    comes back into it. Raises `SynthError` when the group is not ready in `timeout_s` (the
    GPUs are held by something else), removing a group it created.
    """
    opts = dict(placement.actor_options)
    if not placement.uses_placement_group:
        return opts
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg, made = None, False
    if name:
        try:
            pg = ray.util.get_placement_group(name)
        except ValueError:  # no group of that name yet
            pg = None
    if pg is None:
        pg = placement_group(list(placement.bundles), strategy=placement.strategy, name=name or "")
        made = True
    if not pg.wait(timeout_s):
        if made:
            remove_placement_group(pg)
        raise SynthError(f"could not reserve {len(placement.bundles)} bundles "
                         f"{placement.bundles[0]} ({placement.strategy}) for an engine in "
                         f"{timeout_s:.0f}s; other work holds the GPUs (see `ray status`)")
    # capture_child_tasks: what the engine starts (vLLM's worker actors) stays in the group.
    opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
        placement_group=pg, placement_group_capture_child_tasks=True)
    return opts
