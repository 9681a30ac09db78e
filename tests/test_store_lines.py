"""The store's reader (`results.read_records`), which every command reads runs.jsonl through: a folder in the
store's place, lines that hold no run (warned of once per read, with their count and the first), fields forged to
write into a table (`store_lines.not_a_run`), metrics no run computes; and model.json's class names (predict).
"""
import json
import logging

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.errors import DataError
from mmsa_atsuko.leaderboard import leaderboard
from mmsa_atsuko.metrics.names import metric_keys
from mmsa_atsuko.results import read_records

RUN_ID = "tfn-mosi-s1-20260101T000000-abcdef"


def record(seed: int = 1, mae: float = 0.8, **fields) -> dict:
    """An `ok` record of tfn on synthetic MOSI that every table reads."""
    return {"run_id": f"tfn-mosi-s{seed}-20260101T000000-abcdef", "status": "ok", "model": "tfn", "dataset": "mosi",
            "aligned": False, "seed": seed, "synthetic": True, "preset": "small",
            "metrics": {**dict.fromkeys(metric_keys("mosi"), 0.5), "MAE": mae}, "config_hash": "0123456789ab",
            "config": {"learning_rate": 0.001}, "data": "synthetic:mosi-small-unaligned-seed0-v2",
            "condition": {"missing_rate": 0.0, "drop_modality": None, "modalities": "TAV"}, **fields}


def write_store(out, *lines) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.jsonl").write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                                            for line in lines), encoding="utf-8")


def skipped_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "skipped" in r.getMessage()]


# ------------------------------------------------------------------------------------------
# #1: runs.jsonl a folder
# ------------------------------------------------------------------------------------------
READERS = {
    "leaderboard": ["leaderboard"], "compare": ["compare", "-m", "tfn", "--against", "lmf"], "verify": ["verify"],
    "predict": ["predict", "--run", RUN_ID, "--features", "{tmp}/features.pkl", "--out", "{tmp}/predictions"],
    "robustness": ["robustness", "--run", RUN_ID], "tsne": ["tsne", "-d", "mosi"],
    "explain": ["explain", "--run", RUN_ID],
}


@pytest.mark.parametrize("command", list(READERS))
def test_a_store_that_is_a_folder_is_the_writers_one_line_in_every_reader(tmp_path, capsys, command):
    """Before: IsADirectoryError: [Errno 21] Is a directory: 3, a traceback, in every command that reads the store."""
    out = tmp_path / "results"
    (out / "runs.jsonl").mkdir(parents=True)
    (tmp_path / "features.pkl").write_bytes(b"")
    capsys.readouterr()
    code = main([arg.format(tmp=tmp_path) for arg in READERS[command]] + ["--results", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        f"error: results folder {out}: {out / 'runs.jsonl'} is a folder where the toolkit writes a file; move it "
        f"away or choose another --results"), err


# ------------------------------------------------------------------------------------------
# #15: lines that hold no run
# ------------------------------------------------------------------------------------------
def test_lines_that_hold_no_run_are_skipped_with_one_warning_naming_the_first(tmp_path, caplog):
    """Before: `not json`, `{"run_id": 5}` and `[1,2]` were passed over without a word. A blank line, and the last
    line cut off without its newline by a killed writer (the documented rule), are skipped silently still."""
    write_store(tmp_path, record(1), "", "not json", {"run_id": 5}, "[1,2]", record(2))
    with open(tmp_path / "runs.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record(3))[:40])
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert [r["seed"] for r in read_records(tmp_path)] == [1, 2]
    assert skipped_warnings(caplog) == [
        f"{tmp_path / 'runs.jsonl'}: skipped 3 line(s) that hold no run record, the first line 3 (it is no JSON "
        f"object) and 2 more; fix or remove them"]


def test_a_line_of_no_run_is_named_by_why(tmp_path, caplog):
    write_store(tmp_path, record(1), {"run_id": RUN_ID, "status": "ok"})
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert len(read_records(tmp_path)) == 1
    assert skipped_warnings(caplog) == [
        f"{tmp_path / 'runs.jsonl'}: skipped 1 line(s) that hold no run record, the first line 2 (it has no model, "
        f"dataset, aligned, seed, config_hash, data); fix or remove them"]


def test_a_fragment_that_is_no_last_line_is_warned_of(tmp_path, caplog):
    write_store(tmp_path, json.dumps(record(1))[:40], record(2))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert [r["seed"] for r in read_records(tmp_path)] == [2]
    assert [w.split(": ", 1)[1] for w in skipped_warnings(caplog)] == [
        "skipped 1 line(s) that hold no run record, the first line 1 (it is no JSON object); fix or remove them"]


def test_the_same_warning_of_one_store_is_given_once_per_process(tmp_path, caplog):
    write_store(tmp_path, record(1), "not json")
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        read_records(tmp_path)
        read_records(tmp_path)
        with open(tmp_path / "runs.jsonl", "a", encoding="utf-8") as f:
            f.write("[]\n")
        read_records(tmp_path)
    assert [w.split("skipped ")[1][:9] for w in skipped_warnings(caplog)] == ["1 line(s)", "2 line(s)"]


def test_the_leaderboard_says_it_skipped_lines(tmp_path, caplog):
    write_store(tmp_path, record(1), "not json", record(2, 1.0))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert main(["leaderboard", "--results", str(tmp_path)]) == 0
    assert [w.split(": ", 1)[1][:59] for w in skipped_warnings(caplog)] == [
        "skipped 1 line(s) that hold no run record, the first line 2"]


# ------------------------------------------------------------------------------------------
# L2: fields forged to write into a table
# ------------------------------------------------------------------------------------------
FORGED = {
    "data-heading": ("data", "sha256:abc\n\n### mosi (fake) | fake | row |"),
    "data-escape": ("data", "synthetic:mosi\x1b[2J"),
    "data-table-row": ("data", "synthetic:mosi | fake | row"),
    "data-short-hex": ("data", "sha256:abc"),
    "data-no-string": ("data", 5),
    "config_hash-newline": ("config_hash", "0123456789ab\n| fake |"),
    "config_hash-formula": ("config_hash", "=HYPERLINK(\"http://x\")"),
    "preset-escape": ("preset", "small\x1b[31m"),
    "condition-drop": ("condition", {"missing_rate": 0.0, "drop_modality": "\x1b[31m", "modalities": "TAV"}),
    "condition-modalities": ("condition", {"missing_rate": 0.0, "drop_modality": None, "modalities": "TAVX\n#"}),
    "condition-rate": ("condition", {"missing_rate": 1e308, "drop_modality": None, "modalities": "TAV"}),
    "condition-key": ("condition", {"missing_rate": 0.0, "drop_modality": None, "modalities": "TAV", "x": "\n"}),
    "condition-subset": ("condition", {"missing_rate": 0.0, "drop_modality": "T", "modalities": "AV"}),
    # the keys a run set apart from its preset: every table's note prints the key as it is, its values by repr
    "trainer_overrides-key": ("trainer_overrides", {"max_epochs\n\n### fake": {"value": 1, "preset": 4}}),
    "trainer_overrides-pair": ("trainer_overrides", {"max_epochs": [1, 4]}),
    "trainer_overrides-value": ("trainer_overrides", {"max_epochs": {"value": [1] * 10 ** 4, "preset": 4}}),
    "trainer_overrides-list": ("trainer_overrides", [["max_epochs", 1, 4]]),
}


def forms_the_toolkit_writes() -> list[dict]:
    """A record of each form the checked fields take: real data, a stress recipe, no preset, a condition of each
    kind (one with trainer keys set apart from its preset), a record from before conditions, and a recipe of a
    dataset of one's own whose name holds a space."""
    forms = [record(1, data="sha256:" + "0f" * 32),
             record(2, data="synthetic:corrupt-s2-mosi-small-unaligned-seed0-v2"),
             record(3, preset=None), record(4),
             record(5, condition={"missing_rate": 0.3, "drop_modality": None, "modalities": "TAV",
                                  "text_spared": "bert_cls_sep"}),
             record(6, condition={"missing_rate": 0.0, "drop_modality": "T", "modalities": "TAV", "text_rows": "all"}),
             record(7, condition={"missing_rate": 0.0, "drop_modality": None, "modalities": "AV"},
                    trainer_overrides={"max_epochs": {"value": 1, "preset": 4}, "grad_clip": {"value": 1.5,
                                                                                          "preset": None}}),
             record(8, condition=None, data="synthetic:my data-small-unaligned-seed0-v2")]
    del forms[3]["condition"]
    return forms


@pytest.mark.parametrize("case", list(FORGED))
def test_a_forged_field_skips_its_record_with_the_warning(tmp_path, caplog, case):
    field, value = FORGED[case]
    write_store(tmp_path, *forms_the_toolkit_writes(), record(9, **{field: value}))
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert [r["seed"] for r in read_records(tmp_path)] == [1, 2, 3, 4, 5, 6, 7, 8]
    (warning,) = skipped_warnings(caplog)
    assert f"skipped 1 line(s) that hold no run record, the first line 9 (its {field} " in warning
    assert "\n" not in warning and "\x1b" not in warning


@pytest.mark.parametrize("fmt", ["md", "csv"])
def test_a_forged_data_id_writes_no_heading_and_no_cell_of_its_own(tmp_path, fmt):
    """Before: the forged data id was printed as it was: a Markdown heading of its own, a CSV cell starting '='."""
    write_store(tmp_path, record(1), record(2, 1.0),
                record(3, data="sha256:abc\n\n### mosi (fake) | fake | row |", config_hash="=cmd|' /C calc'!A0"))
    text = leaderboard(tmp_path, fmt=fmt)
    assert "fake" not in text and "=cmd" not in text and "synthetic:mosi-small-unaligned-seed0-v2" in text


def test_a_preset_whose_name_its_records_could_not_hold_is_refused_before_training(tmp_path):
    """A model of one's own may name its presets as it likes: one named 'my preset' trained runs whose records every
    reader would skip (their preset is no name)."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import FIXTURES
    models = tmp_path / "models"
    models.mkdir()
    (models / "latefuse.py").write_bytes((FIXTURES / "latefuse.py").read_bytes())
    (models / "latefuse.yaml").write_text((FIXTURES / "latefuse.yaml").read_text().replace("  small:", "  my preset:"))
    done = subprocess.run([sys.executable, "run.py", "-m", "latefuse", "-d", "mosi", "--synthetic", "--preset",
                           "my preset", "--max-epochs", "1", "--quiet", "--models", str(models), "--out",
                           str(tmp_path / "r")], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: preset 'my preset' of {models / 'latefuse.yaml'}: a preset's name is 1 to 64 letters, digits, _, . "
        f"or -, as run records hold it; rename it"), done.stderr
    assert not (tmp_path / "r" / "runs.jsonl").exists()


# ------------------------------------------------------------------------------------------
# L2: metrics no run computes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1e308, -1e308, 3.5e38])
def test_a_metric_past_float32s_largest_skips_its_line_naming_it(tmp_path, capsys, caplog, value):
    """Before: 1e308 was averaged (numpy's overflow RuntimeWarnings) and printed as "± inf"; then it stopped the
    leaderboard in one line. Now its line holds no run: skipped with the warning. Record 1's float32 largest passes."""
    write_store(tmp_path, record(1, 3.4e38), record(2, value))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        assert main(["leaderboard", "--results", str(tmp_path)]) == 0
    assert "| tfn | 1 |" in capsys.readouterr().out
    assert [w.split(": ", 1)[1] for w in skipped_warnings(caplog)] == [
        f"skipped 1 line(s) that hold no run record, the first line 2 (its metrics['MAE'] is {value!r}, not a finite "
        f"number or null of at most 3.403e+38 in magnitude, as a run computes); fix or remove them"]


# ------------------------------------------------------------------------------------------
# L1: model.json's class names, which predictions.csv lists as they are
# ------------------------------------------------------------------------------------------
@pytest.fixture
def mintrec_card(tmp_path):
    """A run folder holding the model.json of a tfn run on MIntRec, as the trainer writes it."""
    import dataclasses

    from conftest import make_dataset

    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.data.mintrec import label_names
    from mmsa_atsuko.training.model_card import write_model_card
    spec = dataclasses.replace(make_dataset(task="classification", name="mintrec", num_classes=20).spec,
                               label_names=label_names())
    write_model_card(tmp_path, "tfn", load_config("tfn", "mintrec", preset="small"), spec)
    return tmp_path / "model.json"


def with_class_names(card_path, change) -> list:
    card = json.loads(card_path.read_text())
    names = change(list(card["label_names"]))
    card["label_names"] = card["spec"]["label_names"] = names
    card_path.write_text(json.dumps(card))
    return names


CLASS_NAMES = {
    "formula": (lambda n: ['=HYPERLINK("http://x","y")'] + n[1:],
                "label_names[0] has the id '=HYPERLINK(\"http://x\",\"y\")', which starts with '='"),
    "dash-formula": (lambda n: n[:3] + ["-2+3+cmd|' /C calc'!A0"] + n[4:], "label_names[3] has the id"),
    "newline": (lambda n: n[:1] + ["Praise\nx"] + n[2:],
                "label_names[1] must be a class name of one line (1 to 200 characters, no control character), got "
                "'Praise\\nx'"),
    "escape": (lambda n: n[:1] + ["Praise\x1b[2J"] + n[2:], "label_names[1] must be a class name of one line"),
    "reordered": (lambda n: n[1:2] + n[:1] + n[2:], "its 20 label_names are not the 20 classes its dataset declares"),
    "renamed": (lambda n: n[:-1] + ["Ask for money"], "its 20 label_names are not the 20 classes its dataset declares"),
}


@pytest.mark.parametrize("case", list(CLASS_NAMES))
def test_class_names_of_a_card_are_checked_where_it_is_read(mintrec_card, case):
    """Before: any list of strings passed, and reached predictions.csv's class_name column as it was."""
    from mmsa_atsuko.training.model_card import read_model_card
    assert read_model_card(mintrec_card.parent)["label_names"][0] == "Complain"       # as written: read
    change, says = CLASS_NAMES[case]
    with_class_names(mintrec_card, change)
    with pytest.raises(DataError) as caught:
        read_model_card(mintrec_card.parent)
    assert str(caught.value).startswith(f"{mintrec_card}: ") and says in str(caught.value)
    assert "\n" not in str(caught.value)
