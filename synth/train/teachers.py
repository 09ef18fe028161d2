"""Teachers run in the loop (online distillation): a synth hybrid checkpoint, or a Hugging Face
causal LM folder / embedded alias (e.g. `smollm2-135m`, the embedded teacher itself).

Every teacher must share the student's tokenizer: its tokenizer.json hash must match."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synth.errors import SynthError


@dataclass
class Teacher:
    name: str
    weight: float
    model: object
    kind: str  # "hybrid" | "hf"

    def logits(self, input_ids):
        import torch

        with torch.no_grad():
            if self.kind == "hybrid":
                return self.model(input_ids).logits
            return self.model(input_ids=input_ids).logits


def load_teacher(spec: str, weight: float, tok) -> Teacher:
    import torch

    from synth.train import checkpoint
    from synth.train.tokenizer import TOKENIZER_FILE, file_sha256

    if checkpoint.is_hybrid_checkpoint(spec):
        # A quantization-aware student distils from the same weights in full precision.
        model, meta = checkpoint.load_model(spec, nvfp4=False)
        if meta.get("tokenizer_sha256") != tok.sha256:
            raise SynthError(f"tokenizer mismatch: teacher {spec} was trained with another tokenizer")
        return Teacher(spec, weight, model, "hybrid")
    from synth.models import resolve

    folder = Path(resolve(spec))
    tj = folder / TOKENIZER_FILE
    if not tj.is_file():
        raise SynthError(f"teacher {spec}: no {TOKENIZER_FILE} in {folder}")
    if file_sha256(tj) != tok.sha256:
        raise SynthError(f"tokenizer mismatch: teacher {spec} ({tj}) does not use the student's "
                         f"tokenizer ({tok.path / TOKENIZER_FILE})")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as e:  # pragma: no cover - depends on extras
        raise SynthError(f"a Hugging Face teacher needs transformers ({e}): pip install 'synth[cpu]'")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return Teacher(spec, weight, model, "hf")
