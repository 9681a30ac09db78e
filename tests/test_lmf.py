"""LMF: builds from every dataset config, the low-rank fusion equals its full-tensor form,
MMSA's frozen-fusion switch, name-based parameter groups, both task losses, fitting. The generic
model checks (shapes, gradients, seeds, a batch of one, reload) are test_model_contract.py."""
import pytest
import torch

from conftest import fit_one_batch, make_dataset
from mmsa_atsuko.config import load_config
from mmsa_atsuko.registry import build_model
from mmsa_atsuko.training.trainer import build_optimizer




def small_model(task="regression", num_classes=1, overrides=()):
    data = make_dataset(task=task, num_classes=num_classes)
    config = load_config("lmf", "mosi", preset="small", overrides=list(overrides))
    return build_model("lmf", config, data.spec), data, config


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims", "simsv2"])
def test_builds_from_each_dataset_config(dataset):
    data = make_dataset(name=dataset)
    config = load_config("lmf", dataset)
    model = build_model("lmf", config, data.spec)
    text_hidden, audio_hidden, vision_hidden = config.hidden_dims
    # MMSA: factors are (rank, d+1, out) and the text vector is text_hidden // 2 wide
    assert model.audio_factor.shape == (config.rank, audio_hidden + 1, 1)
    assert model.video_factor.shape == (config.rank, vision_hidden + 1, 1)
    assert model.text_factor.shape == (config.rank, text_hidden // 2 + 1, 1)
    assert model.fusion_weights.shape == (1, config.rank)
    assert config.mmsa_frozen_fusion_weights is False


def test_mosi_config_is_mmsas():
    config = load_config("lmf", "mosi")
    assert (config.rank, config.batch_size, config.learning_rate, config.factor_lr, config.weight_decay) == \
        (3, 64, 1e-3, 1e-3, 5e-3)


def test_low_rank_fusion_equals_the_full_weight_tensor():
    # LMF Eq. 6-7: sum_r w_r prod_m ([1;h_m] W_m^r) == < [1;a] (x) [1;v] (x) [1;t], sum_r w_r W_a^r (x) W_v^r (x) W_t^r > + b
    torch.manual_seed(0)
    model, data, _ = small_model()
    model.eval()
    with torch.no_grad():
        model.fusion_bias.fill_(0.25)
    batch = data.train.batch(torch.arange(5))
    out = model(batch)
    one = torch.ones(5, 1)
    a, v, t = (torch.cat([one, out["features"][m]], dim=1) for m in ("audio", "vision", "text"))
    full_weight = sum(model.fusion_weights[0, r] * torch.einsum("i,j,k->ijk", model.audio_factor[r, :, 0],
                                                                 model.video_factor[r, :, 0], model.text_factor[r, :, 0])
                      for r in range(model.fusion_weights.shape[1]))
    expected = torch.einsum("bi,bj,bk,ijk->b", a, v, t, full_weight) + 0.25
    assert torch.allclose(out["pred"], expected, atol=1e-5)


def test_classification_factors_are_c_wide_and_the_loss_is_ce():
    model, data, _ = small_model(task="classification", num_classes=20)
    assert model.text_factor.shape[-1] == 20 and model.fusion_bias.shape == (1, 20)
    batch = data.train.batch(torch.arange(8))
    out = model.eval()(batch)
    loss = model.loss(out, batch)
    assert torch.allclose(loss["task"], torch.nn.functional.cross_entropy(out["pred"], batch["label"]))
    assert loss["total"] is loss["task"]


def test_regression_loss_is_l1():
    model, data, _ = small_model()
    batch = data.train.batch(torch.arange(8))
    out = model.eval()(batch)
    assert torch.allclose(model.loss(out, batch)["task"], (out["pred"] - batch["label"]).abs().mean())


def test_param_groups_by_name_with_factor_lr():
    model, _, config = small_model(overrides=["factor_lr=0.0005", "learning_rate=0.002", "weight_decay=0.001"])
    groups = {g["name"]: g for g in model.param_groups(config)}
    assert set(groups) == {"factors", "rest"}
    assert [id(p) for p in groups["factors"]["params"]] == \
        [id(model.audio_factor), id(model.video_factor), id(model.text_factor)]
    assert groups["factors"]["lr"] == 0.0005 and groups["rest"]["lr"] == 0.002
    optimizer = build_optimizer(model, config)      # the trainer accepts them: every trainable param exactly once
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.001, 0.001]   # MMSA: wd on both groups
    rest = {id(p) for p in groups["rest"]["params"]}
    assert id(model.fusion_weights) in rest and id(model.fusion_bias) in rest


def _fusion_after_one_step(frozen: bool):
    torch.manual_seed(0)
    model, data, config = small_model(overrides=[f"mmsa_frozen_fusion_weights={str(frozen).lower()}"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(16))
    model.loss(model(batch), batch)["total"].backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return model, changed


def test_default_trains_every_parameter_including_fusion_weights():
    model, changed = _fusion_after_one_step(frozen=False)
    assert all(p.requires_grad for p in model.parameters())
    assert {"fusion_weights", "fusion_bias", "audio_factor"} <= changed


def test_mmsa_flag_freezes_exactly_fusion_weights_and_bias():
    model, changed = _fusion_after_one_step(frozen=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"fusion_weights", "fusion_bias"}
    assert "fusion_weights" not in changed and "fusion_bias" not in changed
    assert {"audio_factor", "video_factor", "text_factor"} <= changed
    in_groups = {id(p) for g in model.param_groups(load_config("lmf", "mosi")) for p in g["params"]}
    assert id(model.fusion_weights) not in in_groups and id(model.fusion_bias) not in in_groups


def test_overfits_32_samples():
    torch.manual_seed(0)
    data = make_dataset(n=(32, 16, 16))
    config = load_config("lmf", "mosi", preset="small",
                         overrides=["dropouts=[0,0,0,0]", "learning_rate=0.01", "factor_lr=0.01", "weight_decay=0.0"])
    model = build_model("lmf", config, data.spec)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(32))
    first, last = fit_one_batch(model, batch, optimizer, steps=150)
    # labels are 3*tanh(.); the untrained loss is about 1.2. A model that
    # memorised the 32 samples is far below 0.1
    assert last < 0.1 < first
