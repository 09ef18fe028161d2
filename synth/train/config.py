"""TrainConfig: every knob of a training run. Written to DIR/train.json; a resumed run must match."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from synth.errors import SynthError


@dataclass(frozen=True)
class TrainConfig:
    mode: Literal["pretrain", "distill"]
    data: tuple[str, ...]
    """Shard folders or files."""
    out: str
    model: str = "tiny"
    """A named config (`synth.model.CONFIGS`) or a model config .json."""
    init: str | None = None
    """Start from this checkpoint's weights (its model config wins over `model`)."""
    nvfp4: bool = False
    """Train with NVFP4 fake-quantized linear layers (see synth/model/nvfp4.py)."""
    column: str = "text"
    """pretrain (and online distill): the shard column holding documents. The CLI picks `text`
    when the shards have it, else `response`, as the curation commands do."""
    steps: int = 200
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 20
    """Linear warm-up steps, at most a tenth of `steps` (`synth.train.loop.warmup_steps`)."""
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_fraction: float = 0.05
    """Share of documents (by id hash) held out for the eval loss."""
    eval_every: int = 50
    eval_batches: int = 4
    ckpt_every: int = 50
    seed: int = 0
    # distillation
    temperature: float = 1.0
    kd_weight: float = 0.9
    """loss = kd_weight * KD + (1 - kd_weight) * CE (CE includes the MTP loss)."""
    teacher_weights: dict = field(default_factory=dict)
    """Offline: sampling weight per value of the shards' `teacher` column (default: equal rows)."""
    teachers: tuple[str, ...] = ()
    """Online: teacher models run in the loop (hybrid checkpoints or HF folders / aliases)."""
    online_weights: tuple[float, ...] = ()
    """Online: weight of each teacher's KD loss (default equal)."""
    threads: int = 0
    """torch threads (0: all cores)."""
    skip_bad_inputs: bool = False
    """Leave out unreadable or corrupt shards (listed in train.json) instead of stopping."""
    precision: Literal["bf16", "fp32"] = "bf16"
    """Mixed precision: fp32 weights and optimizer, matmuls under bf16 autocast (4x faster
    here on AVX512-BF16 CPUs, and the usual setting on GPUs); fp32 turns autocast off."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["teachers"] = list(self.teachers)
        d["online_weights"] = list(self.online_weights)
        return d

    def validate(self) -> "TrainConfig":
        def bad(key: str, why: str):
            raise SynthError(f"train {key}: {why}")

        if not self.data:
            bad("--data", "give at least one shard folder or file")
        for k in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches", "ckpt_every"):
            if getattr(self, k) < 1:
                bad(f"--{k.replace('_', '-')}", "must be at least 1")
        if self.seq_len < 8:
            bad("--seq-len", "must be at least 8")
        if not 0.0 < self.lr < 1.0:
            bad("--lr", "must be in (0, 1)")
        if not 0.0 <= self.eval_fraction < 0.5:
            bad("--eval-fraction", "must be in [0, 0.5)")
        if not 0.0 <= self.kd_weight <= 1.0:
            bad("--kd-weight", "must be in [0, 1]")
        if self.precision not in ("bf16", "fp32"):
            bad("--precision", "must be bf16 or fp32")
        if self.temperature <= 0:
            bad("--temperature", "must be > 0")
        if self.mode == "pretrain" and (self.teachers or self.teacher_weights):
            bad("--teacher", "teachers belong to `synth train distill`")
        if self.online_weights and len(self.online_weights) != len(self.teachers):
            bad("--teacher", "give a weight for every teacher or for none")
        if any(w < 0 for w in self.teacher_weights.values()) or any(w < 0 for w in self.online_weights):
            bad("weights", "must be >= 0")
        return self

    # Keys a resumed run may change (a longer run continues the same one).
    RESUMABLE = ("steps", "eval_every", "ckpt_every", "threads", "out", "precision", "skip_bad_inputs")

    def mismatch(self, saved: dict) -> str | None:
        """The first key (other than RESUMABLE) where `saved` differs from this config."""
        mine = self.to_dict()
        for k, v in mine.items():
            if k in self.RESUMABLE:
                continue
            if k in saved and saved[k] != v:
                return f"{k}: {saved[k]!r} -> {v!r}"
        return None
