"""Engine actors: long-lived Ray actors, one engine each, shared by every run of a driver.

Ray Data's actor pool (see `synth.backends.generate`) feeds batches to these actors. Keeping the
engines in named actors of their own, rather than inside the Ray Data pool, means one loaded
engine serves many runs in the same driver process (a test session, a notebook, a chain of
pipelines in `make full`) instead of paying the engine start (~35 s here) per run. Actors are
owned by the driver and die with it; another driver on the same cluster gets its own.

An engine actor that dies (killed, out of memory, its vLLM engine gone) is restarted by Ray
(`max_restarts=-1`); the call it was running fails with `RayActorError`, and
`synth.backends.generate.generate_table` sends that batch again once the actor is back.
"""

from __future__ import annotations

import functools
import os

from synth.backends.base import EngineSpec

NAMESPACE = "synth"


def engine_class(backend: str):
    if backend == "vllm":
        from synth.backends.vllm_engine import VLLMEngine

        return VLLMEngine
    if backend == "openai":
        from synth.backends.openai_engine import OpenAIEngine

        return OpenAIEngine
    if backend == "hybrid":
        from synth.backends.hybrid_engine import HybridEngine

        return HybridEngine
    if backend == "fake":
        from synth.backends.fake_engine import FakeEngine

        return FakeEngine
    raise ValueError(f"unknown backend {backend!r}")


# Engine settings read from the environment; the driver's values reach engine actors on every
# node (a node's own environment at `ray start` would apply otherwise).
ENGINE_ENV = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_LOGGING_LEVEL",
              "SYNTH_FAKE_COUNT_FILE", "HF_HUB_OFFLINE")


def _engine_env() -> dict:
    return {k: os.environ[k] for k in ENGINE_ENV if k in os.environ}


# Calls an engine actor serves at once: enough for every batch a run keeps in flight
# (model.in_flight per engine, from its GenerateUnit worker). Sync engines run each
# call in a thread of their own (SYNC_CALLS threads; beyond that, calls wait their turn).
ACTOR_CALLS = 1000
SYNC_CALLS = 64


class EngineHost:
    """The body of an engine actor: builds the backend's engine once, tags results with the node.

    An async actor: several `generate` calls (batches from several Ray Data workers) are in
    flight at once. The vLLM engine is asynchronous itself (`generate_async`): every prompt of
    every call is one request in its continuously batched engine. The other engines are
    synchronous; they run in a thread, one call at a time unless they declare
    `thread_safe = True` (the openai engine, whose one shared thread pool bounds the requests
    in flight across all calls)."""

    def __init__(self, backend: str, model: str, engine_kwargs: dict, extra: dict):
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        import ray

        self.engine = engine_class(backend)(model, engine_kwargs, **extra)
        self.worker = ray.util.get_node_ip_address()
        self.is_async = getattr(self.engine, "is_async", False)
        self.lock = None if getattr(self.engine, "thread_safe", False) else asyncio.Lock()
        self.threads = None if self.is_async else ThreadPoolExecutor(max_workers=SYNC_CALLS)
        self.calls = self.peak = 0  # batches in this actor now, and at most since `peak_calls`

    async def generate(self, conversations, prompt_ids, sampling):
        """`(samples per conversation, node address)`; see synth.backends.base for a sample."""
        self.calls += 1
        self.peak = max(self.peak, self.calls)
        try:
            if self.is_async:
                results = await self.engine.generate_async(conversations, prompt_ids, sampling)
            else:
                results = await self._in_thread(conversations, prompt_ids, sampling)
            return results, self.worker
        except Exception as e:
            if type(e).__name__ == "EngineDeadError":
                # vLLM's engine process is gone and will not come back inside this actor; exit
                # so that Ray restarts the actor (max_restarts=-1) with a fresh engine.
                os._exit(1)
            raise
        finally:
            self.calls -= 1

    async def peak_calls(self) -> int:
        """The most batches this actor held at once since the last call (a synchronous engine
        takes them one at a time; they still wait here, not in a Ray Data worker)."""
        peak, self.peak = self.peak, self.calls
        return peak

    async def _in_thread(self, conversations, prompt_ids, sampling):
        import asyncio

        loop = asyncio.get_running_loop()
        call = functools.partial(self.engine.generate, conversations, prompt_ids, sampling)
        if self.lock is None:
            return await loop.run_in_executor(self.threads, call)
        async with self.lock:
            return await loop.run_in_executor(self.threads, call)

    async def node(self) -> str:
        return self.worker

    async def pid(self) -> int:
        """The actor's process id (tests kill it to check that a batch survives)."""
        return os.getpid()


# Handles held for the life of the driver: a named actor whose handles all go away is
# garbage-collected by Ray, so without this the next run would find a dying engine.
_ENGINES: dict[str, list] = {}


def get_engines(spec: EngineSpec) -> list:
    """The engine actors for `spec`: reused when they exist in this driver, created otherwise.

    vLLM engines: `spec.concurrency` actors spread over the nodes. Other backends: one actor
    (the openai engine bounds its own requests in flight with `concurrency`).
    """
    import ray

    # The key holds this driver's job id: actors are owned by their driver and die with it,
    # so two drivers on one cluster (two `synth run`s, a killed run and its resume) must never
    # find each other's engines; nor may a driver that restarted Ray reuse its old handles.
    key = f"{spec.key()}-{ray.get_runtime_context().get_job_id()}"
    if key in _ENGINES:
        return _ENGINES[key]
    # vLLM and fake: one engine actor per `concurrency`, spread over the nodes. openai: one
    # actor that keeps `concurrency` requests in flight itself.
    count = 1 if spec.backend == "openai" else spec.concurrency
    actor_cls = ray.remote(EngineHost)
    kwargs = {}
    if spec.backend == "openai":
        kwargs = dict(base_url=spec.base_url, api_key_env=spec.api_key_env,
                      concurrency=spec.concurrency, max_retries=spec.max_retries,
                      request_timeout=spec.request_timeout, isolate_rows=True)
    # What each engine reserves (synth.backends.resources): a core (vLLM on CPU), a GPU, or a
    # placement group of one bundle per GPU for tensor/pipeline parallel engines.
    from synth.backends.resources import actor_options, engine_placement, node_gpus

    plan = engine_placement(spec.backend, spec.engine_kwargs, node_gpus(), engines=count)
    handles = []
    for i in range(count):
        opts = {"scheduling_strategy": "SPREAD",
                **actor_options(plan, name=f"synth-pg-{key}-{i}" if plan.uses_placement_group else None)}
        handles.append(
            actor_cls.options(
                name=f"synth-engine-{spec.backend}-{key}-{i}",
                namespace=NAMESPACE,
                get_if_exists=True,
                max_restarts=-1,  # a killed engine comes back; the batch is retried
                max_task_retries=0,
                max_concurrency=ACTOR_CALLS,  # an async actor: calls overlap
                runtime_env={"env_vars": _engine_env()},
                **opts,
            ).remote(spec.backend, spec.model, plan.engine_kwargs, kwargs)
        )
    _ENGINES[key] = handles
    return handles


def forget_engines() -> None:
    """Drop the handles (Ray then stops the actors); called when Ray shuts down."""
    _ENGINES.clear()


@functools.lru_cache(maxsize=None)
def _counter_cls():
    import ray

    @ray.remote(num_cpus=0)
    class SlotCounter:
        """Hands out 0, 1, 2, ... so each Ray Data worker binds to its own engine."""

        def __init__(self):
            self.i = -1

        def next(self) -> int:
            self.i += 1
            return self.i

    return SlotCounter


def slot_counter():
    return _counter_cls().remote()
