"""Seeds -> units -> prompts.

The driver plans a run from file names and counts only: each seed file is scanned once (in
Ray tasks when the input is large; same checks as `synth.io.seeds.read_seeds`), which says how
many seeds it holds and where every `unit_seeds`-th one starts. A *unit* is a run of up to
`unit_seeds` consecutive seeds of one file (or of consecutive text files); it becomes one
shard. Workers read a unit's seeds back (`RenderUnit`), chunk them and render the prompts.

Prompt order, which `--limit` cuts: seed after seed in file order, each chunk of a seed
once per template, in the listed order. A unit's prompts are numbered 0, 1, ...; a limited
run may end inside a unit, whose prompts [p0, p1) are then generated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from synth.config import PipelineConfig
from synth.errors import SynthError
from synth.io import shards as sh
from synth.backends.generate import PROMPT_COLUMNS

# Input at most this large (bytes) is scanned in the driver (fast errors, no Ray tasks);
# larger inputs are scanned by Ray tasks, files in parallel.
LOCAL_SCAN_BYTES = 32 << 20


def resolve_model(cfg: PipelineConfig) -> str:
    if cfg.model.backend in ("fake", "openai"):
        return cfg.model.name  # openai: the name the server serves
    if cfg.model.backend == "hybrid":
        from synth.train.checkpoint import checkpoint_dir

        return str(checkpoint_dir(cfg.model.name).resolve())  # a synth training folder
    from synth.models import resolve

    return resolve(cfg.model.name)


def counter_path(cfg: PipelineConfig, model_path: str | None) -> str | None:
    """The model folder whose tokenizer counts chunk tokens (vLLM backends), else None."""
    return model_path if cfg.model.backend == "vllm" and cfg.seeds.chunk_tokens else None


def prompt_schema():
    import pyarrow as pa

    return pa.schema([(c, pa.int32() if c == "chunk_index" else pa.string()) for c in PROMPT_COLUMNS])


class Renderer:
    """Seeds -> prompt rows for one pipeline (or one teacher of it)."""

    def __init__(self, cfg: PipelineConfig, model_path: str | None, teacher: str | None):
        from synth.io.seeds import load_token_counter
        from synth.stages.prompt import PromptBuilder

        self.cfg = cfg
        self.teacher = teacher
        self.builders = PromptBuilder.for_prompt(cfg.prompt)
        self.count = load_token_counter(model_path) if cfg.seeds.chunk_tokens else None
        prefix = [f"teacher={teacher}"] if teacher else []
        self.variants = ["/".join(prefix + ([t] if t else [])) for t, _ in self.builders]
        self.where = cfg.source or "pipeline"

    def check(self, seed) -> None:
        """SynthError when a template uses a slot the seed lacks."""
        tc = self.cfg.seeds.text_column
        available = {"text", tc, *seed.fields}
        for _, builder in self.builders:
            builder.check_fields(available, f"{self.where} (seed {seed.seed_id} in {seed.source})")

    def prompts(self, seeds) -> Iterator[dict]:
        """Prompt rows, in prompt order, for `seeds`."""
        from synth.io.seeds import chunk_text

        tc = self.cfg.seeds.text_column  # the text is available as {text} and under its own name
        for seed in seeds:
            self.check(seed)
            pieces = chunk_text(seed.text, self.cfg.seeds.chunk_tokens, self.count) if self.count else [seed.text]
            meta = json.dumps(seed.fields, ensure_ascii=False, default=str)
            for k, piece in enumerate(pieces):
                for (_, builder), variant in zip(self.builders, self.variants):
                    msgs = builder.messages({**seed.fields, tc: piece, "text": piece})
                    yield {"prompt_id": sh.prompt_id(self.cfg.name, seed.seed_id, k, variant),
                           "seed_id": seed.seed_id, "source": seed.source, "chunk_index": k,
                           "task": builder.task, "seed_text": piece,
                           "messages": json.dumps(msgs, ensure_ascii=False), "meta": meta,
                           "teacher": self.teacher, "variant": variant}

    def table(self, rows: Iterator[dict], start: int = 0, stop: int | None = None):
        """Prompts [start, stop) of `rows` as a pyarrow Table (built in slices of 8192:
        Python strings cost several times their Arrow size)."""
        import itertools

        import pyarrow as pa

        schema = prompt_schema()
        batches, cols = [], {c: [] for c in PROMPT_COLUMNS}
        for row in itertools.islice(rows, start, stop):
            for c in PROMPT_COLUMNS:
                cols[c].append(row[c])
            if len(cols["prompt_id"]) >= 8192:
                batches.append(pa.RecordBatch.from_pydict(cols, schema=schema))
                cols = {c: [] for c in PROMPT_COLUMNS}
        if cols["prompt_id"]:
            batches.append(pa.RecordBatch.from_pydict(cols, schema=schema))
        return pa.Table.from_batches(batches, schema=schema)


def build_prompts(cfg: PipelineConfig, *, model_path: str | None = None, limit: int | None = None,
                  teacher: str | None = None, skip_bad: bool = False, skipped: list | None = None):
    """Every prompt of `cfg` (the first `limit`) as one pyarrow Table, read in this process.

    For small data (tests, benchmarks, notebooks): `synth run` never builds this table. `skip_bad`
    leaves out unreadable seed files, appending {"path", "reason"} to `skipped`."""
    from synth.io.seeds import read_seeds

    r = Renderer(cfg, model_path, teacher)
    seeds = read_seeds(cfg.seeds.path, text_column=cfg.seeds.text_column,
                       id_column=cfg.seeds.id_column, recursive=cfg.seeds.recursive,
                       skip_bad=skip_bad, skipped=skipped)
    return r.table(r.prompts(seeds), 0, limit)


# --------------------------------------------------------------------------- planning


@dataclass
class Unit:
    """A run of consecutive seeds that becomes one shard. `segments`: (file index, start,
    stop, first line) per file it covers (see `synth.io.seeds.read_segment`). Prompts
    [p0, p1) of the unit are to be generated; p1 None = to the unit's end."""

    key: str
    segments: list
    seeds: int
    p0: int = 0
    p1: int | None = None


@dataclass
class Plan:
    files: list  # [(path, rel)]
    units: list  # [Unit], in prompt order
    seeds: int
    skipped: list = field(default_factory=list)


def plan_units(cfg: PipelineConfig, model_path: str | None, teacher: str | None, unit_seeds: int,
               *, skip_bad: bool = False) -> Plan:
    """Scan the seed files (SynthError for a bad one unless `skip_bad`; always for a template
    slot the seeds lack or a duplicate id) and cut them into units."""
    from synth.io.seeds import seed_files, seed_kind, seeds_base

    s = cfg.seeds
    paths = seed_files(s.path, recursive=s.recursive)
    base = seeds_base(s.path)
    files = [(str(f), f.relative_to(base).as_posix()) for f in paths]
    infos, hashes = _scan(cfg, model_path, files, unit_seeds)
    skipped, units, used = [], [], []
    for i, ((path, rel), info) in enumerate(zip(files, infos)):
        if info["error"] and (info["fatal"] or not skip_bad):
            raise SynthError(info["error"])
        if info["error"]:
            msg = info["error"]
            skipped.append({"path": path, "reason": msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg})
        elif info["seeds"]:
            used.append(i)
    _check_duplicate_ids(cfg, files, [hashes[i] for i in used], used)
    total = sum(infos[i]["seeds"] for i in used)
    if not total:
        if skipped:
            raise SynthError(f"no readable seed documents in {s.path} ({len(skipped)} bad file(s) "
                             f"skipped, e.g. {skipped[0]['path']}: {skipped[0]['reason']})")
        raise SynthError(f"no seed documents found in {s.path} (all files are empty)")

    def key(rel: str, start: int) -> str:
        return sh.row_id("unit", cfg.name, teacher or "", rel, start)

    group: list = []  # consecutive text files, one seed each, share units
    for i in used:
        path, rel = files[i]
        info = infos[i]
        if seed_kind(Path(path)) == "text":
            group.append((i, 0, 0, 0))
            if len(group) == unit_seeds:
                units.append(Unit(key(files[group[0][0]][1], 0), group, len(group)))
                group = []
            continue
        if group:
            units.append(Unit(key(files[group[0][0]][1], 0), group, len(group)))
            group = []
        marks = info["marks"]
        for j, (start, line) in enumerate(marks):
            stop = marks[j + 1][0] if j + 1 < len(marks) else info["end"]
            n = min(unit_seeds, info["seeds"] - j * unit_seeds)
            units.append(Unit(key(rel, start), [(i, start, stop, line)], n))
    if group:
        units.append(Unit(key(files[group[0][0]][1], 0), group, len(group)))
    return Plan(files=files, units=units, seeds=total, skipped=skipped)


def _scan(cfg, model_path, files, unit_seeds):
    """scan_file over every file: here when the input is small, else in Ray tasks (at most
    two per CPU at once). Returns (infos, id hash arrays)."""
    from synth.io.seeds import scan_file

    size = 0
    for path, _ in files:
        try:
            size += os.path.getsize(path)
        except OSError:
            pass
    args = (cfg.seeds.text_column, cfg.seeds.id_column, unit_seeds)
    if size <= LOCAL_SCAN_BYTES:
        check = Renderer(cfg, None, None).check
        out = [scan_file(Path(p), rel, *args, check=check) for p, rel in files]
        return [o[0] for o in out], [o[1] for o in out]
    import ray

    from synth.ray_runtime import init_ray

    init_ray(None)
    task = ray.remote(num_cpus=0, num_returns=2, scheduling_strategy=on_this_node())(_scan_task)
    window = 2 * int(ray.cluster_resources().get("CPU", 2))
    infos_refs, hash_refs, pending = [], [], []
    for p, rel in files:
        info_ref, hash_ref = task.remote(cfg, p, rel, args)
        infos_refs.append(info_ref)
        hash_refs.append(hash_ref)
        pending.append(info_ref)
        if len(pending) >= window:
            _, pending = ray.wait(pending, num_returns=1)
    return ray.get(infos_refs), hash_refs


def on_this_node():
    """A Ray scheduling strategy for the driver's node: seed paths are paths of the machine
    the pipeline file was loaded on, which other nodes may not share. (Reading and rendering
    cost little next to generation, which runs on every node.)"""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def _scan_task(cfg, path, rel, args):
    from synth.io.seeds import scan_file

    return scan_file(Path(path), rel, *args, check=Renderer(cfg, None, None).check)


def _check_duplicate_ids(cfg, files, hashes: list, used: list[int]) -> None:
    """SynthError when an id from the id column appears in two files (compared as 64-bit
    hashes, in a Ray task for a large input; the driver never holds the ids)."""
    if not hashes:
        return
    import numpy as np

    if isinstance(hashes[0], np.ndarray):
        dup = _find_duplicate(*hashes)
    else:
        import ray

        dup = ray.get(ray.remote(num_cpus=0)(_find_duplicate).remote(*hashes))
    if dup is None:
        return
    a, b, h = dup
    first, second = files[used[a]], files[used[b]]
    from synth.io.seeds import id_hash, read_seeds

    s = cfg.seeds
    sid = next((x.seed_id for x in read_seeds(second[0], text_column=s.text_column,
                                               id_column=s.id_column)
                if x.explicit_id and id_hash(x.seed_id) == h), "?")
    raise SynthError(f"{second[0]}: seed id {sid!r} also appears in {first[1]}; "
                     "ids in the id column must be unique")


def _find_duplicate(*arrays):
    """(index of the earlier array, of the later one, hash) of a value in two arrays, or None."""
    import numpy as np

    if not arrays or not sum(len(a) for a in arrays):
        return None
    values = np.concatenate(arrays)
    owner = np.concatenate([np.full(len(a), i, dtype=np.int64) for i, a in enumerate(arrays)])
    order = np.argsort(values, kind="stable")
    v, o = values[order], owner[order]
    same = np.nonzero(v[1:] == v[:-1])[0]
    if not len(same):
        return None
    j = same[0]
    return int(o[j]), int(o[j + 1]), int(v[j])


def read_unit(plan_files: list, unit: Unit, text_column: str, id_column: str | None):
    """The seeds of `unit`, read from its files."""
    from synth.io.seeds import read_segment

    for i, start, stop, line in unit.segments:
        path, rel = plan_files[i]
        yield from read_segment(Path(path), rel, start, stop, line, text_column, id_column)


def apply_limit(plan: Plan, renderer: Renderer, limit: int, text_column: str,
                id_column: str | None) -> None:
    """Keep the units holding the first `limit` prompts, the last one cut at [0, p1). Counts
    the leading units' prompts here: their number is bounded by `limit`, not by the input."""
    need, kept = limit, []
    for u in plan.units:
        n = sum(1 for _ in renderer.prompts(read_unit(plan.files, u, text_column, id_column)))
        kept.append(u)
        if n >= need:
            u.p1 = need if n > need else None
            break
        need -= n
    plan.units = kept


class RenderUnit:
    """Ray Data actor: a block holding one unit index -> that unit's prompt table, with the
    unit columns the writer needs (`_unit`, `_p0`, `_p1`, `_whole`)."""

    def __init__(self, cfg: PipelineConfig, model_path: str | None, teacher: str | None,
                 files: list, units: list):
        self.renderer = Renderer(cfg, model_path, teacher)
        self.files, self.units = files, units
        self.text_column, self.id_column = cfg.seeds.text_column, cfg.seeds.id_column

    def __call__(self, batch):
        import pyarrow as pa

        u = self.units[batch.column("unit")[0].as_py()]
        seeds = read_unit(self.files, u, self.text_column, self.id_column)
        t = self.renderer.table(self.renderer.prompts(seeds), u.p0, u.p1)
        n = t.num_rows
        return (t.append_column("_unit", pa.array([u.key] * n, pa.string()))
                 .append_column("_p0", pa.array([u.p0] * n, pa.int64()))
                 .append_column("_p1", pa.array([u.p0 + n] * n, pa.int64()))
                 .append_column("_whole", pa.array([u.p1 is None] * n, pa.bool_())))


def sample_ids(prompts, name: str, n: int) -> list[list[str]]:
    """Per prompt row of a prompt table, the ids of its n rows (what a finished run holds)."""
    seeds = prompts.column("seed_id").to_pylist()
    chunks = prompts.column("chunk_index").to_pylist()
    variants = prompts.column("variant").to_pylist()
    return [[sh.sample_id(name, s, c, j, v or "") for j in range(n)]
            for s, c, v in zip(seeds, chunks, variants)]
