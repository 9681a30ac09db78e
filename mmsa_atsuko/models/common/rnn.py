"""LSTMs over padded (B, T, d) sequences, with or without the true lengths.

MMSA's TFN/LMF read the text LSTM over the whole padded sequence; Self-MM and MISA pack with
the true lengths. Packing is not used here: PyTorch's CPU LSTM on a PackedSequence slices its
input once per time step, and each slice's backward zero-fills a tensor of the whole packed
input, so a training step costs O(T^2) memory traffic (7-20x slower than unpacked at T = 375-500,
bench/README.md "LSTMs on CPU"). An LSTM is causal, so running it over the padded
sequence and reading each sample's output at its own last frame gives exactly the packed final
state; the backward direction runs over each sample's frames reversed in place.
"""
from __future__ import annotations

import torch
from torch import nn


# Training on CPU, PyTorch runs unpacked float input on oneDNN's LSTM, which always computes the
# input's gradient. For pre-extracted features (no gradient wanted) with a big input projection,
# ATen's own LSTM, which skips it, is faster: 1.4x at batch 64, 768 -> 128 (TFN/LMF text). For small
# projections oneDNN's one-kernel sequence wins, 8-12x at 5-20 -> 5-32 over 375-500 frames
# (Self-MM, MISA). The threshold is the per-step projection size B * in * 4H where the two cross
# (bench/bench_lstm.py; bench/README.md, "LSTMs on CPU").
ATEN_LSTM_MIN_PROJECTION = 6_000_000


def _use_aten_lstm(rnn: nn.LSTM, x: torch.Tensor) -> bool:
    return (torch.is_grad_enabled() and x.is_cpu and not x.requires_grad
            and x.shape[0] * rnn.input_size * 4 * rnn.hidden_size >= ATEN_LSTM_MIN_PROJECTION)


def _run_lstm(rnn: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """rnn(x)'s outputs (B, T, H * directions) for unpacked x, on the faster CPU kernel."""
    if not _use_aten_lstm(rnn, x):
        return rnn(x)[0]
    onednn_was_enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return rnn(x)[0]
    finally:
        torch.backends.mkldnn.enabled = onednn_was_enabled


def valid_lengths(lengths: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Lengths as int64 in [1, T] on x's device, for x (B, T, d): a sample with no valid frame
    reads one (padding) frame, as pack_padded_sequence would need."""
    return lengths.to(device=x.device, dtype=torch.long).clamp(min=1, max=x.shape[1])


def last_frame(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs[b, lengths[b] - 1] for every sample b: (B, T, H) -> (B, H)."""
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]


def reverse_valid_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sample's first lengths[b] frames in place; padding frames stay where they are.

    Applying it twice gives x back, so it also maps the outputs of a reversed run home.
    """
    t = torch.arange(x.shape[1], device=x.device)
    source = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)       # (B, T)
    return x.gather(1, source.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class LSTMEncoder(nn.Module):
    """A unidirectional LSTM; returns the last layer's final hidden state, (B, hidden).

    With `lengths`, the final state is the one after each sample's own last frame (what
    nn.LSTM returns for a packed sequence); without, after the last padded frame.
    """

    def __init__(self, in_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        # PyTorch warns about (and ignores) inter-layer dropout on a 1-layer LSTM; MMSA zeroes it.
        self.rnn = nn.LSTM(in_size, hidden_size, num_layers=num_layers,
                           dropout=dropout if num_layers > 1 else 0.0, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return _run_lstm(self.rnn, x)[:, -1]
        lengths = valid_lengths(lengths, x)
        # Frames past the longest sample cannot reach any sample's final state.
        return last_frame(_run_lstm(self.rnn, x[:, :int(lengths.max())]), lengths)


class BiLSTM(nn.Module):
    """One bidirectional LSTM layer over each sample's first `lengths` frames.

    Computes what nn.LSTM(bidirectional=True) computes on the packed sequence. The two
    directions are separate nn.LSTMs, created in nn.LSTM's own parameter order, so a seed
    gives the same initial weights as one bidirectional nn.LSTM.
    forward returns (outputs (B, max(lengths), 2H), zero past each length, as
    pad_packed_sequence gives them; final (2, B, H), forward then backward, as h_n).
    """

    def __init__(self, in_size: int, hidden_size: int):
        super().__init__()
        self.forward_rnn = nn.LSTM(in_size, hidden_size, batch_first=True)
        self.backward_rnn = nn.LSTM(in_size, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = valid_lengths(lengths, x)
        x = x[:, :int(lengths.max())]
        forward_out = _run_lstm(self.forward_rnn, x)
        reversed_out = _run_lstm(self.backward_rnn, reverse_valid_frames(x, lengths))
        final = torch.stack([last_frame(forward_out, lengths), last_frame(reversed_out, lengths)])
        outputs = torch.cat([forward_out, reverse_valid_frames(reversed_out, lengths)], dim=-1)
        valid = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        return outputs * valid.unsqueeze(-1).to(outputs.dtype), final
