"""CPU training step of the models' LSTMs: packed vs unpacked, oneDNN vs ATen kernels (A/B, one process).

    OMP_NUM_THREADS=1 python bench/bench_lstm.py [--pairs 7]
    python bench/bench_lstm.py --device cuda        # packed vs ours on cuDNN (oneDNN/ATen are CPU-only)

Each row is one LSTM shape a model uses on MOSI (batch, frames, input -> hidden), with lengths
drawn uniformly from [T/4, T]. A step is forward + backward of the final states (and of all
outputs for MISA's first layer). The variants:

- `packed`: nn.LSTM on a PackedSequence, what MMSA and our code before `mmsa_atsuko.models.common.rnn`
  did. PyTorch's CPU implementation slices the packed input once per step; each slice's backward
  zero-fills a tensor of the whole packed input.
- `onednn` / `aten`: `ours` with its kernel switch forced: PyTorch's default CPU kernel (oneDNN),
  or ATen's own LSTM (which skips the gradient of an input that needs none; MISA's second layer,
  whose input does need one, is not in the table).
- `ours`: what `LSTMEncoder` / `BiLSTM` do now (one of the two above, by
  `ATEN_LSTM_MIN_PROJECTION`).
Variants alternate within each pair, in an order rotated every pair; the table gives medians.
The last column compares `ours` with what that model ran before: `packed` for Self-MM and MISA,
`onednn` over the padded text for TFN and LMF (they never packed).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mmsa_atsuko.models.common import rnn as rnn_module

# (name, what the model ran before, batch, frames, input, hidden, bidirectional)
SHAPES = [
    ("TFN text, MOSI", "onednn", 32, 50, 768, 128, False),
    ("LMF text, MOSI", "onednn", 64, 50, 768, 128, False),
    ("LMF text, small preset", "onednn", 16, 50, 768, 16, False),
    ("Self-MM audio, MOSI", "packed", 16, 375, 5, 16, False),
    ("Self-MM vision, MOSI", "packed", 16, 500, 20, 32, False),
    ("MISA audio layer 1, MOSI", "packed", 16, 375, 5, 5, True),
    ("MISA vision layer 1, MOSI", "packed", 16, 500, 20, 20, True),
]


def step_fn(variant: str, device: torch.device, batch: int, frames: int, in_size: int, hidden: int,
            bidirectional: bool):
    torch.manual_seed(0)
    x = torch.randn(batch, frames, in_size, device=device)
    lengths = torch.randint(frames // 4, frames + 1, (batch,), device=device)
    if bidirectional:
        packed_rnn = nn.LSTM(in_size, hidden, bidirectional=True, batch_first=True).to(device)
        ours = rnn_module.BiLSTM(in_size, hidden).to(device)
    else:
        packed_rnn = nn.LSTM(in_size, hidden, batch_first=True).to(device)
        ours = rnn_module.LSTMEncoder(in_size, hidden).to(device)

    def packed():
        out, (h_n, _) = packed_rnn(pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))
        (h_n.sum() + out.data.sum()).backward()

    def current():
        if bidirectional:
            outputs, final = ours(x, lengths)
            (final.sum() + outputs.sum()).backward()
        else:
            ours(x, lengths).sum().backward()

    def with_kernel(threshold: float):
        """`ours` with the kernel switch forced: inf = always oneDNN, 0 = ATen for data input."""
        def run():
            chosen = rnn_module.ATEN_LSTM_MIN_PROJECTION
            rnn_module.ATEN_LSTM_MIN_PROJECTION = threshold
            try:
                current()
            finally:
                rnn_module.ATEN_LSTM_MIN_PROJECTION = chosen
        return run

    return {"packed": packed, "onednn": with_kernel(float("inf")), "aten": with_kernel(0), "ours": current}[variant]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    variants = ["packed", "ours"] if cuda else ["packed", "onednn", "aten", "ours"]
    where = torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} thread(s)"
    print(f"torch {torch.__version__}, {where}; ms per training step (median of {args.pairs})")
    print("| LSTM | B, T, in -> H | " + " | ".join(variants) + " | ours / before |")
    print("|---|---|" + "---|" * (len(variants) + 1))
    for name, before, *shape in SHAPES:
        fns = {v: step_fn(v, device, *shape) for v in variants}
        if cuda:
            before = "packed"         # only packed and ours exist on CUDA
        for fn in fns.values():          # warm-up
            fn()
        times = {v: [] for v in variants}
        for pair in range(args.pairs):
            order = variants[pair % len(variants):] + variants[:pair % len(variants)]
            for v in order:
                if cuda:
                    torch.cuda.synchronize(device)
                t = time.perf_counter()
                fns[v]()
                if cuda:
                    torch.cuda.synchronize(device)
                times[v].append(time.perf_counter() - t)
        med = {v: statistics.median(ts) * 1000 for v, ts in times.items()}
        b, t, i, h, bid = shape
        cells = " | ".join(f"{med[v]:.1f}" for v in variants)
        print(f"| {name} | {b}, {t}, {i} -> {h}{' x2' if bid else ''} | {cells} | {med['ours'] / med[before]:.2f}x ({before}) |",
              flush=True)


if __name__ == "__main__":
    main()
