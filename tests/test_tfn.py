"""TFN: MMSA's fusion width per dataset config, output range, temporal means, fitting a small set, fusion
dropout. The generic model checks (shapes, gradients, seeds, a batch of one, reload) are test_model_contract.py."""
from dataclasses import replace

import pytest
import torch

from conftest import fit_one_batch, make_dataset
from mmsa_atsuko.config import load_config
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.registry import build_model


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims", "simsv2"])
def test_builds_from_each_dataset_config(dataset):
    data = make_dataset(name=dataset)
    config = load_config("tfn", dataset)
    model = build_model("tfn", config, data.spec)
    text_out = config.text_out
    _, audio_h, vision_h = config.hidden_dims
    # the fusion layer's width is the outer product size (text_out+1)(v+1)(a+1), MMSA's formula
    assert model.post_fusion_layer_1.in_features == (text_out + 1) * (vision_h + 1) * (audio_h + 1)


def test_mosi_fusion_width_matches_mmsa_example():
    model = build_model("tfn", load_config("tfn", "mosi"), make_dataset().spec)
    assert model.post_fusion_layer_1.in_features == 33 * 129 * 33 == 140_481


def test_regression_output_range_and_classification_loss():
    reg = make_dataset()
    model = build_model("tfn", load_config("tfn", "mosi", preset="small"), reg.spec).eval()
    out = model(reg.train.batch(torch.arange(8)))
    assert ((out["pred"] > -3) & (out["pred"] < 3)).all()
    cls = make_dataset(task="classification", name="mosi", num_classes=20)
    model = build_model("tfn", load_config("tfn", "mosi", preset="small"), cls.spec).eval()
    batch = cls.train.batch(torch.arange(8))
    out = model(batch)
    loss = model.loss(out, batch)
    assert torch.allclose(loss["task"], torch.nn.functional.cross_entropy(out["pred"], batch["label"]))


def test_labels_the_output_range_cannot_reach_are_refused_for_training_only():
    """A dataset of your own with labels in [-5, 5] trained a TFN whose sigmoid stops at 3, without a word. The
    check is the training run's (api.jobs.prepare_job): building the model, as loading a run folder does, passes."""
    wide = replace(make_dataset().spec, name="wide", label_range=(-5.0, 5.0))
    model = build_model("tfn", load_config("tfn", "mosi", preset="small"), wide)     # a trained run loads
    with pytest.raises(UsageError) as error:
        model.check_training_data(wide)
    assert str(error.value) == ("tfn: output_range [-3, 3] cannot reach the labels of wide (label_range [-5, 5]): "
                                "set -c output_range=[-5,5]")
    model = build_model("tfn", load_config("tfn", "mosi", preset="small", overrides=["output_range=[-5,5]"]), wide)
    model.check_training_data(wide)
    assert (model.output_scale.item(), model.output_shift.item()) == (10.0, -5.0)
    narrow = replace(make_dataset().spec, label_range=(-1.0, 1.0))         # SIMS's, inside MMSA's (-3, 3)
    build_model("tfn", load_config("tfn", "mosi", preset="small"), narrow).check_training_data(narrow)


def test_temporal_mean_modes():
    from mmsa_atsuko.models.baselines.tfn import temporal_mean
    x = torch.tensor([[[1.0], [3.0], [0.0], [0.0]]])
    mask = torch.tensor([[True, True, False, False]])
    assert temporal_mean(x, mask, "padded").item() == 1.0      # (1+3+0+0)/4, MMSA
    assert temporal_mean(x, mask, "valid").item() == 2.0       # (1+3)/2


def test_overfits_32_samples():
    torch.manual_seed(0)
    data = make_dataset(n=(32, 16, 16))
    config = load_config("tfn", "mosi", preset="small", overrides=["dropouts=[0,0,0,0]", "learning_rate=0.01"])
    model = build_model("tfn", config, data.spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    batch = data.train.batch(torch.arange(32))
    first, last = fit_one_batch(model, batch, optimizer, steps=300)
    # labels are 3*tanh(.) with mean |y| ~ 1.5; a model that memorised them is far below 0.1
    assert last < 0.1 < first


def test_fusion_dropout_is_inverted_dropout():
    from mmsa_atsuko.models.baselines.tfn import fusion_dropout
    torch.manual_seed(0)
    x = torch.ones(200, 1000)
    y = fusion_dropout(x, 0.3, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01          # keep rate 1 - p
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))   # survivors scaled by 1/(1-p)
    assert fusion_dropout(x, 0.3, training=False) is x
    assert fusion_dropout(x, 0.0, training=True) is x
