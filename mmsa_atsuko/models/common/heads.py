"""Residual MLP prediction head (EMOE/MulT style), shared by several models.

    refined = x + W2( dropout( relu( W1 x ) ) )          W1, W2: Linear(d, d)
    logits  = W_out refined                              Linear(d, C)

EMOE uses one for the fused vector (proj1_c/proj2_c/out_layer_c) and one per modality
(proj1_l/proj2_l/out_layer_l, ...); MulT uses the same block after its cross-modal encoders.

`OutputLinear` is the last Linear of every prediction head: it runs in float32 under bf16 autocast, so that
`--precision bf16` changes the speed of a model, not the resolution of the numbers it is scored on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def float32_region(x: torch.Tensor):
    """A context that turns autocast off on `x`'s device: what runs inside computes in its inputs' dtype."""
    return torch.autocast(x.device.type, enabled=False)


class OutputLinear(nn.Linear):
    """nn.Linear (same parameters, same state-dict keys) that computes in float32 under autocast.

    A bf16 output keeps 8 significant bits: TFN's `sigmoid(y) * 6 - 3` on SIMS took 1-2 distinct values over
    32 test samples (0.375, 0.40625), and a seed whose outputs sat near 0 predicted exactly 0 everywhere (Corr
    NaN). What follows it (a squash such as TFN's sigmoid) stays float32, as autocast leaves float32 inputs of
    elementwise ops alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with float32_region(x):
            return super().forward(x.float())


class ResidualHead(nn.Module):
    """forward(x) -> (refined features (B, d), logits (B, C))."""

    def __init__(self, dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.out = OutputLinear(dim, out_dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.dropout(F.relu(self.fc1(x)), p=self.dropout, training=self.training)
        refined = x + self.fc2(hidden)
        return refined, self.out(refined)
