"""LSTM over padded sequences, with or without the true lengths.

MMSA's TFN/LMF read the text LSTM over the whole padded sequence (no packing), while
Self-MM and MISA pack with lengths. One block serves both: `lengths=None` reads everything.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence


class LSTMEncoder(nn.Module):
    """Returns the final hidden state of the last layer, (B, hidden * directions)."""

    def __init__(self, in_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__()
        # PyTorch warns about (and ignores) inter-layer dropout on a 1-layer LSTM; MMSA zeroes it.
        self.rnn = nn.LSTM(in_size, hidden_size, num_layers=num_layers,
                           dropout=dropout if num_layers > 1 else 0.0,
                           bidirectional=bidirectional, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None:
            # pack_padded_sequence rejects zero lengths; a sample with no valid frame reads one
            # (zero) frame instead.
            x = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        if torch.is_grad_enabled() and not isinstance(x, PackedSequence) and x.is_cpu:
            # PyTorch sends unpacked float CPU input to oneDNN's LSTM, whose training step is
            # 1.4-1.6x slower than ATen's own (bench/README.md, "oneDNN LSTM"); inference is
            # 10% faster on oneDNN, so only the grad-enabled path switches.
            onednn_was_enabled = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
            try:
                _, (h_n, _) = self.rnn(x)
            finally:
                torch.backends.mkldnn.enabled = onednn_was_enabled
        else:
            _, (h_n, _) = self.rnn(x)
        if self.rnn.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]
