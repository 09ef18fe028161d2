"""Chains: several steps in one file, run in order by one `synth run` — generate, verify and
curate with pipelines, then pretrain and distill the hybrid model, then write the report.

    name: full
    out: out/full                 # every step writes OUT/<step name>
    steps:
      - run: pretrain_rephrase.yaml   # a pipeline file (relative to this file)
        limit: 16                     # optional: only the first N prompts
      - train:                        # `synth train` settings (synth.train.config.TrainConfig)
          name: pretrain
          mode: pretrain
          data: [pretrain_rephrase]   # earlier step names, or paths
          steps: 200
      - report: {}

Every step resumes: a rerun skips finished pipeline prompts and finished training steps, so a
chain interrupted anywhere continues where it stopped. One Ray runtime and one loaded engine
serve every pipeline of the chain.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError


@dataclass(frozen=True)
class RunStep:
    pipeline: Path
    name: str
    limit: int | None = None


@dataclass(frozen=True)
class TrainStep:
    name: str
    settings: dict  # TrainConfig fields, data/init still as written


@dataclass(frozen=True)
class ReportStep:
    name: str = "report"


@dataclass(frozen=True)
class Chain:
    name: str
    out: Path
    steps: tuple
    source: Path | None = field(default=None, compare=False)


def is_chain_file(path: str | Path) -> bool:
    """A chain file is a YAML mapping with a `steps:` list (a pipeline file has none)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and "steps" in raw


def load_chain(path: str | Path) -> Chain:
    import yaml

    from synth.config import load_pipeline

    path = Path(path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise SynthError(f"{where}: cannot read the chain file ({type(e).__name__})") from None
    unknown = set(raw) - {"name", "out", "steps"}
    if unknown:
        raise SynthError(f"{where}: unknown key {sorted(unknown)[0]!r}; a chain has name, out, steps")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SynthError(f"{where}: missing `name:`")
    out = Path(raw.get("out") or f"out/{name}")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise SynthError(f"{where}: `steps:` must be a non-empty list")
    steps, names = [], set()
    for i, item in enumerate(steps_raw):
        key = f"steps[{i}]"
        if not isinstance(item, dict):
            raise SynthError(f"{where}: {key} must be a mapping (- run: FILE, - train: {{..}}, - report: {{}})")
        if "run" in item:
            extra = set(item) - {"run", "limit", "name"}
            if extra:
                raise SynthError(f"{where}: {key}: unknown key {sorted(extra)[0]!r} (run, limit, name)")
            p = (path.parent / str(item["run"])).resolve()
            cfg = _check_pipeline(p, out)  # validated now, before any work
            limit = item.get("limit")
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise SynthError(f"{where}: {key}.limit must be a positive integer")
            step = RunStep(pipeline=p, name=str(item.get("name") or cfg.name), limit=limit)
        elif "train" in item:
            if set(item) != {"train"} or not isinstance(item["train"], dict):
                raise SynthError(f"{where}: {key}: write `- train: {{name: ..., mode: ..., data: [...]}}`")
            settings = dict(item["train"])
            step_name = settings.pop("name", None)
            if not isinstance(step_name, str) or not step_name:
                raise SynthError(f"{where}: {key}.train.name is required (the output subfolder)")
            _train_config(settings, data=("x",), init=None, out="x", where=where, key=f"{key}.train")
            for ref_key in ("data", "init"):
                refs = settings.get(ref_key) or []
                for ref in [refs] if isinstance(refs, str) else refs:
                    if isinstance(ref, str) and ref not in names and not (path.parent / ref).exists():
                        raise SynthError(f"{where}: {key}.train.{ref_key}: {ref!r} is neither an earlier "
                                         f"step ({', '.join(sorted(names)) or 'none yet'}) nor a path")
            step = TrainStep(name=step_name, settings=settings)
        elif "report" in item:
            step = ReportStep()
        else:
            raise SynthError(f"{where}: {key} must be one of run, train, report")
        if step.name in names:
            raise SynthError(f"{where}: {key}: two steps are named {step.name!r}; give one a `name:`")
        names.add(step.name)
        steps.append(step)
    return Chain(name=name, out=out, steps=tuple(steps), source=path)


def _check_pipeline(p: Path, out: Path):
    """Load a pipeline now; one whose model is made by an earlier step (a checkpoint under the
    chain's `out`) is checked again when its step runs."""
    import yaml

    from synth.config import load_pipeline

    try:
        return load_pipeline(p)
    except SynthError:
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
            model = (raw.get("model") or {}).get("name", "")
        except Exception:  # noqa: BLE001 - the original error is the one to show
            raw, model = {}, ""
        made_here = model and out.resolve() in (p.parent / str(model)).resolve().parents
        if not made_here:
            raise
        import types

        return types.SimpleNamespace(name=raw.get("name") or p.stem)


def _train_config(settings: dict, *, data, init, out, where: str, key: str):
    """A TrainConfig from a chain step's settings, typed like pipeline files are."""
    from synth.config import _coerce
    from synth.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"out"}
    kwargs = {}
    for k, v in settings.items():
        if k not in fields:
            import difflib

            close = difflib.get_close_matches(k, fields, n=1)
            raise SynthError(f"{where}: unknown key '{key}.{k}'" + (f"; did you mean {close[0]!r}?" if close else ""))
        if k in ("data", "init"):
            continue
        tp = hints[k]
        if typing.get_origin(tp) is tuple:
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list):
                raise SynthError(f"{where}: {key}.{k} must be a list")
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = _coerce(tp, v, where, f"{key}.{k}")
    if "mode" not in settings:
        raise SynthError(f"{where}: {key}.mode is required (pretrain or distill)")
    return TrainConfig(data=tuple(data), init=init, out=str(out), **kwargs).validate()


def _refs(chain: Chain, value) -> list[str]:
    """Step names become that step's output folder; other values are paths next to the file."""
    names = {s.name for s in chain.steps}
    base = chain.source.parent if chain.source else Path(".")
    vals = [value] if isinstance(value, str) else list(value or [])
    return [str(chain.out / v) if v in names else str((base / v).resolve()) for v in vals]


@dataclass
class StepResult:
    step: object
    summary: str
    elapsed_s: float
    result: object = None


def run_chain(chain: Chain, *, address: str | None = None, hooks=None, fresh: bool = False) -> list[StepResult]:
    """Run every step in order. `hooks` (optional) has `step(i, n, step)`,
    `generation(progress_dict)` and `training(progress_dict)` for progress display."""
    from synth.config import load_pipeline

    chain.out.mkdir(parents=True, exist_ok=True)
    results: list[StepResult] = []
    for i, step in enumerate(chain.steps):
        if hooks:
            hooks.step(i, len(chain.steps), step)
        t0 = time.time()
        if isinstance(step, RunStep):
            from synth.pipeline.run import run_pipeline

            cfg = load_pipeline(step.pipeline)
            r = run_pipeline(cfg, out=chain.out / step.name, address=address, limit=step.limit,
                             resume=not fresh, on_progress=hooks.generation if hooks else None)
            summary = f"{r.rows} rows kept, {r.rejected_rows} rejected"
            for task, table in (getattr(r, "pass_at_k", None) or {}).items():
                ks = ", ".join(f"{k} {v:.2f}" for k, v in table.items() if k.startswith("pass@"))
                summary += f"; {task} {ks}"
        elif isinstance(step, TrainStep):
            from synth.train.loop import train

            s = step.settings
            init = _refs(chain, s["init"])[0] if s.get("init") else None
            cfg = _train_config(s, data=_refs(chain, s.get("data")), init=init,
                                out=chain.out / step.name, where=str(chain.source), key=step.name)
            r = train(cfg, fresh=fresh, on_progress=hooks.training if hooks else None, log=lambda m: None)
            summary = (f"{r.steps} steps, {r.tokens} tokens, {r.params / 1e6:.1f}M params; "
                       f"train loss {r.loss:.3f}, eval loss {r.eval_loss:.3f}")
        else:
            from synth.report import build_report

            r = build_report(chain.out)
            summary = str(r)
        results.append(StepResult(step, summary, time.time() - t0, r))
    return results
