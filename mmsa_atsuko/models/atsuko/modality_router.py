"""Modality router with its two paths (paper §3.1, Eq. 3; docs/atsuko.md §6). EMOE's router.

    w = softmax( W2 relu( normalize_L2( W1 z ) ) / tau_m )          (B, M), M = 3, order L, V, A

W1 = Linear(D_in, D_in // 8), W2 = Linear(D_in // 8, M), both with bias (EMOE `Router`).

- Pre-Attention path (`route_path='pre'`, EMOE's scheme, default): z is the flattened,
  feature-wise concatenation of the band-refined sequences, time-aligned to the text length:
  z = flatten([X'_L, Align_V(X'_V), Align_A(X'_A)]) with D_in = 3 d T'_L, where
  Align_m = Linear(T'_m, T'_L) acts on the time axis and exists only when T'_m != T'_L.
  This is the very large layer of EMOE (about 196M parameters at MOSI with raw features).
- Post-Attention path (`route_path='post'`): z = concat[h_L, h_V, h_A], D_in = 3 d, no detach.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROUTE_PATHS = ("pre", "post")            # what Atsuko dispatches on, as configs/atsuko.yaml checks: lists them
ROUTER_INPUTS = ("refined", "raw")       # pre path reads X' (paper; §6) or the raw input features (EMOE)


class ModalityRouter(nn.Module):
    """Eq. 3: EMOE's router. Linear, L2-normalise (unit hypersphere), ReLU, Linear, /tau, softmax."""

    def __init__(self, input_dim: int, num_experts: int = 3, temperature: float = 0.1):
        super().__init__()
        hidden = max(1, input_dim // 8)
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_experts)
        self.temperature = temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(F.normalize(self.fc1(z), p=2, dim=1))
        return F.softmax(self.fc2(hidden) / self.temperature, dim=-1)


class PreAttentionInput(nn.Module):
    """Builds the pre-path router input z (B, T'_L sum_m d_m) from X'_L, X'_V, X'_A (§6),
    or, with router_input=raw, from the input features (EMOE's router input, d_m their dims).

    `lengths` maps 'L', 'V', 'A' to the sequence lengths. The Align linears map time T_m -> T_L
    (EMOE's `transfer_v_ali`/`transfer_a_ali`), one per modality whose length differs from text.
    """

    def __init__(self, lengths: dict):
        super().__init__()
        self.text_length = lengths["L"]
        self.align = nn.ModuleDict({
            m: nn.Linear(lengths[m], self.text_length) for m in ("V", "A") if lengths[m] != self.text_length
        })

    def input_dim(self, dims) -> int:
        """The width of z for per-modality feature dims `dims` ('L', 'V', 'A'), or one dim for all three."""
        total = 3 * dims if isinstance(dims, int) else sum(dims.values())
        return total * self.text_length

    def forward(self, x: dict) -> torch.Tensor:
        aligned = [x["L"]]
        for m in ("V", "A"):
            seq = x[m]                                                        # (B, T'_m, d_m)
            if m in self.align:
                seq = self.align[m](seq.transpose(1, 2)).transpose(1, 2)      # time axis -> T'_L
            aligned.append(seq)
        return torch.cat(aligned, dim=-1).flatten(1)                          # (B, T'_L * sum d_m)
