"""Late fusion (models/baselines/late_fusion.py): its output on a hand-built batch worked out by hand, what an absent
modality leaves of its branch, and training on each task. The generic model checks (shapes, gradients, seeds,
reload) are test_model_contract.py; the subset invariance every subset model owes is test_conditions.py."""
import dataclasses

import torch

from conftest import fit_one_batch, make_dataset
from mmsa_atsuko.config import load_config
from mmsa_atsuko.data.conditions import check_model_allows, make_condition
from mmsa_atsuko.registry import build_model, get_model_class
from mmsa_atsuko.training.trainer import build_optimizer


def hand_set(linear, weight, bias):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def one_wide_model(task="regression", num_classes=1):
    """text 2-d, audio and vision 1-d, every code 1 wide, the head's hidden layer 1 wide."""
    data = make_dataset(task=task, num_classes=num_classes)
    spec = dataclasses.replace(data.spec, feature_dims={"text": 2, "audio": 1, "vision": 1})
    config = load_config("late_fusion", "mosi", preset="small", overrides=[("encoder_dim", 1), ("head_dim", 1)])
    model = build_model("late_fusion", config, spec).eval()
    hand_set(model.encoders["text"][0], [[1.0, 1.0]], [0.0])
    hand_set(model.encoders["audio"][0], [[2.0]], [0.0])
    hand_set(model.encoders["vision"][0], [[1.0]], [-1.0])
    hand_set(model.head[0], [[1.0, 1.0, 1.0]], [0.0])
    return model


def hand_batch():
    """Two samples; padded frames hold large values, so a mean over the padding would show."""
    text = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [90.0, 90.0]],
                         [[-1.0, -1.0], [80.0, 80.0], [80.0, 80.0]]])
    audio = torch.tensor([[[1.0], [-50.0]], [[3.0], [5.0]]])
    vision = torch.tensor([[[4.0], [2.0]], [[0.5], [70.0]]])
    masks = {"text": [[1, 1, 0], [1, 0, 0]], "audio": [[1, 0], [1, 1]], "vision": [[1, 1], [1, 0]]}
    batch = {"text": text, "audio": audio, "vision": vision, "label": torch.tensor([0.0, 1.0])}
    for m, mask in masks.items():
        batch[f"{m}_mask"] = torch.tensor(mask, dtype=torch.bool)
        batch[f"{m}_lengths"] = batch[f"{m}_mask"].sum(1)
    return batch


def test_the_output_of_a_hand_built_batch_is_the_one_worked_out_by_hand():
    model = one_wide_model()
    hand_set(model.head[3], [[3.0]], [0.5])
    out = model(hand_batch())
    # sample 0: text mean (2, 3) -> relu(5) = 5; audio mean 1 -> 2; vision mean 3 -> relu(3 - 1) = 2;
    #           head relu(5 + 2 + 2) = 9 -> 3 * 9 + 0.5 = 27.5
    # sample 1: text mean (-1, -1) -> relu(-2) = 0; audio mean 4 -> 8; vision mean 0.5 -> relu(-0.5) = 0;
    #           head relu(0 + 8 + 0) = 8 -> 3 * 8 + 0.5 = 24.5
    assert out["pred"].tolist() == [27.5, 24.5]
    assert [out["features"][m][:, 0].tolist() for m in ("text", "audio", "vision")] == [[5, 0], [2, 8], [2, 0]]
    # unsquashed: nothing holds a regression prediction inside MMSA's [-3, 3]
    losses = model.loss(out, hand_batch())
    assert losses["total"].item() == losses["task"].item() == (27.5 + 23.5) / 2


def test_classification_gives_one_logit_per_class_from_the_same_codes():
    model = one_wide_model(task="classification", num_classes=3)
    hand_set(model.head[3], [[1.0], [-1.0], [0.0]], [0.0, 0.0, 2.0])
    logits = model(hand_batch())["pred"]
    assert logits.tolist() == [[9.0, -9.0, 2.0], [8.0, -8.0, 2.0]]
    assert model.loss({"pred": logits}, {"label": torch.tensor([0, 2])})["task"].item() > 0


def test_an_absent_modality_leaves_its_branch_one_constant_code():
    assert get_model_class("late_fusion").registry_meta["modality_subsets"] is True
    check_model_allows("late_fusion", make_condition(modalities="TA"))
    data = make_dataset()
    config = load_config("late_fusion", "mosi", preset="small")
    torch.manual_seed(0)
    model = build_model("late_fusion", config, data.spec).eval()
    index = torch.arange(len(data.test))
    with torch.no_grad():
        codes = model(data.under(make_condition(modalities="TA")).test.batch(index))["features"]
        full = model(data.test.batch(index))["features"]
    assert torch.equal(codes["vision"], codes["vision"][:1].expand_as(codes["vision"]))    # every sample the same
    assert not torch.equal(full["vision"], full["vision"][:1].expand_as(full["vision"]))
    assert torch.equal(codes["audio"], full["audio"]) and torch.equal(codes["text"], full["text"])


def test_it_learns_one_batch_on_each_task():
    for task, num_classes in (("regression", 1), ("classification", 4)):
        data = make_dataset(task=task, num_classes=num_classes)
        config = load_config("late_fusion", "mosi", preset="small", overrides=[("learning_rate", 1e-2)])
        torch.manual_seed(0)
        model = build_model("late_fusion", config, data.spec).train()
        optimizer = build_optimizer(model, config)
        first, last = fit_one_batch(model, data.train.batch(torch.arange(16)), optimizer, steps=50)
        assert last < 0.5 * first, (task, first, last)
