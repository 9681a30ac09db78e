"""Training-step time with and without `last_only` in the top self-attention layer (A/B, one process).

    OMP_NUM_THREADS=1 python bench/bench_last_only.py --models mult emoe atsuko --pairs 5

MulT, EMOE and Atsuko read only the last position of their self-attention stacks, and
`TransformerEncoder(..., last_only=True)` computes only that row in the top layer. The "off" side
patches the encoder to compute every row and take the last, which is what the models did before.
Both sides use the same model, weights and batch (full-size synthetic MOSI, each model's MOSI
config, `use_bert=false`), one optimizer-free step each (forward + loss + backward), alternating,
with the order swapped every pair.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mmsa_atsuko.models.common import transformer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["mult", "emoe", "atsuko"])
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--cache", default="/tmp/profile-step-cache")
    args = p.parse_args()

    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.registry import build_model

    pkl, _ = ensure_synthetic("mosi", args.cache, size="full", aligned=args.aligned)
    data = load_dataset("mosi", aligned=args.aligned, feature_path=pkl)
    real_forward = transformer.TransformerEncoder.forward

    def full_then_last(self, x_q, x_k=None, x_v=None, last_only=False):
        out = real_forward(self, x_q, x_k, x_v)
        return out[-1] if last_only else out

    print(f"full-size synthetic MOSI ({'aligned' if args.aligned else 'unaligned'}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), {args.pairs} pairs")
    for name in args.models:
        config = load_config(name, "mosi", overrides=[("use_bert", False)])
        torch.manual_seed(0)
        model = build_model(name, config, data.spec)
        if hasattr(model, "on_fit_start"):
            model.on_fit_start(data.train)
        model.train()
        batch = data.train.batch(torch.arange(config.batch_size))

        def step():
            t0 = time.perf_counter()
            model.loss(model(batch), batch)["total"].backward()
            model.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        times = {"on": [], "off": []}
        step()                                                  # warm-up (allocator, position tables)
        for i in range(args.pairs):
            for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
                transformer.TransformerEncoder.forward = real_forward if side == "on" else full_then_last
                times[side].append(step())
        transformer.TransformerEncoder.forward = real_forward
        on, off = statistics.median(times["on"]), statistics.median(times["off"])
        print(f"{name:8s} batch {config.batch_size}: last_only {on:.3f} s/step, full {off:.3f} s/step, "
              f"ratio {on / off:.2f}x", flush=True)


if __name__ == "__main__":
    main()
