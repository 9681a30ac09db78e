"""leaderboard --paper: MOSI/MOSEI's Acc-2 and F1 as "Has0/Non0" pairs (hand-computed cells)."""
import json

from mmsa_atsuko.leaderboard import leaderboard


def _record(model, seed, has0, non0, f1_has0, f1_non0, **config):
    metrics = {"Has0_acc_2": has0, "Non0_acc_2": non0, "Has0_F1_score": f1_has0, "Non0_F1_score": f1_non0,
               "Mult_acc_5": 0.4, "Mult_acc_7": 0.3, "MAE": 1.0 - non0, "Corr": 0.5}
    return {"run_id": f"{model}-{seed}", "status": "ok", "model": model, "dataset": "mosi", "aligned": False,
            "seed": seed, "config_hash": model, "data": "synthetic:x", "metrics": metrics,
            "config": config, "started_at": "2026-01-01T00:00:00"}


def test_paper_tables_pair_has0_and_non0(tmp_path):
    records = [_record("tfn", 1, 0.80, 0.84, 0.79, 0.83), _record("tfn", 2, 0.82, 0.85, 0.81, 0.84),
               _record("lmf", 1, 0.81, 0.80, 0.80, 0.79), _record("lmf", 2, 0.83, 0.82, 0.82, 0.81)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md = leaderboard(tmp_path, paper=True, datasets=["mosi"])
    ours = md[:md.index("### Published")]
    assert "| Acc-2 (Has0/Non0) ↑ | F1 (Has0/Non0) ↑ |" in ours and "Non0_acc_2 ↑" not in ours
    # tfn: Has0 81.00 ± 1.41, Non0 84.50 ± 0.71; lmf: Has0 82.00 ± 1.41 (best), Non0 81.00 ± 1.41
    assert "| tfn | 2 | 81.00/**84.50** ± 1.41/0.71 | 80.00/**83.50** ± 1.41/0.71 |" in ours
    assert "| lmf | 2 | **82.00**/81.00 ± 1.41/1.41 | **81.00**/80.00 ± 1.41/1.41 |" in ours
    latex = leaderboard(tmp_path, paper=True, datasets=["mosi"], fmt="latex")
    assert r"\textbf{82.00}/81.00 $\pm$ 1.41/1.41" in latex and r"Acc-2 (Has0/Non0)" in latex
    plain = leaderboard(tmp_path, datasets=["mosi"])
    assert "Has0/Non0" not in plain and "| Has0_acc_2 ↑ |" in plain
