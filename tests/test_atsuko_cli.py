"""End to end: `python run.py -m atsuko -d sims --synthetic --preset small`, two seeds (issue 3)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_cli_runs_atsuko_on_synthetic_sims_and_saves_routing_weights(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "run.py", "-m", "atsuko", "-d", "sims", "--synthetic", "--preset", "small",
               "-s", "1111", "1112", "--max-epochs", "3", "--out", str(out), "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["dataset"], r["seed"], r["status"]) for r in records] == \
        [("atsuko", "sims", 1111, "ok"), ("atsuko", "sims", 1112, "ok")]
    for record in records:
        assert record["synthetic"] and record["config"]["use_sbn"] and record["config"]["use_mcm"]
        assert 0 <= record["metrics"]["MAE"] < 2
        predictions = pd.read_csv(out / "runs" / record["run_id"] / "predictions_test.csv")
        weights = predictions[[f"modality_weight_{m}" for m in "LVA"]].to_numpy()
        assert ((weights > 0) & (weights < 1)).all() and abs(weights.sum(1) - 1).max() < 1e-5
        for m in "LVA":
            bands = predictions[[f"band_weights_{m}_{k}" for k in range(3)]].to_numpy()
            assert (bands > 0).all() and abs(bands.sum(1) - 1).max() < 1e-5
