"""Router diagnostics (models/atsuko/diagnostics.py): the `routing` object of Atsuko's run
records, on hand-built exports and through a real run on a stress recipe; `explain`'s
modality_weights.csv from a checkpoint applied to another feature file."""
import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mmsa_atsuko
from mmsa_atsuko import analysis
from mmsa_atsuko.data.synthetic import write_synthetic
from mmsa_atsuko.models.atsuko.diagnostics import routing_summary

ROOT = Path(__file__).resolve().parents[1]


def _export(w, bands=None):
    w = np.asarray(w, dtype=np.float32)
    export = {f"modality_weight_{m}": w[:, i] for i, m in enumerate("LVA")}
    for m, b in (bands or {}).items():
        export[f"band_weights_{m}"] = np.asarray(b, dtype=np.float32)
    return export


W = [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]     # L V A per sample


def test_modality_and_band_statistics():
    bands = {"V": [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]}
    routing = routing_summary(_export(W, bands))
    assert routing["modality_weights"]["L"]["mean"] == pytest.approx(0.325)
    # population std of 0.6, 0.2, 0.1, 0.4: mean 0.325, squares .075625 .015625 .050625 .005625
    assert routing["modality_weights"]["L"]["std"] == pytest.approx(np.sqrt(0.1475 / 4))
    assert routing["modality_weights"]["A"]["mean"] == pytest.approx(0.35)
    assert routing["band_weights"]["V"]["mean"] == pytest.approx([0.275, 0.225, 0.5])
    assert routing["band_weights"]["V"]["std"][0] == pytest.approx(np.std([0.5, 0.1, 0.2, 0.3]))
    assert set(routing) == {"modality_weights", "band_weights"}


def test_no_routing_for_a_model_without_modality_weights():
    assert routing_summary({"pred_T": np.zeros(3)}) is None


def test_corrupt_response():
    # sample 0: text corrupted (w_L 0.6), 1: audio (w_A 0.2), 2: none, 3: text (w_L 0.4)
    routing = routing_summary(_export(W), {"kind": "corrupt", "corrupted": np.array([0, 1, -1, 0])})
    text = routing["condition"]["modality_weight"]["L"]
    assert text["corrupted"] == pytest.approx(0.5) and text["clean"] == pytest.approx(0.15)
    assert text["ratio"] == pytest.approx(0.5 / 0.15)
    audio = routing["condition"]["modality_weight"]["A"]
    assert audio["corrupted"] == pytest.approx(0.2) and audio["clean"] == pytest.approx((0.2 + 0.8 + 0.2) / 3)
    vision = routing["condition"]["modality_weight"]["V"]
    assert vision["corrupted"] is None and vision["ratio"] is None


def test_bands_response():
    bands = {"V": [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]}
    routing = routing_summary(_export(W, bands), {"kind": "bands", "cue_band": np.array([0, 1, 1, 0])})
    # cue band: low (0) for samples 0 and 3, high (2) for 1 and 2
    assert routing["condition"]["cue_band_weight"] == pytest.approx((0.5 + 0.8 + 0.6 + 0.3) / 4)
    assert routing["condition"]["noise_band_weight"] == pytest.approx((0.2 + 0.1 + 0.2 + 0.4) / 4)


def test_redundant_response():
    condition = {"kind": "redundant", "noise_audio": np.array([0.1, 5.0, 1.0, 2.0]),
                 "noise_vision": np.array([1.0, 0.5, 3.0, 1.0])}
    routing = routing_summary(_export(W), condition)["condition"]["modality_weight"]
    # audio is the cleaner one in samples 0 and 2 (w_A 0.2, 0.8), the noisier in 1 and 3 (0.2, 0.2)
    assert routing["A"] == pytest.approx({"cleaner": 0.5, "noisier": 0.2})
    assert routing["V"] == pytest.approx({"cleaner": 0.5, "noisier": 0.15})


def test_the_modality_letters_and_export_names_have_one_home():
    """model.py, mcm.py and diagnostics.py each spelled ("L", "V", "A") (and explain a fourth time), and
    diagnostics built modality_weight_{m} and band_weights_{m} itself: an order or a name changed in one
    place would route, report or explain another modality than it says, without an error."""
    from mmsa_atsuko.analysis import MODALITY_CODES, MODALITY_NAMES
    from mmsa_atsuko.models.atsuko import modalities

    def spells_the_order(node) -> bool:         # a tuple of the three letters (dicts keyed by them are values)
        return (isinstance(node, ast.Tuple) and len(node.elts) == 3
                and {getattr(k, "value", None) for k in node.elts} == {"L", "V", "A"})

    def builds_an_export_name(node) -> bool:    # f"modality_weight_{m}", f"band_weights_{m}"
        first = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else None
        return isinstance(first, ast.Constant) and str(first.value) in ("modality_weight_", "band_weights_")

    files = [*(ROOT / "mmsa_atsuko" / "models" / "atsuko").glob("*.py"), ROOT / "mmsa_atsuko" / "analysis" / "explain.py"]
    found = sorted(f"{path.name}:{node.lineno}" for path in files if path.name != "modalities.py"
                   for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if spells_the_order(node) or builds_an_export_name(node))
    assert not found, found
    assert (MODALITY_CODES, MODALITY_NAMES) == (modalities.MODALITIES, modalities.BATCH_KEY)
    assert modalities.MODALITIES == ("L", "V", "A") and modalities.BATCH_KEY == {"L": "text", "V": "vision", "A": "audio"}


@pytest.fixture(scope="module")
def corrupt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("routing-results")
    records = mmsa_atsuko.run(["atsuko", "tfn"], "mosi", seeds=[1111], synthetic=True, synthetic_recipe="corrupt",
                              preset="small", max_epochs=1, out=out, quiet=True)
    return out, {r["model"]: r for r in records}


def test_run_records_carry_the_routing_object(corrupt_run):
    out, records = corrupt_run
    assert "routing" not in records["tfn"]
    routing = records["atsuko"]["routing"]
    stored = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r for r in stored if r["model"] == "atsuko"][0]["routing"] == json.loads(json.dumps(routing))
    predictions = pd.read_csv(out / records["atsuko"]["run_dir"] / "predictions_test.csv")   # relative to --out
    for m in "LVA":
        expected = predictions[f"modality_weight_{m}"].mean()
        assert routing["modality_weights"][m]["mean"] == pytest.approx(expected, abs=1e-6)
    condition = analysis.load_run(out, records["atsuko"]["run_id"])      # the run's own data and condition
    from mmsa_atsuko.data.synthetic_stress import split_condition
    corrupted = split_condition(condition.data.spec.source, condition.data.spec.path)["corrupted"]
    hit = corrupted == 0
    assert routing["condition"]["modality_weight"]["L"]["corrupted"] == pytest.approx(
        predictions["modality_weight_L"][hit].mean(), abs=1e-6)


def test_explain_writes_modality_weights_csv_for_another_feature_file(corrupt_run, tmp_path, capsys):
    """Through cli.main in process: the test is about the CSV (a run.py process was seconds of imports;
    tests/test_readme.py runs explain as a process)."""
    from mmsa_atsuko.cli import main
    out, records = corrupt_run
    other = write_synthetic("mosi", tmp_path / "other.pkl", seed=7, recipe="corrupt")
    code = main(["explain", "--run", records["atsuko"]["run_id"], "--results", str(out), "--out",
                 str(tmp_path / "figs"), "--feature-path", str(other)])
    assert code == 0, capsys.readouterr().err[-2000:]
    table = pd.read_csv(tmp_path / "figs" / "modality_weights.csv")
    # predictions_test.csv's layout (id, label, pred, modality_weight_L/V/A: L is the text), then the trace.
    weights = ["modality_weight_L", "modality_weight_V", "modality_weight_A"]
    assert list(table.columns) == ["id", "label", "pred", *weights, "run_id", "data", "code", "condition"]
    run = analysis.load_run(out, records["atsuko"]["run_id"])
    test = mmsa_atsuko.data.load_dataset("mosi", feature_path=other).test
    assert list(table.id) == list(test.ids) and list(table.id) != list(run.data.test.ids)
    with torch.no_grad():
        outputs = run.model(test.batch(torch.arange(len(test))))
    np.testing.assert_allclose(table[weights].to_numpy(), outputs["modality_weights"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table[weights].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(table.pred, outputs["pred"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table.label, test.tensors["label"].numpy(), rtol=1e-6)
    # The rows were measured on the other file (seed 7 of the corrupt recipe), not the run's own data.
    assert set(table.run_id) == {records["atsuko"]["run_id"]}
    (data,) = set(table.data)
    assert data.startswith("synthetic:corrupt-") and "seed7" in data and data != records["atsuko"]["data"]
