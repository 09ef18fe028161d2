"""The generate stage: prompt rows in, one row per sample out.

`generate_table(engine, prompts, ...)` sends one table of prompts to one engine actor (see
`synth.backends.pool`) and returns its generated rows. `GenerateBatch` is the callable class
Ray Data runs in its actor pool (through `synth.pipeline.run.GenerateUnit`): each instance binds
to one engine actor and calls `generate_table` per batch, `model.in_flight` batches at once (a
thread each), so several batches are in the engine at once.

If the engine actor dies mid-batch, Ray restarts it (a vLLM engine takes ~35 s to load here,
minutes on a busy machine): the batch waits for it, up to `restart_timeout` seconds, and is
sent again, up to `retries` times, so no prompt is lost and none is written twice (the caller
writes a batch only once it returns). A prompt the engine could not generate (too long for the
context, a request that failed after its retries) gives rows with finish_reason "error" and a
`reject_reason` (`gen.prompt_too_long`, `gen.request_failed`); the other rows of the batch are
unaffected. Good rows have a null `reject_reason`.
"""

from __future__ import annotations

import json
import time

PROMPT_COLUMNS = ("prompt_id", "seed_id", "source", "chunk_index", "task", "seed_text",
                  "messages", "meta", "teacher", "variant")
# Copied from the prompt to each of its rows (`variant` only goes into the row id).
_COPIED = ("prompt_id", "seed_id", "source", "chunk_index", "task", "seed_text", "messages",
           "meta", "teacher")
REJECT_COLUMN = "reject_reason"


def output_schema():
    """The generated rows' schema: `generation_schema()` plus `reject_reason` (null = kept)."""
    import pyarrow as pa

    from synth.io.shards import generation_schema

    return generation_schema().append(pa.field(REJECT_COLUMN, pa.string()))


def generate_table(engine, prompts, sampling, model_name: str, pipeline: str, *,
                   retries: int = 3, restart_timeout: float = 1200.0):
    """Generate `prompts` (a `pyarrow.Table` with `PROMPT_COLUMNS`) on the engine actor
    `engine`; returns a `pyarrow.Table` of `output_schema()`, `sampling.n` rows per prompt in
    prompt order. An engine actor that dies is waited for and the table sent again (`retries`
    times); an engine that cannot start, or a batch-wide failure, raises."""
    import pyarrow as pa
    import ray

    from synth.io.shards import sample_id

    cols = {c: prompts.column(c).to_pylist() for c in PROMPT_COLUMNS}
    convs = [json.loads(m) for m in cols["messages"]]
    pids = cols["prompt_id"]
    if not pids:
        return output_schema().empty_table()
    for attempt in range(retries + 1):
        try:
            results, worker = ray.get(_call(engine, convs, pids, sampling))
            break
        except ray.exceptions.RayActorError as e:
            if attempt == retries or _cannot_start(e):
                raise
            _wait_for_engine(engine, restart_timeout)  # Ray restarts it (max_restarts=-1)
    rows: dict[str, list] = {f.name: [] for f in output_schema()}
    for i, samples in enumerate(results):
        for j, s in enumerate(samples):
            rows["id"].append(sample_id(pipeline, cols["seed_id"][i], cols["chunk_index"][i],
                                        j, cols["variant"][i] or ""))
            rows["sample_index"].append(j)
            for c in _COPIED:
                rows[c].append(cols[c][i])
            rows["model"].append(model_name)
            rows["worker"].append(worker)
            rows["response"].append(valid_text(s.get("response")))
            for c in ("finish_reason", "prompt_tokens", "completion_tokens",
                      "token_ids", "top_logprob_ids", "top_logprobs"):
                rows[c].append(s.get(c))
            rows[REJECT_COLUMN].append(
                (s.get("reject_reason") or "gen.request_failed")
                if s.get("finish_reason") == "error" else None)
    return pa.Table.from_pydict(rows, schema=output_schema())


class GenerateBatch:
    def __init__(self, engines: list, counter, sampling, model_name: str, pipeline: str,
                 retries: int = 3, restart_timeout: float = 1200.0):
        import ray

        # With several engines a shared counter spreads the workers over them; one engine
        # needs none.
        slot = ray.get(counter.next.remote()) if counter is not None else 0
        self.engine = engines[slot % len(engines)]
        self.sampling = sampling
        self.model_name = model_name
        self.pipeline = pipeline
        self.retries = retries
        self.restart_timeout = restart_timeout

    def __call__(self, batch):
        return generate_table(self.engine, batch, self.sampling, self.model_name, self.pipeline,
                              retries=self.retries, restart_timeout=self.restart_timeout)


def _wait_for_engine(engine, restart_timeout: float) -> None:
    """Return once the engine actor answers again; raise if it does not within
    `restart_timeout` or cannot start at all. (A call to a restarting actor fails at
    once with `ActorUnavailableError`, so the batch must not be re-sent until then.)"""
    import ray

    deadline = time.time() + restart_timeout
    while True:
        try:
            ray.get(engine.node.remote(), timeout=60)
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
