"""Residual MLP prediction head (EMOE/MulT style), shared by several models.

    refined = x + W2( dropout( relu( W1 x ) ) )          W1, W2: Linear(d, d)
    logits  = W_out refined                              Linear(d, C)

EMOE uses one for the fused vector (proj1_c/proj2_c/out_layer_c) and one per modality
(proj1_l/proj2_l/out_layer_l, ...); MulT uses the same block after its cross-modal encoders.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualHead(nn.Module):
    """forward(x) -> (refined features (B, d), logits (B, C))."""

    def __init__(self, dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, out_dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.dropout(F.relu(self.fc1(x)), p=self.dropout, training=self.training)
        refined = x + self.fc2(hidden)
        return refined, self.out(refined)
