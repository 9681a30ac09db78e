"""How often `valid_loss: mmsa` (MMSA's valid loss: the mean of batch means, rounded to 4 places) picks another best
epoch than the default `exact` (the per-sample mean), and how far the test metrics move when it does.

Synthetic data only (every number this prints is on synthetic MOSI). Each (model, seed, batch size) trains twice,
once per rule, with everything else equal; training is deterministic on the CPU, so the two runs are the same run
up to the first epoch where the rules disagree. Batch size 16 splits the 32 small valid samples into two full
batches (only the rounding differs); 12 into 12 + 12 + 8 (the partial batch weighs as much as a full one). At full
size (229 valid samples) MMSA's MOSI batch sizes leave partial batches too: 32 (TFN's) 7 x 32 + 5, 64 (LMF's)
3 x 64 + 37. The models keep their small preset's widths, so a full-size run takes seconds.

    python bench/valid_loss_rules.py --out /tmp/valid-loss-rules          # bench/README.md, "Model selection"
    python bench/valid_loss_rules.py --out /tmp/valid-loss-rules-full --size full --aligned --batch-sizes 32 64
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # this checkout's package, not an installed one
import mmsa_atsuko  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="results folder (runs.jsonl; no checkpoints are kept)")
    parser.add_argument("--models", nargs="+", default=["tfn", "lmf"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1111, 1112, 1113, 1114, 1115])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 12])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--early-stop", type=int, default=8, help="MMSA's for every model")
    parser.add_argument("--size", choices=("small", "full"), default="small", help="synthetic MOSI's size")
    parser.add_argument("--aligned", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for model in args.models:
        for batch_size in args.batch_sizes:
            picked = {}
            for rule in ("exact", "mmsa"):
                config = {"valid_loss": rule, "batch_size": batch_size, "max_epochs": args.max_epochs,
                          "early_stop": args.early_stop}
                records = mmsa_atsuko.run(model, "mosi", args.seeds, config=config, synthetic=True, preset="small",
                                          synthetic_size=args.size, aligned=args.aligned, out=args.out, quiet=True,
                                          save_checkpoint="none", echo=lambda *a: None)
                picked[rule] = {r["seed"]: r for r in records}
            for seed in args.seeds:
                exact, mmsa = picked["exact"][seed], picked["mmsa"][seed]
                rows.append((model, batch_size, seed, exact["best_epoch"], mmsa["best_epoch"],
                             exact["epochs_run"], mmsa["epochs_run"],
                             mmsa["metrics"]["MAE"] - exact["metrics"]["MAE"],
                             mmsa["metrics"]["Non0_acc_2"] - exact["metrics"]["Non0_acc_2"]))

    setting = f"mosi {args.size} {'aligned' if args.aligned else 'unaligned'}, preset small"
    print(f"SYNTHETIC data ({setting}): best epoch and test metrics, valid_loss exact vs mmsa")
    print("| model | batch | seed | best epoch exact / mmsa | epochs run exact / mmsa | ΔMAE (mmsa - exact) "
          "| ΔNon0_acc_2 |")
    print("|---|---|---|---|---|---|---|")
    for model, bs, seed, be, bm, ee, em, dmae, dacc in rows:
        print(f"| {model} | {bs} | {seed} | {be} / {bm} | {ee} / {em} | {dmae:+.4f} | {dacc:+.4f} |")
    for model in args.models:
        for bs in args.batch_sizes:
            mine = [r for r in rows if r[0] == model and r[1] == bs]
            moved = [r for r in mine if r[3] != r[4]]
            shifts = [abs(r[7]) for r in moved] or [0.0]
            print(f"{model} batch {bs}: another best epoch in {len(moved)} of {len(mine)} seeds; |ΔMAE| where it "
                  f"moved: mean {statistics.mean(shifts):.4f}, max {max(shifts):.4f}")


if __name__ == "__main__":
    main()
