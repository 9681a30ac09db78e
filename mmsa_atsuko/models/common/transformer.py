"""The MulT/DMD transformer encoder that EMOE and Atsuko run per modality (and MulT cross-modally).

Sequence-first like MulT: inputs are (T, B, d). What it computes, following MulT's
`modules/transformer.py` (as vendored in MMSA, DMD and EMOE):

    x = sqrt(d) * x_in + position(x_in)          sinusoidal positions, table rows 1..T
    x = dropout(x, embed_dropout)
    each layer (pre-LayerNorm):
        x = x + dropout(Attn(LN0(x), LN0(k), LN0(v)), res_dropout)       k = v = x for self-attention
        x = x + dropout(W2 dropout(relu(W1 LN1(x)), relu_dropout), res_dropout)   W1: d -> 4d
    out = LayerNorm(x)

With `attn_mask=True` a causal future mask is used; for cross-modal attention of lengths
(T_q, T_k) MulT masks key j for query i when j > i + |T_k - T_q|, which we reproduce.

Attention is torch's `scaled_dot_product_attention` over MulT's parameterisation (one packed
in-projection of shape (3d, d) with bias, then an output Linear): the same maths as MulT's
hand-written attention (queries scaled by head_dim^-1/2, softmax, dropout on the weights).

Position embedding (`positions`):
- "none": no positions. MMSA 2.2.1 builds MulT's encoders so (`position_embedding=False`, its
  default, which MULT.py never changes).
- "from_input": MulT/EMOE's sinusoids computed from `x_in[:, :, 0]` with padding_idx 0, so a
  frame whose first channel is exactly 0 gets *no* position embedding (EMOE).
- "table", the default, DECISION: the same sinusoid rows (1..T) for every frame. Reason: a float
  equality test on one channel is fragile, and in Atsuko the spectral band routing mixes frames
  over time, so padded frames are no longer zero when they reach the encoder.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError


def sinusoidal_position_table(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq/MulT sinusoids for integer `positions` (any shape) -> positions.shape + (dim,).

    Half the channels are sin, half cos (not interleaved), frequencies 10000^(-i/(half-1)),
    an odd `dim` gets a zero last channel: exactly MulT's `SinusoidalPositionalEmbedding`.
    """
    half = dim // 2
    step = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=positions.device) * -step)
    angles = positions.to(torch.float32).unsqueeze(-1) * freqs
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2 == 1:
        table = F.pad(table, (0, 1))
    return table


def future_mask(len_q: int, len_k: int, device) -> torch.Tensor:
    """Boolean (len_q, len_k) mask, True where attention is allowed (MulT `buffered_future_mask`).

    MulT forbids key j for query i when j >= i + 1 + |len_k - len_q|; for self-attention that is
    the usual causal mask.
    """
    offset = 1 + abs(len_k - len_q)
    forbidden = torch.ones(len_q, len_k, dtype=torch.bool, device=device).triu(diagonal=offset)
    return ~forbidden


def check_heads(width: int, heads: int, keys: str) -> None:
    """UsageError (one line) unless attention `width` splits evenly into `heads` heads, checked when a model is
    built (before any run folder) so that a config value is not torch's traceback; `keys` names the config
    key(s) that set them."""
    if width % heads:
        raise UsageError(f"{keys}: a width of {width} does not split into {heads} attention heads; make the width a "
                         f"multiple of the heads (e.g. {width - width % heads + heads}) or the heads "
                         f"a divisor of {width}")


class MultiheadAttention(nn.Module):
    """MulT's multi-head attention (packed in-projection with bias, output Linear), via SDPA."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        # MulT's initialisation (its `reset_parameters`): Xavier on the packed projection and on
        # the output projection, zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, d) -> (B, heads, T, head_dim)."""
        length, batch, _ = x.shape
        return x.reshape(length, batch, self.num_heads, -1).permute(1, 2, 0, 3)

    def forward(self, query, key, value, allowed: torch.Tensor | None = None, causal: bool = False):
        d = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            q, k, v = F.linear(query, w, b).chunk(3, dim=-1)      # self-attention: one matmul
        else:
            q = F.linear(query, w[:d], b[:d])
            k = F.linear(key, w[d:2 * d], b[d:2 * d])
            v = F.linear(value, w[2 * d:], b[2 * d:])
        out = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v),
            attn_mask=allowed, is_causal=causal and allowed is None,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )                                                          # (B, heads, T_q, head_dim)
        out = out.permute(2, 0, 1, 3).reshape(query.shape[0], query.shape[1], d)
        return self.out_proj(out)


class TransformerEncoderLayer(nn.Module):
    """One pre-LN MulT block: attention then a 4d ReLU feed-forward, each with a residual."""

    def __init__(self, embed_dim, num_heads, attn_dropout=0.0, relu_dropout=0.0, res_dropout=0.0,
                 attn_mask=False):
        super().__init__()
        self.attention = MultiheadAttention(embed_dim, num_heads, attn_dropout)
        self.attn_mask = attn_mask
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout
        self.fc1 = nn.Linear(embed_dim, 4 * embed_dim)
        self.fc2 = nn.Linear(4 * embed_dim, embed_dim)
        self.norm_attn = nn.LayerNorm(embed_dim)
        self.norm_ffn = nn.LayerNorm(embed_dim)
        for fc in (self.fc1, self.fc2):           # MulT's Linear(): Xavier weight, zero bias
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x, x_k=None, x_v=None, last_only: bool = False):
        """(T, B, d) -> (T, B, d), or with `last_only` just the last position, (1, B, d).

        The last query may attend to every key under MulT's future mask (its row forbids
        j >= T_q + |T_k - T_q| >= T_k), so `last_only` needs no mask and computes exactly that
        row of the full output, for 1/T of the query-side work.
        """
        residual = x[-1:] if last_only else x
        x = self.norm_attn(x)
        query = x[-1:] if last_only else x
        masked = self.attn_mask and not last_only              # the last row is never masked
        if x_k is None:                                        # self-attention
            x = self.attention(query, x, x, causal=masked)
        else:                                                  # cross-modal: MulT normalises k and v with the same LN
            x_k = self.norm_attn(x_k)
            x_v = self.norm_attn(x_v)
            allowed = future_mask(x.shape[0], x_k.shape[0], x.device) if masked else None
            x = self.attention(query, x_k, x_v, allowed=allowed)
        x = residual + F.dropout(x, p=self.res_dropout, training=self.training)

        residual = x
        x = F.relu(self.fc1(self.norm_ffn(x)))
        x = F.dropout(x, p=self.relu_dropout, training=self.training)
        x = F.dropout(self.fc2(x), p=self.res_dropout, training=self.training)
        return residual + x


POSITIONS = ("none", "table", "from_input")


class TransformerEncoder(nn.Module):
    """MulT's TransformerEncoder. forward(x_q) for self-attention, forward(x_q, x_k, x_v) cross-modal.

    All inputs are sequence-first (T, B, d); the output has x_q's shape.
    """

    def __init__(self, embed_dim: int, num_heads: int, layers: int, attn_dropout: float = 0.0,
                 relu_dropout: float = 0.0, res_dropout: float = 0.0, embed_dropout: float = 0.0,
                 attn_mask: bool = False, positions: str = "table"):
        super().__init__()
        if positions not in POSITIONS:
            raise UsageError(f"positions must be one of {', '.join(POSITIONS)}; got {positions!r}")
        self.embed_dim = embed_dim
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_dropout = embed_dropout
        self.positions = positions
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(embed_dim, num_heads, attn_dropout, relu_dropout, res_dropout, attn_mask)
            for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim)
        self._tables = {}    # (length, device, dtype) -> (T, 1, d) position table; built once each

    def _position_table(self, length: int, device, dtype) -> torch.Tensor:
        key = (length, device, dtype)
        if key not in self._tables:
            positions = torch.arange(1, length + 1, device=device)          # MulT rows 1..T (row 0 = padding)
            self._tables[key] = sinusoidal_position_table(positions, self.embed_dim).to(dtype).unsqueeze(1)
        return self._tables[key]

    def _embed(self, x_in: torch.Tensor) -> torch.Tensor:
        """sqrt(d)-scaled input plus sinusoidal positions (see `positions`), then embedding dropout."""
        x = self.embed_scale * x_in
        if self.positions != "none":
            table = self._position_table(x_in.shape[0], x_in.device, x_in.dtype)    # (T, 1, d)
            if self.positions == "from_input":                                    # MulT quirk, see module docstring
                table = table * (x_in[:, :, :1] != 0).to(x_in.dtype)
            x = x + table
        return F.dropout(x, p=self.embed_dropout, training=self.training)

    def forward(self, x_q: torch.Tensor, x_k: torch.Tensor | None = None, x_v: torch.Tensor | None = None,
                last_only: bool = False):
        """(T_q, B, d) -> (T_q, B, d); with `last_only`, only the last position, (B, d).

        MulT, EMOE and Atsuko read only the last position of their self-attention stacks. Its
        value depends on every position of the layers below, but in the top layer only its own
        row is needed: `last_only` computes just that row there, which saves that layer's
        T_q x T_k attention and its feed-forward on T_q - 1 positions (a third of each of
        MulT's 3-layer memory stacks). Same numbers as `forward(...)[-1]`.
        """
        if x_v is not None and x_k is None:
            raise ValueError("x_v given without x_k")
        x = self._embed(x_q)
        if x_k is not None:
            # MulT embeds keys and values separately (independent embedding-dropout masks) even
            # when they are the same tensor.
            x_v = self._embed(x_k if x_v is None else x_v)
            x_k = self._embed(x_k)
        top = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, x_k, x_v, last_only=last_only and i == top)
        x = self.final_norm(x)
        if not last_only:
            return x
        # The top layer returned the last position alone, (1, B, d) (unless there is no layer).
        # Squeezing that is x[-1] as a view whose backward is a view too; x[-1]'s backward
        # builds a zero (1, B, d) tensor and copies the gradient into it.
        return x.squeeze(0) if x.shape[0] == 1 else x[-1]
