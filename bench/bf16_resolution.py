"""Distinct test predictions and metrics of each model under bf16 and fp32 autocast (synthetic data, CPU).

    python bench/bf16_resolution.py OUT_FOLDER [MODEL ...] [--seeds 1111 1112 1113] [--dataset sims]

Trains every model (or those named) with `run.py --synthetic --preset small` at both precisions into OUT_FOLDER,
then prints, per model, precision and seed, the count of distinct test predictions and the test MAE and Corr.
"""
import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from mmsa_atsuko.model_names import registered_names

MODELS = tuple(sorted(registered_names()))          # every model the model files register, read without torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("models", nargs="*", default=MODELS)
    p.add_argument("--seeds", nargs="+", default=["1111"])
    p.add_argument("--dataset", default="sims")
    args = p.parse_args()
    run_py = Path(__file__).resolve().parent.parent / "run.py"
    for precision in ("fp32", "bf16"):
        subprocess.run([sys.executable, str(run_py), "-m", *args.models, "-d", args.dataset, "-s", *args.seeds,
                        "--synthetic", "--preset", "small", "--precision", precision, "--quiet",
                        "--out", str(args.out / precision)], check=True, stdout=subprocess.DEVNULL)
    print(f"{'model':<12} {'seed':>5} {'distinct fp32':>14} {'distinct bf16':>14} {'MAE fp32':>9} {'MAE bf16':>9} "
          f"{'Corr fp32':>10} {'Corr bf16':>10}")
    rows = {}
    for precision in ("fp32", "bf16"):
        for line in (args.out / precision / "runs.jsonl").read_text().splitlines():
            record = json.loads(line)
            folder = args.out / precision / "runs" / record["run_id"]
            with open(folder / "predictions_test.csv") as f:
                distinct = len({row["pred"] for row in csv.DictReader(f)})
            rows.setdefault((record["model"], record["seed"]), {})[precision] = (distinct, record["metrics"])
    for (model, seed), by in rows.items():
        (d32, m32), (d16, m16) = by["fp32"], by["bf16"]

        def num(value):
            return "nan" if value is None else f"{value:.4f}"
        print(f"{model:<12} {seed:>5} {d32:>14} {d16:>14} {num(m32['MAE']):>9} {num(m16['MAE']):>9} "
              f"{num(m32['Corr']):>10} {num(m16['Corr']):>10}")


if __name__ == "__main__":
    main()
