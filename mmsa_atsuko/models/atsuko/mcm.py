"""Marginal Complementarity Module (paper §3.2, Eq. 5-9; docs/atsuko.md §9-§10).

- Eq. 5, bimodal branches: for each excluded modality m, y_hat_{-m} = g_{-m}(concat[h_j, h_l])
  over the remaining pair (j, l) in L, V, A order, reusing the shared encoders' h.
- Complementarity importance (Shapley-style marginal contribution of m):
  phi_m = sg( loss(y_hat_{-m}, y) - loss(y_hat, y) ) per sample, (B, 3).
- Eq. 6: target q = softmax(phi / tau_c). Removing a more useful modality raises the loss
  more, so it gets more target mass.
- Eq. 7: L_comp = (1/B) sum_b KL(q_b || w_b); q is a constant, so only the router learns from it.
- Eq. 8: teacher t = sg( sum_m w_m r_m ), r_m the refined unimodal features.
- Eq. 9: L_d = (1/B) sum_b mean_c ( softmax(c_proj)_c - softmax(t)_c )^2 (EMOE's uni_distill),
  `distill_form=softmax_mse` (§10); `kl` is (1/B) sum_b KL(softmax(t_b) || softmax(c_proj_b)),
  the other reading of "distributional discrepancy" (§18); `off` drops L_d.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common.heads import OutputLinear
from .modalities import MODALITIES

EPS = 1e-9   # EMOE's clamp for logs
DISTILL_FORMS = ("softmax_mse", "kl", "off")   # distillation_loss's cases and off, as configs/atsuko.yaml lists them


def remaining_pair(excluded: str) -> tuple[str, str]:
    """The two modalities left when `excluded` is dropped, in canonical L, V, A order."""
    return tuple(m for m in MODALITIES if m != excluded)


class BimodalHeads(nn.Module):
    """Eq. 5: one prediction network per excluded modality, g_{-m}: Linear(2d, d), ReLU, Dropout, Linear(d, C).

    DECISION: concatenation of the pair (the paper's ⊕) and a 2-layer MLP head.
    forward(h) with h = {'L','V','A': (B, d)} -> {'-L','-V','-A': (B, C) logits}.
    """

    def __init__(self, dim: int, out_dim: int, dropout: float):
        super().__init__()
        self.bimodal_heads = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout), OutputLinear(dim, out_dim))
            for m in MODALITIES
        })

    def forward(self, h: dict) -> dict:
        return {f"-{m}": head(torch.cat([h[j] for j in remaining_pair(m)], dim=-1))
                for m, head in self.bimodal_heads.items()}


def complementarity_importance(loss_bimodal: torch.Tensor, loss_full: torch.Tensor) -> torch.Tensor:
    """phi (B, 3) = sg(loss without m - loss with all), columns L, V, A. Gradient stopped."""
    return (loss_bimodal - loss_full.unsqueeze(-1)).detach()


def complementarity_target(phi: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 6: q = softmax(phi / tau_c), (B, 3), a constant (phi is detached)."""
    phi = phi.detach()
    # phi / 1.0 is phi exactly: at the default tau_c the division (one launch) is skipped.
    return F.softmax(phi if temperature == 1.0 else phi / temperature, dim=-1)


def complementarity_loss(q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 7: (1/B) sum_b KL(q_b || w_b) = (1/B) sum_b sum_m q (log q - log w)."""
    return F.kl_div(torch.log(weights.clamp_min(EPS)), q, reduction="batchmean")


def distillation_teacher(weights: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """Eq. 8: t = sg(sum_m w_m r_m), weights (B, M), refined (B, M, d) -> (B, d).

    DECISION: the whole teacher is detached (w and r, as EMOE does), so L_d trains only the
    fused (student) branch.
    """
    return torch.einsum("bm,bmd->bd", weights, refined).detach()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, form: str = "softmax_mse") -> torch.Tensor:
    """Eq. 9, softmax over features: `softmax_mse`, the mean over batch and features of
    (softmax(c_proj) - softmax(t))^2; `kl`, (1/B) sum_b KL(softmax(t_b) || softmax(c_proj_b))."""
    if form == "softmax_mse":
        return F.mse_loss(F.softmax(student, dim=-1), F.softmax(teacher.detach(), dim=-1))
    if form == "kl":
        return F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher.detach(), dim=-1),
                        reduction="batchmean", log_target=True)
    raise ValueError(f"distill_form must be softmax_mse or kl here, got {form!r}")
