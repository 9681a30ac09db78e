"""Test accuracy and predicted classes of models on small synthetic MIntRec at their `small` preset, by epoch budget.

    MMSA_ATSUKO_CACHE=/tmp/cache HF_HUB_OFFLINE=1 python bench/small_preset_epochs.py --out /tmp/k6 \
        -m tfn lmf --epochs 0 15 -s 1111 1112 1113 [--config '{"learning_rate": 0.01}']

One line per (model, epoch budget): the mean test acc over the seeds, each seed's acc and number of distinct predicted
classes (predictions_test.csv), and each seed's valid acc per epoch (history.json). `--epochs 0` keeps the preset's
own budget and early stopping; any other value sets max_epochs and turns early stopping off, so every epoch shows.
`--config`: more config keys, as a JSON object (the ablations of bench/README.md, k6).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import mmsa_atsuko


def one_seed(model: str, seed: int, epochs: int, out: Path, extra: dict) -> tuple[float, int, list[float]]:
    config = {**({"max_epochs": epochs, "early_stop": 1000} if epochs else {}), **extra}
    (record,) = mmsa_atsuko.run(model, "mintrec", seeds=[seed], synthetic=True, preset="small", config=config,
                                out=out, rerun=True, quiet=True)
    run_dir = out / "runs" / record["run_id"]
    with open(run_dir / "predictions_test.csv") as f:
        classes = {row["pred"] for row in csv.DictReader(f)}
    history = json.loads((run_dir / "history.json").read_text())
    return record["metrics"]["acc"], len(classes), [round(epoch["valid"]["acc"], 3) for epoch in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-m", "--models", nargs="+", default=["tfn"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[0])
    parser.add_argument("-s", "--seeds", nargs="+", type=int, default=[1111, 1112, 1113])
    parser.add_argument("--config", type=json.loads, default={}, help="more config keys, a JSON object")
    args = parser.parse_args()
    for model in args.models:
        for epochs in args.epochs:
            runs = [one_seed(model, seed, epochs, args.out, args.config) for seed in args.seeds]
            mean = sum(acc for acc, _, _ in runs) / len(runs)
            print(f"{model} epochs={epochs or 'preset'} acc {mean:.3f} per seed {[round(r[0], 3) for r in runs]} "
                  f"distinct classes {[r[1] for r in runs]}", flush=True)
            for (_, _, valid_acc), seed in zip(runs, args.seeds):
                print(f"    seed {seed} valid acc per epoch {valid_acc}", flush=True)


if __name__ == "__main__":
    main()
