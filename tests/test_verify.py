"""run.py verify: real-data runs against the published numbers (hand-computed deltas and verdicts)."""
import json
import math
import re

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.errors import DataError, UsageError
from mmsa_atsuko.leaderboard.commands import verify_store
from mmsa_atsuko.leaderboard.verify import render_verify

MOSI_KEYS = ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7", "MAE", "Corr")


MOSI_FILE = "sha256:78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524"   # MMSA's README publishes it
OTHER_FILE = "sha256:" + "ab" * 32


def record(model, seed, data=MOSI_FILE, aligned=False, **metrics):
    values = {k: 0.5 for k in MOSI_KEYS} | metrics
    return {"run_id": f"{model}-{seed}-{data[:12]}", "status": "ok", "model": model, "dataset": "mosi",
            "aligned": aligned, "seed": seed, "config_hash": "h", "config": {}, "data": data,
            "metrics": values}


def store(tmp_path, records):
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def test_deltas_and_verdicts_against_table_1(tmp_path, capsys):
    # Published TFN, MOSI unaligned (Table 1): Acc7 35.3, Acc2 76.5, F1 76.6, MAE 0.995.
    records = [record("tfn", 1, Mult_acc_7=0.30, Non0_acc_2=0.765, Non0_F1_score=0.766, MAE=0.99),
               record("tfn", 2, Mult_acc_7=0.32, Non0_acc_2=0.775, Non0_F1_score=0.766, MAE=1.01),
               record("atsuko_base", 1), record("atsuko_base", 2)]
    cells, notes = verify_store(store(tmp_path, records))
    got = {c.column: c for c in cells}
    assert set(got) == {"Acc7", "Acc2", "F1", "MAE"}
    acc7, acc2, f1, mae = got["Acc7"], got["Acc2"], got["F1"], got["MAE"]
    assert (acc7.mean, acc7.published) == (pytest.approx(31.0), 35.3)
    assert acc7.std == pytest.approx(math.sqrt(2)) and acc7.delta == pytest.approx(-4.3)
    assert not acc7.agrees                                   # |-4.3| > 2 * 1.414
    assert acc2.delta == pytest.approx(0.5) and acc2.agrees  # 77.0 - 76.5, 2 std = 1.414
    assert f1.std == 0 and f1.delta == pytest.approx(0.0) and f1.agrees
    assert mae.delta == pytest.approx(0.005) and mae.std == pytest.approx(0.014142, rel=1e-4) and mae.agrees
    assert any("atsuko_base has no published row" in n for n in notes)
    assert main(["verify", "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "verify: 3 of 4 cells within 2 std" in out and "NO" in out and "-4.30" in out


def test_exit_zero_when_every_cell_agrees_and_one_seed_never_agrees(tmp_path):
    agree = [record("tfn", s, Mult_acc_7=v7, Non0_acc_2=0.765, Non0_F1_score=0.766, MAE=m)
             for s, v7, m in ((1, 0.343, 0.985), (2, 0.363, 1.005))]
    assert main(["verify", "--results", str(store(tmp_path, agree)), "-d", "mosi"]) == 0
    cells, _ = verify_store(store(tmp_path, agree[:1]))
    assert not any(c.agrees for c in cells)
    assert "no std (n=1)" in render_verify(cells, [])


def test_synthetic_runs_are_refused_with_one_line(tmp_path, capsys):
    synthetic = [record("tfn", s, data="synthetic:mosi-small-unaligned-seed0-v2") for s in (1, 2)]
    with pytest.raises(UsageError, match="synthetic data only"):
        verify_store(store(tmp_path, synthetic))
    assert main(["verify", "--results", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_runs_on_another_file_than_mmsa_publishes_are_not_verified(tmp_path, capsys):
    """`-d mosi --feature-path my.pkl` (or a modified copy) runs were verified against the paper as its experiment."""
    agree = dict(Mult_acc_7=0.353, Non0_acc_2=0.765, Non0_F1_score=0.766, MAE=0.995)
    other = [record("tfn", s, data=OTHER_FILE, **agree) for s in (1, 2)]
    with pytest.raises(UsageError, match=rf"the real-data runs in this store are on other files: mosi unaligned: runs "
                                         rf"on {OTHER_FILE}, not the file MMSA publishes \({MOSI_FILE}\); not verified$"):
        verify_store(store(tmp_path, other))
    assert main(["verify", "--results", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    cells, notes = verify_store(store(tmp_path, other + [record("lmf", s) for s in (1, 2)]))
    assert {c.model for c in cells} == {"lmf"} and any(OTHER_FILE in note for note in notes)


SIMS_KEYS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")
SIMSV2_REAL = {"train": 2722, "valid": 647, "test": 1034}         # configs/datasets.yaml real_sizes
SMALL = {"train": 64, "valid": 16, "test": 16}                     # a synthetic file's, its stamp removed


def simsv2_record(seed, sizes, data="sha256:" + "cd" * 32):
    """Self-MM on SIMS v2 (no published sha256): Acc5/Acc3/Acc2/F1 near its published row (52.77 72.61 79.69 79.76)."""
    values = dict(Mult_acc_5=0.5277, Mult_acc_3=0.7261, Mult_acc_2=0.7969, F1_score=0.7976, MAE=0.3, Corr=0.7)
    return {"run_id": f"v2-{seed}-{data[7:11]}", "status": "ok", "model": "self_mm", "dataset": "simsv2",
            "aligned": False, "seed": seed, "config_hash": "h", "config": {}, "data": data,
            "metrics": {k: values[k] + 0.001 * (2 * seed - 3) for k in SIMS_KEYS}} \
        | ({"split_sizes": sizes} if sizes else {})


def test_runs_on_a_file_of_other_split_sizes_are_no_real_data_where_no_sha256_is_published(tmp_path, capsys):
    """A 96-sample SIMS v2 file (a synthetic one, its stamp removed) was verified against the paper and headed real
    data: its sha256 id is as real as the real file's, and SIMS v2 publishes no sha256 to compare with."""
    small = [simsv2_record(s, SMALL) for s in (1, 2)]
    line = ("the real-data runs in this store are on other files: simsv2 unaligned: runs on sha256:" + "cd" * 32
            + ", not the real simsv2 data: its train split has 64 samples, the real simsv2 file's has 2722 "
              "(configs/datasets.yaml real_sizes); not verified")
    with pytest.raises(UsageError, match=re.escape(line) + "$"):
        verify_store(store(tmp_path, small))
    assert main(["verify", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    board = main_text(tmp_path, capsys)
    assert ("- Not the real simsv2 data: its train split has 64 samples, the real simsv2 file's has 2722 "
            "(configs/datasets.yaml real_sizes): these runs are no reproduction of the paper's") in board
    # The table's heading called it "real data (sha256:...)" above that note, and its CSV rows data_kind "real".
    assert f"### simsv2, unaligned: not the real simsv2 data (sha256:{'cd' * 32})" in board
    assert "real data" not in board
    assert main(["leaderboard", "--results", str(tmp_path), "--format", "csv"]) == 0
    assert {row.split(",")[4] for row in capsys.readouterr().out.splitlines()[1:]} == {"not real"}
    # The real sizes, and a record made before records held them (it says nothing), are verified as before.
    for sizes in (SIMSV2_REAL, None):
        cells, notes = verify_store(store(tmp_path, [simsv2_record(s, sizes) for s in (1, 2)]))
        assert len(cells) == 4 and all(c.agrees for c in cells) and not notes
        assert "Not the real" not in main_text(tmp_path, capsys)
    # Beside a real file's runs, the small file's are a note, not a refusal.
    cells, notes = verify_store(store(tmp_path, small + [simsv2_record(s, SIMSV2_REAL, "sha256:" + "ef" * 32)
                                                          for s in (1, 2)]))
    assert {c.data_id for c in cells} == {"sha256:" + "ef" * 32} and notes == [line.split("other files: ")[1]]


def main_text(results, capsys):
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(results)]) == 0
    return capsys.readouterr().out


def test_a_run_record_holds_its_files_split_sizes():
    from types import SimpleNamespace
    from datetime import datetime

    from mmsa_atsuko.results.record import ok_record
    from mmsa_atsuko.results.chosen_records import check_ok_record
    from tests.conftest import make_dataset
    spec = make_dataset(n=(40, 12, 8)).spec
    result = SimpleNamespace(test=SimpleNamespace(metrics={"MAE": 0.5}), valid={}, best_epoch=1, epochs_run=1,
                             steps_per_s=1.0)
    rec = ok_record("r", model="tfn", seed=1, preset=None, config={}, spec=spec, result=result, device="cpu",
                    started=datetime(2026, 1, 1), wall_time_s=1.0, run_dir="runs/r", git_commit=None,
                    checkpoint="best.pt", torch_threads=1, torch_version="x", device_name="cpu",
                    peak_memory_mb=1.0, precision="fp32", deterministic=True)
    assert rec["split_sizes"] == {"train": 40, "valid": 12, "test": 8}
    with pytest.raises(DataError, match="its split_sizes is a JSON object, not an object of train, valid and test -> "
                                        "sample count"):
        check_ok_record(rec | {"split_sizes": {"train": "40", "valid": 12, "test": 8}})
