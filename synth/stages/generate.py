"""The generate stage: prompt rows in, one row per sample out.

`GenerateBatch` is the callable class Ray Data runs in its actor pool
(`ds.map_batches(GenerateBatch, concurrency=N, ...)`). Each instance binds to one engine actor
(see `synth.backends.pool`) and forwards its batches there. If the engine actor dies mid-batch,
Ray restarts it (a vLLM engine takes ~35 s to load here, minutes on a busy machine): the batch
waits for it, up to `restart_timeout` seconds, and is sent again, up to `retries` times, so no
prompt is lost and none is written twice (the runner writes a batch only once it returns).
"""

from __future__ import annotations

import json
import time

PROMPT_COLUMNS = ("prompt_id", "seed_id", "source", "chunk_index", "task", "seed_text",
                  "messages", "meta", "teacher", "variant")
# Copied from the prompt to each of its rows (`variant` only goes into the row id).
_COPIED = ("prompt_id", "seed_id", "source", "chunk_index", "task", "seed_text", "messages",
           "meta", "teacher")


class GenerateBatch:
    def __init__(self, engines: list, counter, sampling, model_name: str, pipeline: str,
                 retries: int = 3, restart_timeout: float = 1200.0):
        import ray

        slot = ray.get(counter.next.remote())
        self.engine = engines[slot % len(engines)]
        self.sampling = sampling
        self.model_name = model_name
        self.pipeline = pipeline
        self.retries = retries
        self.restart_timeout = restart_timeout

    def __call__(self, batch):
        import pyarrow as pa
        import ray

        from synth.io.shards import generation_schema, sample_id

        cols = {c: batch.column(c).to_pylist() for c in PROMPT_COLUMNS}
        convs = [json.loads(m) for m in cols["messages"]]
        pids = cols["prompt_id"]
        for attempt in range(self.retries + 1):
            try:
                results, worker = ray.get(_call(self.engine, convs, pids, self.sampling))
                break
            except ray.exceptions.RayActorError as e:
                if attempt == self.retries or _cannot_start(e):
                    raise
                self._wait_for_engine()  # Ray restarts it (max_restarts=-1)
        rows: dict[str, list] = {f.name: [] for f in generation_schema()}
        for i, samples in enumerate(results):
            for j, s in enumerate(samples):
                rows["id"].append(sample_id(self.pipeline, cols["seed_id"][i], cols["chunk_index"][i],
                                            j, cols["variant"][i] or ""))
                rows["sample_index"].append(j)
                for c in _COPIED:
                    rows[c].append(cols[c][i])
                rows["model"].append(self.model_name)
                rows["worker"].append(worker)
                rows["response"].append(valid_text(s.get("response")))
                for c in ("finish_reason", "prompt_tokens", "completion_tokens",
                          "token_ids", "top_logprob_ids", "top_logprobs"):
                    rows[c].append(s.get(c))
        return pa.Table.from_pydict(rows, schema=generation_schema())

    def _wait_for_engine(self) -> None:
        """Return once the engine actor answers again; raise if it does not within
        `restart_timeout` or cannot start at all. (A call to a restarting actor fails at
        once with `ActorUnavailableError`, so the batch must not be re-sent until then.)"""
        import ray

        deadline = time.time() + self.restart_timeout
        while True:
            try:
                ray.get(self.engine.node.remote(), timeout=60)
                return
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                if time.time() > deadline or (isinstance(e, ray.exceptions.RayActorError)
                                              and _cannot_start(e)):
                    raise
            time.sleep(2.0)


def _cannot_start(e: BaseException) -> bool:
    """An engine whose constructor failed is dead for good: waiting will not bring it back."""
    return "creation task" in str(e)


def valid_text(s: str | None) -> str | None:
    """`s` as text Parquet can store (UTF-8): a lone surrogate becomes U+FFFD. An engine can
    hand one over, e.g. a served model's JSON with half of a `\\ud83d\\ude00` pair; pyarrow
    would refuse the whole batch. A surrogate pair split in two code points is joined."""
    if s is None:
        return None
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _call(engine, convs, pids, sampling):
    return engine.generate.remote(convs, pids, sampling)
