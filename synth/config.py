"""Pipeline files: YAML mapped 1:1 onto typed, frozen config classes.

Everything is checked before any work starts: unknown keys, wrong types, missing files and
unknown templates are `SynthError`s that name the file, the key and the fix.
Relative paths in a pipeline file are relative to the file itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synth.errors import SynthError


@dataclass(frozen=True)
class SeedsConfig:
    path: str
    """A file, a folder or a glob (`data/*.jsonl`) of .txt, .md, .jsonl or .parquet seed documents."""
    text_column: str = "text"
    """For .jsonl/.parquet: the column holding the document text."""
    id_column: str | None = "id"
    """For .jsonl/.parquet: the column holding a stable document id, if any."""
    chunk_tokens: int = 512
    """Documents longer than this many tokens (model tokenizer) are split; 0 turns it off."""
    recursive: bool = True


@dataclass(frozen=True)
class PromptConfig:
    template: str | None = None
    """A named template from `synth.stages.prompt.TEMPLATES`."""
    templates: list | None = None
    """Several named templates, each applied to every chunk (one prompt per chunk and template,
    the template's name in the row's `task`). Mutually exclusive with `template`, `user`, `system`."""
    system: str | None = None
    """Overrides the template's system message."""
    user: str | None = None
    """Overrides the template's user message; `{text}` and any seed column can be used."""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2-135m"
    """An embedded alias, a local HF folder, or a hub id."""
    backend: Literal["vllm", "openai", "hybrid", "fake"] = "vllm"
    engine_kwargs: dict = field(default_factory=dict)
    """Passed straight to `vllm.LLM(...)` (vllm backend)."""
    concurrency: int = 1
    """vllm: number of engine actors; openai: requests in flight."""
    batch_size: int = 64
    """Prompts per unit: a unit holds batch_size // len(templates) seed documents (each chunk of
    them one prompt per template), is sent to an engine at once and becomes one shard."""
    in_flight: int = 4
    """Batches in flight per engine at once: the engine continuously batches their requests,
    so it has queued work while a batch's slowest sample finishes and its shard is written."""
    base_url: str | None = None
    """openai backend: the server, e.g. http://localhost:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai backend: the environment variable holding the API key (may be unset)."""
    max_retries: int = 5
    request_timeout: float = 600.0


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 0
    logprobs: int = 0
    """Top-k log-probabilities stored per generated token (0: none). The distillation signal."""


@dataclass(frozen=True)
class OutputConfig:
    dir: str | None = None
    """Where shards go, relative to the working directory; default `out/<name>`."""


class ParamError(SynthError):
    """A parameter value out of range or not an allowed name, raised by a `check()` method of
    a config or stage-parameter dataclass. `build_params` turns it into one line naming the
    file (or stage / command), the full key and the fix: `p.yaml: stages[0].quality_filter.groups:
    unknown group 'gopherr'; did you mean 'gopher'?`."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(self.located())

    def located(self, prefix: str = "") -> str:
        """`prefix + key` and the message: "groups must be ..." reads on after the key, any
        other message follows a colon ("groups: unknown group 'x'; ...")."""
        sep = " " if self.message.startswith("must ") else ": "
        return f"{prefix}{self.key}{sep}{self.message}"


def suggest(value, choices, what: str = "known") -> str:
    """"did you mean 'x'?" for the closest of `choices`, else "<what>: a, b, c"."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else f"{what}: {', '.join(map(str, choices))}"


@dataclass(frozen=True)
class DedupConfig:
    """Global dedup over the run's shards once generation is done (duplicates -> rejects/).
    The same checks serve the pipeline loader and `synth dedup` (`check`, via `build_params`)."""

    method: Literal["exact", "minhash", "semantic"] = "minhash"
    column: str = "response"
    threshold: float = 0.8
    """Jaccard similarity (minhash) or cosine similarity (semantic)."""
    num_perm: int = 128
    shingle: Literal["word", "char"] = "word"
    ngram: int = 5
    quality_column: str | None = None
    """Keep the row with the highest value here in each cluster (then the smallest id)."""

    def check(self) -> None:
        """The ranges `synth.stages.dedup.dedup_decisions` and `semantic_decisions` accept."""
        if self.method == "semantic":
            if not 0 < self.threshold <= 1:
                raise ParamError("threshold", f"must be in (0, 1] for semantic dedup; got {self.threshold}")
        elif not 0 < self.threshold < 1:
            raise ParamError("threshold", f"must be between 0 and 1, exclusive, for {self.method} "
                             f"dedup (1.0 is allowed with method: semantic); got {self.threshold}")
        if self.num_perm < 1:
            raise ParamError("num_perm", f"must be >= 1; got {self.num_perm}")
        if self.ngram < 1:
            raise ParamError("ngram", f"must be >= 1; got {self.ngram}")


@dataclass(frozen=True)
class StageConfig:
    """One post-generation stage: a name from `synth.stages.registry.STAGES` and its params."""

    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher of a multi-teacher run: the pipeline's sections with this teacher's
    overrides applied (model, seeds and sampling merged key by key; prompt replaced whole)."""

    name: str
    model: ModelConfig
    seeds: SeedsConfig
    prompt: PromptConfig
    sampling: SamplingConfig


TEACHER_SECTIONS = {"model": ModelConfig, "seeds": SeedsConfig, "prompt": PromptConfig,
                    "sampling": SamplingConfig}
_TEACHER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    seeds: SeedsConfig
    prompt: PromptConfig = field(default_factory=PromptConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    dedup: DedupConfig | None = None
    stages: tuple = ()
    """Stages run on each generated batch, in order (e.g. `- verify_math: {timeout: 5}`)."""
    teachers: tuple = ()
    """`TeacherConfig`s: each runs as part of this run into the same output folder, its rows
    tagged with its name in `teacher`. Empty: one run of the pipeline's own sections."""
    source: str | None = field(default=None, compare=False)
    """The pipeline file this came from (not part of the hash)."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def units(self) -> list[tuple[str | None, "PipelineConfig"]]:
        """What generates: [(None, self)] or, with teachers, [(name, this pipeline with the
        teacher's sections)] in the order written."""
        if not self.teachers:
            return [(None, self)]
        return [(t.name, dataclasses.replace(self, model=t.model, seeds=t.seeds, prompt=t.prompt,
                                             sampling=t.sampling, teachers=()))
                for t in self.teachers]

    def generation_hash(self) -> str:
        """Hash of everything that changes generated rows (not the output dir, not the source)."""
        d = self.to_dict()
        d.pop("output", None)
        for m in [d["model"], *(t["model"] for t in d["teachers"])]:
            m.pop("concurrency", None)
            m.pop("batch_size", None)
            m.pop("in_flight", None)
        # Keys added later are left out while unset, so older runs keep their hash (resume).
        if not d["teachers"]:
            d.pop("teachers")
        for p in [d["prompt"], *(t["prompt"] for t in d.get("teachers", []))]:
            if p.get("templates") is None:
                p.pop("templates", None)
        try:
            blob = json.dumps(d, sort_keys=True, default=str)
        except TypeError:  # a mapping with keys of mixed types ({1: a, b: c}) cannot be sorted
            blob = json.dumps(_str_keys(d), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _str_keys(x):
    """x with every mapping key turned into a string (as JSON would write it)."""
    if isinstance(x, dict):
        return {str(k): _str_keys(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_str_keys(v) for v in x]
    return x


# --------------------------------------------------------------------------- loading


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline file. Raises `SynthError` naming the file and key."""
    import yaml

    path = Path(path)
    try:
        if not path.exists():
            raise SynthError(f"pipeline file {path} does not exist; check the path")
        if path.is_dir():
            raise SynthError(f"{path} is a folder; give a pipeline .yaml file")
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:  # unreadable, name too long, ...
        raise SynthError(f"{path}: cannot read the pipeline file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise SynthError(f"{path}: not UTF-8 text; save the pipeline file as UTF-8") from None
    except RecursionError:
        raise SynthError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as e:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise SynthError(f"{path}: invalid YAML value: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SynthError(f"{path}:{where} invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise SynthError(f"{path}: a pipeline file must be a mapping of sections (name, seeds, ...)")
    cfg = from_dict(raw, where=str(path))
    return _resolve_paths(cfg, path.parent.resolve(), str(path))


def from_dict(raw: dict, *, where: str = "<config>") -> PipelineConfig:
    if not isinstance(raw, dict):
        raise SynthError(f"{where}: a pipeline must be a mapping of sections (name, seeds, ...); "
                         f"got {type(raw).__name__}")
    _check_size(raw, where)
    raw = dict(raw)
    stages = _stages(raw.pop("stages", None) or [], where)
    teachers_raw = raw.pop("teachers", None)
    cfg = dataclasses.replace(_build(PipelineConfig, raw, where, ""), stages=stages)
    # With teachers the pipeline's own prompt is only a default: each teacher's is checked.
    _check_values(cfg, where, require_prompt=teachers_raw is None)
    if teachers_raw is not None:
        cfg = dataclasses.replace(cfg, teachers=_teachers(teachers_raw, raw, cfg, where))
    return cfg


_MAX_VALUES = 100_000
_MAX_NESTING = 50


def _check_size(raw, where: str) -> None:
    """A pipeline is small and shallow. YAML aliases can make a value contain itself
    (`a: &x [*x]`) or expand a few lines into billions of values, and deep nesting overflows
    the stack later (to_dict, the hash); copying or hashing such a value fails or never ends."""
    count, todo = 0, [(raw, 1)]
    while todo:
        node, depth = todo.pop()
        count += 1
        if count > _MAX_VALUES:
            raise SynthError(f"{where}: more than {_MAX_VALUES} values once YAML aliases are expanded "
                             "(or a value contains itself); write the values out")
        if depth > _MAX_NESTING:
            raise SynthError(f"{where}: values nested more than {_MAX_NESTING} levels deep")
        if isinstance(node, dict):
            todo.extend((x, depth + 1) for x in [*node, *node.values()])
        elif isinstance(node, (list, tuple)):
            todo.extend((x, depth + 1) for x in node)


def _teachers(raw, top: dict, cfg: PipelineConfig, where: str) -> tuple:
    """`teachers:` is a list of {name, and overrides of model, seeds, prompt, sampling}."""
    if not isinstance(raw, list) or not raw:
        raise SynthError(f"{where}: teachers must be a non-empty list, e.g. '- name: math'")
    out, seen = [], set()
    for i, item in enumerate(raw):
        key = f"teachers[{i}]"
        if not isinstance(item, dict):
            raise SynthError(f"{where}: {key} must be a mapping with a name and overrides")
        unknown = [k for k in item if k != "name" and k not in TEACHER_SECTIONS]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), ["name", *TEACHER_SECTIONS], n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: name, {', '.join(TEACHER_SECTIONS)}"
            raise SynthError(f"{where}: unknown key '{key}.{unknown[0]}'; {hint}")
        name = item.get("name")
        if not isinstance(name, str) or not _TEACHER_NAME.match(name):
            raise SynthError(f"{where}: {key}.name must be a short name (letters, digits, _ . -); "
                             f"got {name!r}")
        if name in seen:
            raise SynthError(f"{where}: {key}.name {name!r} is used twice; teacher names must differ")
        seen.add(name)
        sections = {}
        for sec, cls in TEACHER_SECTIONS.items():
            over = item.get(sec)
            if over is not None and not isinstance(over, dict):
                raise SynthError(f"{where}: {key}.{sec} must be a mapping")
            if sec == "prompt":  # a prompt is one unit: template, templates and user exclude each other
                merged = dict(over) if over is not None else dict(top.get(sec) or {})
            else:
                merged = {**(top.get(sec) or {}), **(over or {})}
            sections[sec] = _build(cls, merged, where, f"{key}.{sec}.")
        teacher = TeacherConfig(name=name, **sections)
        _check_values(dataclasses.replace(cfg, **sections), where, prefix=f"{key}.")
        out.append(teacher)
    return tuple(out)


def build_params(cls, raw: Any, where: str, prefix: str = ""):
    """`cls` (a config or stage-parameter dataclass) from a mapping, checked: unknown keys
    (with a "did you mean"), types, and the dataclass's own `check()` (ranges, allowed names).
    Errors are one `SynthError` line: `{where}: {prefix}{key} ...`. The pipeline loader and the
    CLI commands both build parameters through here."""
    return _build(cls, raw, where, prefix)


def _build(cls, raw: Any, where: str, prefix: str):
    if not isinstance(raw, dict):
        raise SynthError(f"{where}: {prefix or 'top level'} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("source", "stages", "teachers")}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in raw if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(fields)}"
        raise SynthError(f"{where}: unknown key '{prefix}{k}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SynthError(f"{where}: missing required key {key!r}")
            continue
        kwargs[name] = _coerce(hints[name], raw[name], where, key)
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        try:
            obj.check()
        except ParamError as e:
            raise SynthError(f"{where}: {e.located(prefix)}") from None
    return obj


def _stages(raw, where: str) -> tuple:
    """`stages:` is a list; each item a stage name or a one-key mapping {name: {params}}."""
    from synth.stages.registry import STAGES

    if not isinstance(raw, list):
        raise SynthError(f"{where}: stages must be a list, e.g. '- verify_math: {{}}'")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = params or {}
        else:
            raise SynthError(f"{where}: stages[{i}] must be a stage name or '- name: {{params}}'")
        if name not in STAGES:
            raise SynthError(f"{where}: stages[{i}]: unknown stage {name!r}; {suggest(name, STAGES)}")
        # the stage's own parameter checks (`check()`), as when the stage is built
        typed = build_params(STAGES[name][1], params, where, f"stages[{i}].{name}.")
        out.append(StageConfig(name=name, params=dataclasses.asdict(typed)))
    return tuple(out)


def _coerce(tp, value, where: str, key: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise SynthError(f"{where}: {key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SynthError(f"{where}: {key} must be true or false; got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SynthError(f"{where}: {key} must be an integer; got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SynthError(f"{where}: {key} must be a number; got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SynthError(f"{where}: {key} must be a string; got {value!r}")
        return value
    if tp is list or origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise SynthError(f"{where}: {key} must be a list; got {value!r}")
        return list(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise SynthError(f"{where}: {key} must be a mapping; got {value!r}")
        bad_key = next((k for k in value if not isinstance(k, str)), None)
        if bad_key is not None:  # e.g. engine_kwargs are keyword arguments; and the hash sorts keys
            raise SynthError(f"{where}: {key} keys must be names (strings); got {bad_key!r}")
        return dict(value)
    raise TypeError(f"config type {tp} not handled")  # a bug in this module, not user error


def _check_values(cfg: PipelineConfig, where: str, prefix: str = "", require_prompt: bool = True) -> None:
    from synth.stages.prompt import TEMPLATES

    def bad(key: str, msg: str):
        raise SynthError(f"{where}: {prefix}{key} {msg}")

    def known(name, key: str):
        if not isinstance(name, str) or name not in TEMPLATES:
            close = difflib.get_close_matches(str(name), TEMPLATES, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(TEMPLATES)}"
            bad(key, f"{name!r} is not a known template; {hint}")

    if not cfg.name.strip():
        bad("name", "must not be empty")
    if cfg.seeds.chunk_tokens < 0:
        bad("seeds.chunk_tokens", "must be >= 0 (0 turns chunking off)")
    p = cfg.prompt
    if p.templates is not None:
        if p.template is not None:
            bad("prompt.templates", "and prompt.template are mutually exclusive; keep one "
                "(templates: [a, b] applies each to every chunk)")
        if p.user is not None or p.system is not None:
            bad("prompt.templates", "cannot be combined with prompt.user or prompt.system; "
                "use a single template to override its messages")
        if not p.templates:
            bad("prompt.templates", "must name at least one template")
        for j, t in enumerate(p.templates):
            known(t, f"prompt.templates[{j}]")
        dup = sorted({t for t in p.templates if p.templates.count(t) > 1})
        if dup:
            bad("prompt.templates", f"names {dup[0]!r} twice; list each template once")
    elif p.template is None and p.user is None and require_prompt:
        bad("prompt", f"needs a template (one of: {', '.join(TEMPLATES)}), a list of templates "
            "or a user message")
    if p.template is not None:
        known(p.template, "prompt.template")
    m = cfg.model
    if m.concurrency < 1:
        bad("model.concurrency", "must be >= 1")
    if m.batch_size < 1:
        bad("model.batch_size", "must be >= 1")
    if m.in_flight < 1:
        bad("model.in_flight", "must be >= 1")
    if m.backend == "openai" and not m.base_url:
        bad("model.base_url", "is required with backend: openai (e.g. http://localhost:8000/v1)")
    s = cfg.sampling
    if s.n < 1:
        bad("sampling.n", "must be >= 1")
    if s.max_tokens < 1:
        bad("sampling.max_tokens", "must be >= 1")
    if not 0 < s.top_p <= 1:
        bad("sampling.top_p", "must be in (0, 1]")
    if s.temperature < 0:
        bad("sampling.temperature", "must be >= 0")
    if not 0 <= s.logprobs <= 20:
        bad("sampling.logprobs", "must be between 0 and 20")


def _local_path(value, base: Path, where: str, key: str) -> tuple[Path, bool]:
    """(absolute path, whether it exists) for a path written in the pipeline file (relative
    to `base`); SynthError naming the key when the value cannot be a path."""
    if not isinstance(value, str):
        raise SynthError(f"{where}: {key} must be a path (a string); got {value!r}")
    try:
        p = Path(value).expanduser()
        p = p if p.is_absolute() else (base / p).resolve()
        return p, p.exists()
    except (OSError, ValueError, RuntimeError) as e:  # name too long, NUL byte, ~unknown_user
        raise SynthError(f"{where}: {key} {value!r} is not a usable path ({e})") from None


_GLOB = re.compile(r"[*?[]")


def _resolve_seeds(seeds: SeedsConfig, base: Path, where: str, prefix: str = "") -> SeedsConfig:
    seeds_path, exists = _local_path(seeds.path, base, where, f"{prefix}seeds.path")
    if not exists and _GLOB.search(str(seeds.path)):  # a glob: at least one file must match
        exists = any(True for _ in Path("/").glob(str(seeds_path).lstrip("/")))
    if not exists:
        raise SynthError(
            f"{where}: {prefix}seeds.path {seeds.path!r} does not exist (looked at {seeds_path}); "
            "paths are relative to the pipeline file"
        )
    return dataclasses.replace(seeds, path=str(seeds_path))


def _resolve_model(model: ModelConfig, base: Path, where: str, prefix: str = "") -> ModelConfig:
    if model.name.startswith((".", "/", "~")):
        mp, exists = _local_path(model.name, base, where, f"{prefix}model.name")
        if not exists:
            raise SynthError(f"{where}: {prefix}model.name folder {model.name!r} does not exist (looked at {mp})")
        model = dataclasses.replace(model, name=str(mp))
    return model


def _resolve_paths(cfg: PipelineConfig, base: Path, where: str) -> PipelineConfig:
    teachers = tuple(
        dataclasses.replace(t, seeds=_resolve_seeds(t.seeds, base, where, f"teachers[{i}]."),
                            model=_resolve_model(t.model, base, where, f"teachers[{i}]."))
        for i, t in enumerate(cfg.teachers))
    seeds = _resolve_seeds(cfg.seeds, base, where)
    model = _resolve_model(cfg.model, base, where)
    stages = []
    for i, st in enumerate(cfg.stages):
        if st.name == "decontam":  # evaluation files, relative to the pipeline file
            files = []
            for f in st.params.get("against", []):
                fp, exists = _local_path(f, base, where, f"stages[{i}].decontam.against")
                if not exists:
                    raise SynthError(f"{where}: stages[{i}].decontam.against: {f!r} does not exist "
                                     f"(looked at {fp}); paths are relative to the pipeline file")
                files.append(str(fp))
            st = StageConfig(name=st.name, params={**st.params, "against": files})
        stages.append(st)
    return dataclasses.replace(
        cfg,
        stages=tuple(stages),
        seeds=seeds,
        model=model,
        teachers=teachers,
        source=where,
    )
