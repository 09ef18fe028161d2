"""The generate stage: prompt rows in, one row per sample out.

`GenerateBatch` is the callable class Ray Data runs in its actor pool
(`ds.map_batches(GenerateBatch, concurrency=N, ...)`). Each instance binds to one engine actor
(see `synth.backends.pool`) and forwards its batches there. If the engine actor dies mid-batch,
Ray restarts it and the batch is sent again, so no prompt is lost.
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
                 retries: int = 3):
        import ray

        slot = ray.get(counter.next.remote())
        self.engine = engines[slot % len(engines)]
        self.sampling = sampling
        self.model_name = model_name
        self.pipeline = pipeline
        self.retries = retries

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
            except ray.exceptions.RayActorError:
                if attempt == self.retries:
                    raise
                time.sleep(2.0 * (attempt + 1))  # the actor restarts (max_restarts=-1)
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
                for c in ("response", "finish_reason", "prompt_tokens", "completion_tokens",
                          "token_ids", "top_logprob_ids", "top_logprobs"):
                    rows[c].append(s.get(c))
        return pa.Table.from_pydict(rows, schema=generation_schema())


def _call(engine, convs, pids, sampling):
    return engine.generate.remote(convs, pids, sampling)
