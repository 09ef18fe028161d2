"""The compact hybrid language model (Mamba-2 + attention + MoE + multi-token prediction) that
synth trains on its synthetic data. Imports torch; `import synth` never imports this package.

    model = HybridLM(config_by_name("tiny"))
    out = model(input_ids, targets)            # out.loss, out.logits, out.mtp_logits, ...
    ids, stats = model.generate(prompt_ids, 64, speculative=True)
"""

from synth.model.hybrid import CONFIGS, HybridConfig, HybridLM, HybridOutput, config_by_name

__all__ = ["CONFIGS", "HybridConfig", "HybridLM", "HybridOutput", "config_by_name"]
