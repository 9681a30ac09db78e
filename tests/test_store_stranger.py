"""A stranger's runs.jsonl: a line whose fields have types no run record of this toolkit has is no run. The store's
reader skips it with its one warning (`results.store_lines.not_a_run`), and leaderboard, compare and verify print
what they print without it. `recover` beside a skipped line: the run folder's record.json is the truth.
"""
import json
import logging

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.metrics.names import metric_keys

MOSI_FILE = "sha256:78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524"   # MMSA's README publishes it


def record(model: str, seed: int, mae: float) -> dict:
    """An `ok` record of `model` on the published MOSI file, of every field a table reads, as the toolkit writes it."""
    return {"run_id": f"{model}-mosi-s{seed}-20260101T000000-abcdef", "status": "ok", "model": model,
            "dataset": "mosi", "aligned": False, "seed": seed, "synthetic": False, "preset": None,
            "metrics": {**dict.fromkeys(metric_keys("mosi"), 0.5), "MAE": mae}, "best_epoch": 3,
            "config_hash": "0123456789ab", "config": {"learning_rate": 0.001, "key_eval": "Loss"}, "data": MOSI_FILE,
            "data_path": "/data/MOSI/Processed/unaligned_50.pkl", "split_sizes": {"train": 1284, "valid": 229,
                                                                                  "test": 686},
            "package_version": "0.1.0", "git_commit": "0123456789abcdef", "precision": "fp32",
            "deterministic": True, "device": "cpu", "started_at": "2026-01-01T00:00:00+00:00",
            "run_dir": f"runs/{model}-mosi-s{seed}-20260101T000000-abcdef",
            "condition": {"missing_rate": 0.0, "drop_modality": None, "modalities": "TAV"}}


GOOD = [record("tfn", 1, 0.9), record("tfn", 2, 1.0), record("lmf", 1, 0.95), record("lmf", 2, 1.05)]
COMMANDS = {"leaderboard": ["leaderboard"], "compare": ["compare", "-m", "tfn", "--against", "lmf"],
            "verify": ["verify"]}

# One case per kind of field a reader reads: the value of the wrong type, and the words the warning says of it.
WRONG_TYPES = {
    "metrics-text": ("metrics", "x", "its metrics is 'x', not an object of metric name -> number or null"),
    "metrics-array": ("metrics", [0.5], "its metrics is a JSON array, not an object"),
    "metric-text": ("metrics.MAE", "0.5", "its metrics['MAE'] is '0.5', not a finite number or null"),
    "metric-array": ("metrics.MAE", [0.5], "its metrics['MAE'] is a JSON array, not a finite number"),
    "metric-object": ("metrics.MAE", {"mean": 0.5}, "its metrics['MAE'] is a JSON object, not a finite number"),
    "metric-bool": ("metrics.Corr", True, "its metrics['Corr'] is True, not a finite number"),
    "metric-huge": ("metrics.MAE", 10 ** 400, "its metrics['MAE'] is a huge integer, not a finite number"),
    "seed-text": ("seed", "3", "its seed is '3', not an integer"),
    "seed-bool": ("seed", True, "its seed is True, not an integer"),
    "aligned-text": ("aligned", "no", "its aligned is 'no', not true or false"),
    "model-object": ("model", {"a": 1}, "its model is a JSON object, not a non-empty string"),
    "dataset-number": ("dataset", 5, "its dataset is 5, not a non-empty string"),
    "config-array": ("config", [], "its config is a JSON array, not an object nested at most 16 deep"),
    "config-text": ("config", "lr=0.1", "its config is 'lr=0.1', not an object"),
    "started_at-number": ("started_at", 20260101, "its started_at is 20260101, not str"),
    "best_epoch-bool": ("best_epoch", True, "its best_epoch is True, not int"),
    "synthetic-text": ("synthetic", "no", "its synthetic is 'no', not bool"),
    "deterministic-number": ("deterministic", 1, "its deterministic is 1, not bool"),
    "run_dir-number": ("run_dir", 7, "its run_dir is 7, not str"),
    "data_path-array": ("data_path", ["a"], "its data_path is a JSON array, not str or null"),
    "device-array": ("device", ["cpu"], "its device is a JSON array, not a string of one line"),
    "precision-number": ("precision", 32, "its precision is 32, not a string of one line"),
    "git_commit-object": ("git_commit", {"sha": "x"}, "its git_commit is a JSON object, not a string of one line"),
    "package_version-number": ("package_version", 1.0, "its package_version is 1.0, not a string of one line"),
    "label-number": ("label", 3, "its label is 3, not a string of one line"),
    "tune_trial-text": ("tune_trial", "7", "its tune_trial is '7', not a trial number"),
    "split_sizes-array": ("split_sizes", [1, 2, 3], "its split_sizes is a JSON array, not an object of train, valid"),
    "metrics-missing": ("metrics", None, "its metrics is None, not an object"),
    "config-missing": ("config", None, "its config is None, not an object"),
}


def stranger(case: str) -> dict:
    """tfn seed 3, one field of the wrong type (`metrics.X`: one metric; a value of None: the field left out)."""
    field, value, _ = WRONG_TYPES[case]
    bad = record("tfn", 3, 0.1)
    top, _, metric = field.partition(".")
    if metric:
        bad["metrics"][metric] = value
    elif value is None:
        del bad[top]
    else:
        bad[top] = value
    return bad


def write_store(out, records) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def printed(capsys, out, command) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(COMMANDS[command] + ["--results", str(out)])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_a_line_of_wrong_types_is_skipped_and_every_table_shows_the_good_runs(tmp_path, capsys, caplog, case):
    """Before: each of these stopped leaderboard, compare and verify with one error line (`must be ..., got ...`),
    showing none of the good runs. Now each prints exactly what it prints of the good runs alone, and the store's
    one warning names the line and its field."""
    out = tmp_path / "results"
    write_store(out, GOOD)
    alone = {command: printed(capsys, out, command) for command in COMMANDS}
    assert alone["leaderboard"][0] == 0 and "| tfn | 2 |" in alone["leaderboard"][1]
    write_store(out, GOOD[:2] + [stranger(case)] + GOOD[2:])
    for written in out.glob("comparison_*.csv"):    # else compare says it "replaced" the first round's file
        written.unlink()
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        beside = {command: printed(capsys, out, command) for command in COMMANDS}
    assert beside == alone
    warnings = {r.getMessage() for r in caplog.records if "skipped" in r.getMessage()}
    (warning,) = warnings                               # one per process: the three commands read the same line
    assert warning.startswith(f"{out / 'runs.jsonl'}: skipped 1 line(s) that hold no run record, the first line 3 "
                              f"({WRONG_TYPES[case][2]}"), warning


# ------------------------------------------------------------------------------------------
# recover beside a skipped line: the run folder's record.json is the truth
# ------------------------------------------------------------------------------------------
def keep(out, kept: dict):
    """`kept` as its run folder's record.json, as `append_or_keep` leaves it when the store cannot take it."""
    folder = out / kept["run_dir"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(json.dumps(kept) + "\n", encoding="utf-8")
    return folder / "record.json"


@pytest.mark.parametrize("skipped", ["metrics-text", "seed-text"])
def test_a_skipped_line_of_the_run_id_neither_blocks_nor_doubles_its_kept_record(tmp_path, capsys, caplog, skipped):
    """Before: a line of wrong types was read as the run (its run_id 'already in the store'), so recover removed the
    record.json without appending it: the run's one true record was lost, and its line stopped every table."""
    from mmsa_atsuko.results import read_records, recover
    out = tmp_path / "results"
    truth = record("tfn", 3, 0.1)
    write_store(out, GOOD[:2] + [stranger(skipped)])      # tfn seed 3's line, but for the field `skipped` names
    kept = keep(out, truth)
    assert recover(out) == [truth] and not kept.exists()
    assert [r["run_id"] for r in read_records(out)] == [r["run_id"] for r in GOOD[:2]] + [truth["run_id"]]
    # A second recovery of the same file (one killed after its append, before the file was removed) adds nothing.
    kept = keep(out, truth)
    assert recover(out) == [] and not kept.exists()
    assert [r["seed"] for r in read_records(out)] == [1, 2, 3]
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(out)]) == 0 and "| tfn | 3 |" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["metrics-text", "config-array", "seed-text"])
def test_a_kept_record_that_holds_no_run_is_left_with_a_warning(tmp_path, caplog, case):
    """Before: it was appended, a line every reader skips (or, before that, one that stopped every table), and the
    file removed; here the store's own skipped line of that run came back as a second one."""
    from mmsa_atsuko.results import read_records, recover
    out = tmp_path / "results"
    write_store(out, GOOD + [stranger(case)])
    before = (out / "runs.jsonl").read_bytes()
    kept = keep(out, stranger(case))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert recover(out) == []
    assert kept.exists() and (out / "runs.jsonl").read_bytes() == before and read_records(out) == GOOD
    (warning,) = [r.getMessage() for r in caplog.records if "record.json" in r.getMessage()]
    assert warning.startswith(f"{kept} holds no run record ({WRONG_TYPES[case][2]}"), warning
    assert warning.endswith("); left as it is: fix it, then recover again"), warning
