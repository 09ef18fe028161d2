"""The training loop: `train(cfg)` for pretraining and distillation, readable in one sitting.

    loss = CE(next token) + mtp_weight * CE(MTP depths) + balance loss          (pretrain)
    loss = kd_weight * KD + (1 - kd_weight) * (CE + MTP) + balance loss       (distill)

AdamW with linear warm-up and cosine decay; after every optimizer step the MoE routers'
selection biases move toward balance (aux-loss-free balancing, DeepSeek-V3). Every
`ckpt_every` steps a checkpoint replaces the previous one atomically; a rerun with the same
--out resumes from it, drawing the same batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from synth.errors import SynthError
from synth.train.config import TrainConfig

METRICS = "metrics.jsonl"
TRAIN_JSON = "train.json"
CURVE = "loss_curve.png"


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    steps: int
    resumed_from: int
    tokens: int
    loss: float
    eval_loss: float
    elapsed_s: float
    tokens_per_s: float
    params: int
    teacher_mix: dict | None = None
    ce: float = float("nan")  # the last step's next-token cross-entropy (`loss` is the objective)


def warmup_steps(cfg: TrainConfig) -> int:
    """`cfg.warmup`, but at most a tenth of the run: a short run (--steps 20) is not all warm-up."""
    return max(1, min(cfg.warmup, cfg.steps // 10))


def lr_at(step: int, cfg: TrainConfig) -> float:
    warm = warmup_steps(cfg)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, cfg.steps - warm)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def autocast(cfg: TrainConfig):
    """bf16 autocast for the matmuls (weights, optimizer and losses stay fp32)."""
    import contextlib

    import torch

    if cfg.precision != "bf16":
        return contextlib.nullcontext()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16)


def model_config(cfg: TrainConfig, vocab_size: int):
    from synth.model import HybridConfig, config_by_name

    if cfg.init:
        from synth.train import checkpoint

        mc = HybridConfig.from_dict(checkpoint.read_meta(cfg.init)["model"])
    elif cfg.model.endswith(".json"):
        p = Path(cfg.model)
        if not p.is_file():
            raise SynthError(f"--config {p}: no such file")
        try:
            mc = HybridConfig.from_dict(json.loads(p.read_text()))
        except json.JSONDecodeError as e:
            raise SynthError(f"--config {p}: not valid JSON ({e})") from None
    else:
        mc = config_by_name(cfg.model)
    mc = dataclasses.replace(mc, vocab_size=vocab_size, nvfp4=cfg.nvfp4)
    mc.validate()
    return mc


def prepare_out(cfg: TrainConfig, fresh: bool) -> Path | None:
    """Create --out; return the checkpoint folder to resume from, if any."""
    from synth.train import checkpoint

    from synth.paths import make_dir

    out = make_dir(cfg.out, "--out")  # one line when it (or a parent) is a file
    saved = out / TRAIN_JSON
    if fresh and out.exists():
        for name in (TRAIN_JSON, METRICS, CURVE, checkpoint.CKPT, f".{checkpoint.CKPT}.tmp",
                     f".{checkpoint.CKPT}.old"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if saved.is_file():
        try:
            prev = json.loads(saved.read_text())
        except json.JSONDecodeError:
            prev = {}
        diff = cfg.mismatch(prev)
        if diff:
            raise SynthError(f"{out} holds a training run with another config ({diff}); "
                             "use --fresh to start over or another --out")
        try:
            return checkpoint.checkpoint_dir(out)
        except SynthError:
            return None
    if out.exists() and any(out.iterdir()):
        raise SynthError(f"--out {out} is not empty and holds no training run; pick an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return None


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # norms, biases, scalar SSM parameters and embeddings are not decayed
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines past the resumed checkpoint (written by a run killed after it)."""
    from synth.train.plot import read_metrics

    keep = [m for m in read_metrics(path) if m.get("step", 0) <= step]
    path.write_text("".join(json.dumps(m) + "\n" for m in keep))


def evaluate(model, data, cfg: TrainConfig) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for b in data.eval_batches(cfg.batch_size, cfg.seq_len, cfg.eval_batches):
            with autocast(cfg):
                out = model(b["input_ids"], targets=b["targets"])
            k = int((b["targets"] != -100).sum())
            total += float(out.ce_loss) * k
            n += k
    model.train()
    return total / max(1, n)


def train(cfg: TrainConfig, *, fresh: bool = False, on_progress=None, log=print) -> TrainResult:
    import torch

    from synth.model import HybridLM
    from synth.train import checkpoint
    from synth.train.data import TeacherData, TextData
    from synth.train.kd import kd_full, kd_topk
    from synth.train.plot import loss_curve, read_metrics
    from synth.train.teachers import load_teacher
    from synth.train.tokenizer import load_tokenizer

    cfg.validate()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    if cfg.init:
        checkpoint.read_meta(cfg.init)  # a clear error before any work
    tok = load_tokenizer(checkpoint.checkpoint_dir(cfg.init) if cfg.init else None)
    mc = model_config(cfg, tok.vocab_size)

    # The data is read before --out is touched: a bad shard leaves nothing behind.
    offline = cfg.mode == "distill" and not cfg.teachers
    if offline:
        data = TeacherData.from_shards(cfg.data, tok, cfg.eval_fraction, cfg.seq_len, cfg.teacher_weights,
                                       skip_bad=cfg.skip_bad_inputs)
    else:
        if cfg.teacher_weights:
            raise SynthError("--teacher-weight mixes offline teachers (a `teacher` column); "
                             "for teachers in the loop give --teacher PATH:WEIGHT")
        data = TextData.from_shards(cfg.data, tok, cfg.column, cfg.eval_fraction, cfg.seq_len,
                                    skip_bad=cfg.skip_bad_inputs)
    for s in data.skipped:
        log(f"skipped {s['path']}: {s['reason']}")
    resume_from = prepare_out(cfg, fresh)
    out = Path(cfg.out)
    if cfg.mode == "distill" and not offline:
        ws = cfg.online_weights or tuple(1.0 for _ in cfg.teachers)
        teachers = [load_teacher(t, w, tok) for t, w in zip(cfg.teachers, ws)]
        wsum = sum(t.weight for t in teachers) or 1.0
    else:
        teachers, wsum = [], 1.0

    torch.manual_seed(cfg.seed)
    model = HybridLM(mc)
    if cfg.init:
        checkpoint.load_weights(model, checkpoint.checkpoint_dir(cfg.init) / "model.safetensors")
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))

    start, tokens = 0, 0
    metrics_path = out / METRICS
    if resume_from is not None:
        checkpoint.load_weights(model, resume_from / "model.safetensors")
        state = checkpoint.trainer_state(resume_from)
        if state is None:
            raise SynthError(f"{resume_from}: no trainer.pt to resume from; use --fresh")
        opt.load_state_dict(state["optimizer"])
        start, tokens = state["step"], state["tokens"]
        _truncate_metrics(metrics_path, start)
        log(f"resuming {out} from step {start}")
    else:
        metrics_path.write_text("")
    (out / TRAIN_JSON).write_text(json.dumps({**cfg.to_dict(), "model_config": mc.to_dict(),
                                              "params": model.num_params(),
                                              "tokenizer_sha256": tok.sha256,
                                              "skipped_inputs": data.skipped}, indent=2))

    def save(step: int) -> Path:
        extra = {"mode": cfg.mode, "nvfp4": cfg.nvfp4}
        ck = checkpoint.save(out, model, tok, step=step, tokens=tokens, extra=extra,
                             trainer_state={"optimizer": opt.state_dict(), "step": step, "tokens": tokens})
        loss_curve(read_metrics(metrics_path), out / CURVE,
                   f"{cfg.mode} · {mc.pattern} · {model.num_params() / 1e6:.1f}M params")
        return ck

    t0, tokens0 = time.time(), tokens
    loss_v, eval_loss, ce_v = float("nan"), float("nan"), float("nan")
    with open(metrics_path, "a", encoding="utf-8") as mf:
        for step in range(start, cfg.steps):
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            b = data.batch(step, cfg.seed, cfg.batch_size, cfg.seq_len)
            model.count_tokens(b["targets"])
            with autocast(cfg):
                res = model(b["input_ids"], targets=b["targets"])
            aux = res.aux_loss if res.aux_loss is not None else 0.0
            ce_total = res.loss - aux
            kd = None
            if offline:
                kd = kd_topk(res.logits, b["top_ids"], b["top_lps"], b["kd_mask"], cfg.temperature)
            elif teachers:
                mask = b["targets"] != -100
                with autocast(cfg):
                    t_logits = [t.logits(b["input_ids"]) for t in teachers]
                kd = sum(t.weight / wsum * kd_full(res.logits, tl, mask, cfg.temperature)
                         for t, tl in zip(teachers, t_logits))
            loss = ce_total + aux if kd is None else cfg.kd_weight * kd + (1 - cfg.kd_weight) * ce_total + aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            model.update_router_bias()
            tokens += int((b["targets"] != -100).sum())
            loss_v = float(loss.detach())
            if not math.isfinite(loss_v):
                raise SynthError(f"training diverged at step {step + 1} (loss {loss_v}); "
                                 f"lower --lr (now {cfg.lr})")
            elapsed = time.time() - t0
            rate = (tokens - tokens0) / elapsed if elapsed > 0 else 0.0
            line = {"split": "train", "step": step + 1, "tokens": tokens, "loss": round(loss_v, 5),
                    "ce": round(ce_v := float(res.ce_loss.detach()), 5),
                    "mtp": round(float(res.mtp_loss.detach()), 5) if res.mtp_loss is not None else None,
                    "kd": round(float(kd.detach()), 5) if kd is not None else None,
                    "lr": lr, "tok_per_s": round(rate, 1)}
            mf.write(json.dumps(line) + "\n")
            last = step + 1 == cfg.steps
            if (step + 1) % cfg.eval_every == 0 or last:
                eval_loss = evaluate(model, data, cfg)
                mf.write(json.dumps({"split": "eval", "step": step + 1, "tokens": tokens,
                                     "eval_loss": round(eval_loss, 5)}) + "\n")
            mf.flush()
            if (step + 1) % cfg.ckpt_every == 0 or last:
                save(step + 1)
            if on_progress:
                on_progress({"step": step + 1, "steps": cfg.steps, "tokens": tokens,
                             "tok_per_s": rate, "loss": loss_v, "eval_loss": eval_loss})
    if start >= cfg.steps:  # nothing left: report the saved run
        ck = checkpoint.checkpoint_dir(out)
        evals = [m for m in read_metrics(metrics_path) if m.get("split") == "eval"]
        trains = [m for m in read_metrics(metrics_path) if m.get("split") == "train"]
        eval_loss = evals[-1]["eval_loss"] if evals else float("nan")
        loss_v = trains[-1]["loss"] if trains else float("nan")
        ce_v = trains[-1].get("ce", float("nan")) if trains else float("nan")
    else:
        ck = out / checkpoint.CKPT
    elapsed = time.time() - t0
    return TrainResult(out=out, checkpoint=ck, steps=cfg.steps, resumed_from=start, tokens=tokens,
                       loss=loss_v, eval_loss=eval_loss, elapsed_s=elapsed,
                       tokens_per_s=(tokens - tokens0) / elapsed if elapsed > 0 else 0.0,
                       params=model.num_params(),
                       teacher_mix=data.mix() if offline else None, ce=ce_v)
