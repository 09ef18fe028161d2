"""Sampling from a checkpoint (used by `synth train sample` and the `hybrid` backend)."""

from __future__ import annotations

from pathlib import Path

from synth.errors import SynthError


def load(checkpoint: str | Path):
    from synth.train import checkpoint as ck
    from synth.train.tokenizer import load_tokenizer

    d = ck.checkpoint_dir(checkpoint)
    model, meta = ck.load_model(d)
    tok = load_tokenizer(d)
    if tok.sha256 != meta.get("tokenizer_sha256"):
        raise SynthError(f"{d}: tokenizer.json does not match the one the model was trained with")
    return model, tok


def generate_text(checkpoint, prompt: str, *, max_tokens: int = 64, temperature: float = 0.0,
                  top_p: float = 1.0, seed: int = 0, chat: bool = False, speculative: bool = False,
                  max_drafts: int | None = None):
    import torch

    model, tok = load(checkpoint)
    text = tok.render_chat([{"role": "user", "content": prompt}]) if chat else prompt
    ids = tok.encode(text)
    if not ids:
        raise SynthError("--prompt is empty after tokenization")
    import time

    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    # a chat turn ends with <|im_end|>; raw text (pretraining) with the document separator
    eos = tok.eos_id if chat else tok.doc_sep_id
    new, stats = model.generate(ids, max_tokens, eos_id=eos, temperature=temperature,
                                top_p=top_p, generator=g, speculative=speculative,
                                max_drafts=max_drafts)
    stats = dict(stats)
    stats["tokens"] = len(new)
    stats["seconds"] = time.perf_counter() - t0
    return tok.decode(new), stats
