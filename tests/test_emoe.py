"""EMOE: builds from every dataset config (features and a tiny BERT), aligned and unaligned
router inputs, the router and its losses against hand-computed values, its outputs in both task
modes, fitting. The generic model checks (shapes, gradients, seeds, a batch of one, reload) are
test_model_contract.py."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import conftest
from conftest import fit_one_batch, make_dataset, with_text_bert
from mmsa_atsuko.config import load_config
from mmsa_atsuko.data.spec import Dataset
from mmsa_atsuko.registry import build_model
from mmsa_atsuko.training.trainer import build_optimizer

NO_DROPOUT = [f"{k}=0.0" for k in ("attn_dropout", "attn_dropout_a", "attn_dropout_v", "embed_dropout",
                                   "text_dropout", "output_dropout")]




def aligned_dataset(n=8, length=6):
    split = conftest.make_split("train", n, L=length, La=length, Lv=length)
    data = make_dataset()
    spec = dataclasses.replace(data.spec, aligned=True, seq_lens={"text": length, "audio": length, "vision": length})
    return Dataset(spec, split, split, split)


def small_model(task="regression", num_classes=1, overrides=(), data=None):
    data = data or make_dataset(task=task, num_classes=num_classes)
    config = load_config("emoe", "mosi", preset="small", overrides=list(overrides))
    return build_model("emoe", config, data.spec), data, config


# --- building -----------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims", "simsv2"])
def test_builds_from_each_dataset_config(dataset):
    data = make_dataset(name=dataset)
    config = load_config("emoe", dataset, overrides=["use_bert=false"])
    model = build_model("emoe", config, data.spec)
    d, _ = config.dst_feature_dim_nheads
    lengths, dims = data.spec.seq_lens, data.spec.feature_dims
    # the router reads the raw features of all three modalities, each at the text length
    assert model.router.fc1.in_features == lengths["text"] * (dims["text"] + dims["audio"] + dims["vision"])
    assert model.router.fc1.out_features == model.router.fc1.in_features // 8
    assert model.router.temperature == 0.1
    assert sorted(model.router_input.align) == ["A", "V"]    # unaligned: time maps to the text length
    assert model.router_input.align["A"].in_features == lengths["audio"]
    for m in ("l", "v", "a"):
        assert len(model.transformers[m].layers) == config.nlevels and model.transformers[m].embed_dim == d
        conv = model.proj[m]
        assert conv.kernel_size == (config[f"conv1d_kernel_size_{m}"],) and conv.padding == (0,) and conv.bias is None
    assert model.transformers["v"].layers[0].attention.attn_dropout == config.attn_dropout_v
    assert model.encoder_c.kernel_size == (1,) and model.encoder_c.bias is None


def test_trainer_settings_are_emoes():
    config = load_config("emoe", "mosi")
    assert config.use_bert and config.use_finetune
    assert (config.batch_size, config.learning_rate, config.grad_accum, config.early_stop) == (16, 1e-4, 10, 10)
    assert (config.scheduler, config.scheduler_factor, config.scheduler_patience) == ("plateau", 0.5, 5)
    assert config.grad_clip is None and config.weight_decay == 0.0
    assert (config.loss_weight_unimodal, config.loss_weight_entropy, config.loss_weight_router,
            config.loss_weight_distill) == (1.0, 0.1, 0.01, 0.1)


def test_builds_and_runs_with_bert(tiny_bert):
    data = with_text_bert(make_dataset())
    config = load_config("emoe", "mosi", overrides=[f"pretrained={tiny_bert}", "dst_feature_dim_nheads=[16,2]",
                                                    "nlevels=1"])
    model = build_model("emoe", config, data.spec)
    assert model.text_input.use_bert and model.text_input.encoder.use_finetune
    batch = data.train.batch(torch.arange(4))
    del batch["text"]                                          # the BERT path must not need the features
    out = model.train()(batch)
    assert out["pred"].shape == (4,)
    model.loss(out, batch)["total"].backward()
    assert model.text_input.encoder.model.embeddings.word_embeddings.weight.grad is not None   # BERT fine-tunes


def test_aligned_data_has_no_align_layers():
    data = aligned_dataset()
    model, _, _ = small_model(data=data)
    assert len(model.router_input.align) == 0
    # the router input is then the plain flattened concatenation, text | vision | audio per step
    batch = data.train.batch(torch.arange(3))
    z = model.router_input({"L": batch["text"], "V": batch["vision"], "A": batch["audio"]})
    expected = torch.cat([batch["text"], batch["vision"], batch["audio"]], dim=2).reshape(3, -1)
    assert torch.equal(z, expected)
    assert model.eval()(batch)["pred"].shape == (3,)


def test_router_is_emoes_formula():
    # softmax( W2 relu( L2normalize( W1 z ) ) / t ): normalise after W1, before the ReLU
    torch.manual_seed(0)
    model, data, _ = small_model()
    router = model.router
    z = torch.randn(5, router.fc1.in_features)
    hidden = router.fc1(z)
    hidden = hidden / hidden.norm(dim=1, keepdim=True)
    expected = torch.softmax(router.fc2(torch.relu(hidden)) / 0.1, dim=1)
    assert torch.allclose(router(z), expected, atol=1e-6)


# --- the losses on hand-computed values ----------------------------------------------------

def test_router_target_is_inverse_error_normalised():
    from mmsa_atsuko.models.baselines.emoe import router_target
    errors = torch.tensor([[0.0, 0.9, 0.4], [1.9, 1.9, 1.9]])
    # 1/(e + 0.1) = (10, 1, 2) -> /13; equal errors -> uniform
    expected = torch.tensor([[10 / 13, 1 / 13, 2 / 13], [1 / 3, 1 / 3, 1 / 3]])
    assert torch.allclose(router_target(errors), expected)


def test_entropy_balance_is_n_times_negative_entropy():
    from mmsa_atsuko.models.baselines.emoe import entropy_balance
    weights = torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    row0 = 3 * (0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    row1 = 3 * (1.0 * math.log(1.0) + 2 * 1e-9 * math.log(1e-9))     # EMOE clamps w at 1e-9 first
    assert entropy_balance(weights).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert entropy_balance(torch.full((1, 3), 1 / 3)).item() == pytest.approx(-3 * math.log(3), rel=1e-6)


def test_regression_loss_terms_by_hand():
    model, _, _ = small_model()
    label = torch.tensor([1.0, -0.5])
    logits = {"l": torch.tensor([[1.0], [0.5]]), "v": torch.tensor([[0.0], [-0.5]]), "a": torch.tensor([[3.0], [0.0]])}
    weights = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    pred = torch.tensor([0.5, -1.0])
    student, teacher = torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    outputs = {"pred": pred, "logits_unimodal": logits, "modality_weights": weights,
               "fused_proj": student, "teacher": teacher}
    got = model.loss(outputs, {"label": label})

    task = (0.5 + 0.5) / 2
    unimodal = ((0.0 + 1.0) / 2 + (1.0 + 0.0) / 2 + (2.0 + 0.5) / 2) / 3
    # per-sample squared errors in the order l, v, a
    errors = [[0.0, 1.0, 4.0], [1.0, 0.0, 0.25]]
    router = 0.0
    for e, w in zip(errors, weights.tolist()):
        inv = [1 / (x + 0.1) for x in e]
        router += sum((i / sum(inv) - wi) ** 2 for i, wi in zip(inv, w)) / 3
    router /= 2
    entropy = sum(3 * sum(x * math.log(x) for x in w) for w in weights.tolist()) / 2
    s = 1 / (1 + math.e)                                      # softmax([0, 1]) = (s, 1 - s)
    distill = (((s - (1 - s)) ** 2 + ((1 - s) - s) ** 2) / 2 + 0.0) / 2
    assert got["task"].item() == pytest.approx(task)
    assert got["unimodal"].item() == pytest.approx(unimodal)
    assert got["router"].item() == pytest.approx(router, rel=1e-5)
    assert got["entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert got["distill"].item() == pytest.approx(distill, rel=1e-5)
    # EMOE.py: L = task + (l + v + a)/3 + 0.1 * (entropy + 0.1 * router) + 0.1 * distill
    assert got["total"].item() == pytest.approx(task + unimodal + 0.1 * (entropy + 0.1 * router) + 0.1 * distill,
                                                rel=1e-5)


def test_classification_router_target_uses_the_true_class_probability():
    model, _, _ = small_model(task="classification", num_classes=3)
    label = torch.tensor([2])
    logits = {"l": torch.tensor([[0.0, 0.0, 0.0]]), "v": torch.tensor([[0.0, 0.0, math.log(8.0)]]),
              "a": torch.tensor([[math.log(8.0), 0.0, 0.0]])}
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    outputs = {"pred": torch.tensor([[0.0, 1.0, 2.0]]), "logits_unimodal": logits, "modality_weights": weights,
               "fused_proj": torch.zeros(1, 4), "teacher": torch.zeros(1, 4)}
    got = model.loss(outputs, {"label": label})
    p_true = [1 / 3, 8 / 10, 1 / 10]                           # softmax probability of class 2 per head
    inv = [1 / ((1 - p) ** 2 + 0.1) for p in p_true]
    target = [i / sum(inv) for i in inv]
    router = sum((t - w) ** 2 for t, w in zip(target, weights[0].tolist())) / 3
    assert got["router"].item() == pytest.approx(router, rel=1e-5)
    assert target[1] > target[0] > target[2]                   # the surest right head gets the most weight
    ce = [-math.log(p) for p in p_true]
    assert got["unimodal"].item() == pytest.approx(sum(ce) / 3, rel=1e-5)
    assert got["task"].item() == pytest.approx(F.cross_entropy(outputs["pred"], label).item())


def test_router_target_is_detached():
    model, data, _ = small_model()
    batch = data.train.batch(torch.arange(4))
    out = model.train()(batch)
    logits = out["logits_unimodal"]["l"]
    grad = torch.autograd.grad(model.loss(out, batch)["router"], logits, allow_unused=True)[0]
    assert grad is None or torch.count_nonzero(grad) == 0


# --- outputs, fitting ------------------------------------------------------------------------

def test_router_and_unimodal_outputs_in_both_task_modes():
    model, data, _ = small_model()
    out = model.eval()(data.train.batch(torch.arange(8)))
    assert out["modality_weights"].shape == (8, 3)
    assert torch.allclose(out["modality_weights"].sum(1), torch.ones(8))
    assert out["export"]["modality_weights"].shape == (8, 3)
    model, data, _ = small_model(task="classification", num_classes=20)
    batch = data.train.batch(torch.arange(8))
    out = model.eval()(batch)
    assert all(out["logits_unimodal"][m].shape == (8, 20) for m in ("l", "v", "a"))
    assert set(model.loss(out, batch)) == {"total", "task", "unimodal", "router", "entropy", "distill"}


def test_concat_fusion():
    model, data, _ = small_model(overrides=["fusion_method=concat"])
    out = model.eval()(data.train.batch(torch.arange(4)))
    assert out["features"]["fusion"].shape == (4, 3 * 16) and out["teacher"].shape == (4, 3 * 16)


def test_overfits_32_samples():
    torch.manual_seed(0)
    data = make_dataset(n=(32, 16, 16))
    model, _, config = small_model(overrides=NO_DROPOUT + ["learning_rate=0.003"], data=data)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(32))
    first, last = fit_one_batch(model, batch, optimizer, steps=80)
    # labels are 3*tanh(.); the untrained task loss is about 1.2, a memorised set ends near 0.035 (< 0.15)
    assert last < 0.15 < first
