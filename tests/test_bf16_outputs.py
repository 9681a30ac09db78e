"""`--precision bf16` changes speed, not the resolution of the scored numbers: every model's `pred` is float32
under bf16 autocast, the trainer's loss and metrics are float32 for any model, and a test split predicted as one
value says so in one warning line (its Corr is undefined)."""
import csv
import dataclasses
import logging

import numpy as np
import pytest
import torch

import mmsa_atsuko
from conftest import make_dataset
from mmsa_atsuko.data.spec import Dataset
from mmsa_atsuko.models.common.task import task_loss
from mmsa_atsuko.training.scored import warn_if_constant
from mmsa_atsuko.training.trainer import evaluate, fit
import test_model_contract
from test_model_contract import MODEL_TASKS, build
from test_trainer import LinearProbe, Logits, cfg

datasets = test_model_contract.datasets      # the fixture: the tiny data of every model's contract test


def bf16_representable(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).float() == x


@pytest.mark.parametrize("name,task", MODEL_TASKS)
def test_every_models_pred_keeps_float32_resolution_under_bf16_autocast(name, task, datasets, tiny_bert):
    """bf16 keeps 8 significant bits: a pred that came out of autocast in bf16 is representable in bf16 exactly,
    one in float32 almost never is. TFN on SIMS predicted 2 distinct values over 32 samples so."""
    data = datasets[task]
    model, _ = build(name, data, tiny_bert)
    batch = data.test.batch(torch.arange(16))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model.eval()(batch)["pred"]
    assert pred.dtype == torch.float32
    assert bf16_representable(pred).float().mean() < 0.25, pred
    with torch.no_grad():
        fp32 = model(batch)["pred"]
    assert (pred - fp32).abs().max() < 0.1 * (fp32.abs().max() + 1)     # bf16 inside, the same model


class SharedCriterion(LinearProbe):
    """A model of one's own with the models' shared criterion, which takes the labels to the pred's dtype."""

    def loss(self, outputs, batch):
        task = task_loss("regression", outputs["pred"], batch["label"])
        return {"total": task, "task": task}


def test_the_trainers_loss_and_metrics_are_float32_for_a_model_whose_pred_is_bf16():
    """LinearProbe's nn.Linear gives a bf16 pred under autocast: the loss of the old code took the labels to bf16
    too (valid Loss 1e-3 off the MAE of the same predictions); now the loss sees the pred as float32."""
    data = make_dataset()
    torch.manual_seed(0)
    model = SharedCriterion()
    result = evaluate(model, data.valid, "mosi", batch_size=16, collect=True, precision="bf16")
    assert bf16_representable(torch.from_numpy(result.pred)).all()     # the model itself rounded it
    label = data.valid.tensors["label"].numpy().astype(np.float64)
    mae = np.abs(result.pred.astype(np.float64) - label).mean()
    assert result.metrics["Loss"] == pytest.approx(mae, abs=1e-6)
    assert result.metrics["MAE"] == pytest.approx(mae, abs=1e-6)


class Constant(LinearProbe):
    """Predicts its bias for every sample: the weight is zero and frozen, the bias never moves (lr 0)."""

    def __init__(self):
        super().__init__()
        self.head.weight.data.zero_()
        self.head.weight.requires_grad_(False)
        self.head.bias.data.fill_(0.25)

    def param_groups(self, config):
        return [{"params": [self.head.bias], "lr": 0.0}]


def test_constant_test_predictions_are_said_in_one_warning_line(caplog):
    data = make_dataset()
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        result = fit(Constant(), data, cfg(max_epochs=2), device=torch.device("cpu"), seed=7, progress=False)
    assert np.isnan(result.test.metrics["Corr"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Constant on mosi, seed 7: all 16 test predictions are 0.25, so Corr is undefined (NaN) and "
                        "the model tells no sample from another; train longer (--max-epochs) or check the features"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        fit(LinearProbe(), data, cfg(max_epochs=2), device=torch.device("cpu"), seed=7, progress=False)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


class OneClass(Logits):
    """Logits that differ from sample to sample, but class 2's bias dwarfs them, so every argmax is class 2, and
    nothing moves (lr 0). TFN at --preset small on 20-class synthetic MIntRec was so: 60 of 60 test samples class 5."""

    def __init__(self):
        super().__init__(4)
        self.head.bias.data = torch.tensor([0.0, 0.0, 100.0, 0.0])

    def param_groups(self, config):
        return [{"params": list(self.parameters()), "lr": 0.0}]


def test_test_predictions_of_one_class_are_said_in_one_warning_line(caplog):
    data = make_dataset(task="classification", name="mintrec", num_classes=4)
    named = Dataset(dataclasses.replace(data.spec, label_names=("Complain", "Praise", "Apologise", "Thank")),
                    data.train, data.valid, data.test)
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        result = fit(OneClass(), named, cfg(max_epochs=1), device=torch.device("cpu"), seed=7, progress=False)
    assert len(np.unique(result.test.pred[:, 2])) == 16           # not one value: the logits differ per sample
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["OneClass on mintrec, seed 7: all 16 test predictions are class 2 (Apologise), so the model "
                        "tells no sample from another; train longer (--max-epochs) or check the features"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        result = fit(Logits(4), data, cfg(max_epochs=1), device=torch.device("cpu"), seed=7, progress=False)
    assert len(set(result.test.pred.argmax(axis=1))) > 1
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warn_if_constant(np.array([[0.0, 1.0], [0.0, 2.0]]), "test", "x")     # without names: "class 1"


def test_tfn_on_synthetic_sims_at_bf16_predicts_about_as_many_values_as_samples(tmp_path):
    """The user trial's run: seed 1111 predicted 0.375 or 0.40625 for all 32 test samples."""
    (record,) = mmsa_atsuko.run("tfn", "sims", seeds=[1111], out=tmp_path, synthetic=True, preset="small",
                                max_epochs=2, quiet=True, precision="bf16")
    with open(tmp_path / "runs" / record["run_id"] / "predictions_test.csv") as f:
        preds = [float(row["pred"]) for row in csv.DictReader(f)]
    # bf16 still rounds the features the output layer reads, so two samples may meet: 31 of 32 here, 2 before
    assert len(preds) == 32 and len(set(preds)) >= 24
    assert record["metrics"]["Loss"] == pytest.approx(record["metrics"]["MAE"], abs=1e-6)
