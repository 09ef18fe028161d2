"""Knowledge-distillation losses (Hinton et al. 2015, "Distilling the knowledge in a neural network").

Both are the forward KL(teacher || student) at temperature T, scaled by T² so gradients keep
their size as T changes, averaged over the positions in `mask`.

* `kd_topk`: offline, from the teacher's top-k log-probabilities stored in the shards. The
  teacher's mass outside its top-k is unknown, so both distributions are renormalized over the
  teacher's top-k tokens (the student's logits gathered at those ids). With the student's
  logits equal to the teacher's, the loss is exactly zero.
* `kd_full`: online, the teacher's full logits over the shared vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(per_pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(per_pos.dtype)
    return (per_pos * m).sum() / m.sum().clamp_min(1.0)


def kd_topk(student_logits: torch.Tensor, top_ids: torch.Tensor, top_lps: torch.Tensor,
            mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """student_logits (B,T,V); top_ids/top_lps (B,T,k), -inf log-probs mark missing entries."""
    t = temperature
    valid = torch.isfinite(top_lps) & mask.unsqueeze(-1)
    s = student_logits.float().gather(-1, top_ids) / t
    s = s.masked_fill(~valid, float("-inf"))
    tl = (top_lps.float() / t).masked_fill(~valid, float("-inf"))
    row_ok = valid.any(-1)
    # rows without any valid entry would be NaN; give them a harmless dummy distribution
    s = torch.where(row_ok.unsqueeze(-1), s, torch.zeros_like(s))
    tl = torch.where(row_ok.unsqueeze(-1), tl, torch.zeros_like(tl))
    log_p = F.log_softmax(tl, dim=-1)
    log_q = F.log_softmax(s, dim=-1)
    p = log_p.exp()
    kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)
    return _masked_mean(kl, mask & row_ok) * t * t


def kd_full(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
            temperature: float = 1.0) -> torch.Tensor:
    """student_logits, teacher_logits (B,T,V) over the same vocabulary."""
    t = temperature
    v = min(student_logits.shape[-1], teacher_logits.shape[-1])  # HF models may pad the vocab
    log_q = F.log_softmax(student_logits[..., :v].float() / t, dim=-1)
    log_p = F.log_softmax(teacher_logits[..., :v].float() / t, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    return _masked_mean(kl, mask) * t * t
