"""Time per training epoch of TFN (MMSA's MOSI config) on full-size synthetic MOSI, CPU.

    python bench/bench_tfn_epoch.py [--epochs 3] [--device cpu]

Prints the median seconds per epoch over `--epochs` epochs (the first is included; there is
no warm-up effect worth excluding on CPU) and the samples per second.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dir", default="/tmp/mmsa-bench")
    args = p.parse_args()
    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import write_synthetic
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer

    path = Path(args.dir) / "MOSI" / "Processed" / "unaligned_50.pkl"
    if not path.exists():
        write_synthetic("mosi", path, size="full", seed=0, aligned=False)
    data = load_dataset("mosi", feature_path=path)
    config = load_config("tfn", "mosi")
    set_seed(1111)
    device = torch.device(args.device)
    model = build_model("tfn", config, data.spec).to(device)
    train = data.train.to(device)
    opt = build_optimizer(model, config)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(args.epochs):
        model.train()
        t = time.perf_counter()
        for batch in train.batches(config.batch_size, shuffle=True, generator=g):
            loss = model.loss(model(batch), batch)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    print(f"TFN mosi (MMSA config, batch {config.batch_size}) on {args.device}, torch threads "
          f"{torch.get_num_threads()}: {sec:.2f} s/epoch median of {args.epochs} "
          f"({len(train) / sec:.0f} samples/s); epochs: {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
