"""Checkpoints: `DIR/checkpoint/` holds model.safetensors, config.json (the model config, the
tokenizer hash, the step) and a copy of the tokenizer, so a checkpoint loads on its own; the
trainer state (optimizer, step) sits beside it in trainer.pt for resuming.

A checkpoint is written to `DIR/.checkpoint.tmp/` and swapped in by rename, so a kill at any
moment leaves either the previous complete checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from synth.errors import SynthError

CKPT = "checkpoint"
FORMAT = "synth-hybrid-v1"


def checkpoint_dir(path: str | Path) -> Path:
    """Accept a training folder or the checkpoint folder itself."""
    p = Path(path)
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        return p
    if (p / CKPT / "model.safetensors").is_file():
        return p / CKPT
    if (p / f".{CKPT}.old" / "model.safetensors").is_file():  # killed mid-swap
        return p / f".{CKPT}.old"
    raise SynthError(f"{p}: not a synth checkpoint (no model.safetensors + config.json); "
                     "give the --out folder of `synth train pretrain|distill`")


def is_hybrid_checkpoint(path: str | Path) -> bool:
    try:
        d = checkpoint_dir(path)
        return json.loads((d / "config.json").read_text()).get("format") == FORMAT
    except (SynthError, OSError, json.JSONDecodeError):
        return False


def save(out: Path, model, tok, *, step: int, tokens: int, trainer_state: dict | None = None,
         extra: dict | None = None) -> Path:
    import torch
    from safetensors.torch import save_model

    from synth.train.tokenizer import copy_tokenizer

    tmp = out / f".{CKPT}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    meta = {"format": FORMAT, "model": model.cfg.to_dict(), "tokenizer_sha256": tok.sha256,
            "vocab_size": tok.vocab_size, "eos_id": tok.eos_id, "step": step, "tokens": tokens,
            **(extra or {})}
    (tmp / "config.json").write_text(json.dumps(meta, indent=2))
    copy_tokenizer(tok, tmp)
    if trainer_state is not None:
        torch.save(trainer_state, tmp / "trainer.pt")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final, old = out / CKPT, out / f".{CKPT}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def read_meta(path: str | Path) -> dict:
    d = checkpoint_dir(path)
    try:
        meta = json.loads((d / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise SynthError(f"{d / 'config.json'}: not valid JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise SynthError(f"{d}: not a synth hybrid checkpoint (format {meta.get('format')!r})")
    return meta


def load_model(path: str | Path, *, nvfp4: bool | None = None):
    """The model of a checkpoint, in eval mode. `nvfp4` overrides the saved setting (a
    quantization-aware student's full-precision teacher is the same weights without NVFP4)."""
    import dataclasses

    from synth.model import HybridConfig, HybridLM

    d = checkpoint_dir(path)
    meta = read_meta(d)
    cfg = HybridConfig.from_dict(meta["model"])
    if nvfp4 is not None:
        cfg = dataclasses.replace(cfg, nvfp4=nvfp4)
    model = HybridLM(cfg)
    try:
        load_weights(model, d / "model.safetensors")
    except SynthError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise SynthError(f"{d / 'model.safetensors'}: cannot load ({type(e).__name__}: {e})") from None
    model.eval()
    return model, meta


# model state a checkpoint may lack because older synth versions did not save it
OPTIONAL_STATE = {"token_counts"}


def load_weights(model, file: str | Path) -> None:
    """Load model.safetensors into `model`: every tensor must match, except that a checkpoint
    written before OPTIONAL_STATE existed loads with those left at their initial values."""
    from safetensors.torch import load_model as st_load

    missing, unexpected = st_load(model, str(file), strict=False)
    missing = sorted(set(missing) - OPTIONAL_STATE)
    if missing or unexpected:
        raise SynthError(f"{file}: does not match the model (missing {missing}, "
                         f"unexpected {sorted(unexpected)})")


def trainer_state(path: Path) -> dict | None:
    import torch

    f = path / "trainer.pt"
    return torch.load(f, map_location="cpu", weights_only=False) if f.is_file() else None
