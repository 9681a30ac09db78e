"""MulT: builds from every dataset config with MMSA's structure and trainer settings, the causal
mask reaches the model output, both task losses, fitting. The generic model checks (shapes,
gradients, seeds, a batch of one, reload) are test_model_contract.py."""
import pytest
import torch

from conftest import fit_one_batch, make_dataset
from mmsa_atsuko.config import load_config
from mmsa_atsuko.registry import build_model
from mmsa_atsuko.training.trainer import build_optimizer




def small_model(task="regression", num_classes=1, overrides=(), data=None):
    data = data or make_dataset(task=task, num_classes=num_classes)
    config = load_config("mult", "mosi", preset="small", overrides=list(overrides))
    return build_model("mult", config, data.spec), data, config


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims", "simsv2"])
def test_builds_from_each_dataset_config(dataset):
    data = make_dataset(name=dataset)
    config = load_config("mult", dataset)
    model = build_model("mult", config, data.spec)
    d, heads = config.dst_feature_dim_nheads
    assert sorted(model.cross) == ["a_with_l", "a_with_v", "l_with_a", "l_with_v", "v_with_a", "v_with_l"]
    for stack in model.cross.values():
        assert len(stack.layers) == config.nlevels and stack.embed_dim == d
    for stack in model.memory.values():                       # MulT: max(nlevels, 3) layers, width 2d
        assert len(stack.layers) == max(config.nlevels, 3) and stack.embed_dim == 2 * d
    assert model.head.fc1.in_features == 6 * d
    # attention dropout of a cross-modal stack is its source modality's (MulT get_network)
    assert model.cross["l_with_a"].layers[0].attention.attn_dropout == config.attn_dropout_a
    assert model.cross["a_with_l"].layers[0].attention.attn_dropout == config.attn_dropout
    assert model.cross["a_with_v"].layers[0].attention.attn_dropout == config.attn_dropout_v
    for m in ("l", "a", "v"):                                  # Conv1d, padding 0, no bias
        conv = model.proj[m]
        assert conv.kernel_size == (config[f"conv1d_kernel_size_{m}"],) and conv.padding == (0,) and conv.bias is None
    assert not config.use_bert


def test_trainer_settings_are_mmsas():
    mosi = load_config("mult", "mosi")
    assert (mosi.grad_accum, mosi.grad_clip, mosi.grad_clip_mode) == (8, 0.6, "value")
    assert (mosi.scheduler, mosi.scheduler_factor, mosi.scheduler_patience) == ("plateau", 0.1, 5)
    assert mosi.weight_decay == 0.0 and mosi.early_stop == 8
    assert load_config("mult", "mosei").scheduler_patience == 20
    assert load_config("mult", "simsv2").grad_clip == 1.0


def test_conv_projection_shortens_sequences_by_kernel_minus_one():
    model, data, _ = small_model(overrides=["conv1d_kernel_size_l=3", "conv1d_kernel_size_a=2",
                                            "conv1d_kernel_size_v=4"])
    seen = {}
    for m in ("l", "a", "v"):
        model.memory[m].register_forward_pre_hook(lambda mod, args, m=m: seen.__setitem__(m, args[0].shape))
    model.eval()(data.train.batch(torch.arange(4)))
    lengths = data.spec.seq_lens
    assert seen == {"l": (lengths["text"] - 2, 4, 16), "a": (lengths["audio"] - 1, 4, 16),
                    "v": (lengths["vision"] - 3, 4, 16)}


@pytest.mark.parametrize("attn_mask", [True, False])
def test_causal_mask_hides_the_future(attn_mask):
    # Equal lengths and kernel 1: with MulT's mask, step t of every stream depends only on steps
    # <= t, so changing the last frame of every modality leaves all earlier memory outputs as they were.
    import conftest
    split = conftest.make_split("train", 4, L=6, La=6, Lv=6)
    data = make_dataset()
    data = type(data)(data.spec, split, split, split)
    torch.manual_seed(0)
    model, _, _ = small_model(overrides=[f"attn_mask={str(attn_mask).lower()}"], data=data)
    model.eval()
    inputs = []    # the forward pass reads only the last step; the whole memory sequence is rebuilt here
    model.memory["l"].register_forward_pre_hook(lambda mod, args: inputs.append(args[0]))
    batch = split.batch(torch.arange(4))
    model(batch)
    for key in ("text", "audio", "vision"):
        batch[key] = batch[key].clone()
        batch[key][:, -1] += 1.0
    model(batch)
    with torch.no_grad():
        before, after = (model.memory["l"](x) for x in inputs[-2:])
    assert torch.allclose(before[:-1], after[:-1], atol=1e-6) == attn_mask
    assert not torch.allclose(before[-1], after[-1])


def test_loss_is_l1_or_ce_in_the_two_task_modes():
    model, data, _ = small_model()
    batch = data.train.batch(torch.arange(8))
    out = model.eval()(batch)
    assert torch.allclose(model.loss(out, batch)["task"], (out["pred"] - batch["label"]).abs().mean())
    model, data, _ = small_model(task="classification", num_classes=20)
    batch = data.train.batch(torch.arange(8))
    out = model.eval()(batch)
    loss = model.loss(out, batch)
    assert torch.allclose(loss["task"], torch.nn.functional.cross_entropy(out["pred"], batch["label"]))
    assert loss["total"] is loss["task"]


NO_DROPOUT = [f"{k}=0.0" for k in ("attn_dropout", "attn_dropout_a", "attn_dropout_v", "embed_dropout",
                                   "text_dropout", "output_dropout")]


def test_text_dropout_is_the_only_randomness_left_and_only_in_training():
    model, data, _ = small_model(overrides=NO_DROPOUT + ["text_dropout=0.5"])
    batch = data.train.batch(torch.arange(4))
    model.train()
    assert not torch.equal(model(batch)["pred"], model(batch)["pred"])
    model.eval()
    assert torch.equal(model(batch)["pred"], model(batch)["pred"])


def test_overfits_32_samples():
    torch.manual_seed(0)
    data = make_dataset(n=(32, 16, 16))
    model, _, config = small_model(overrides=NO_DROPOUT + ["learning_rate=0.003"], data=data)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(32))
    first, last = fit_one_batch(model, batch, optimizer, steps=80)
    # labels are 3*tanh(.); the untrained loss is about 1.2, a memorised set ends near 0.03 (< 0.15)
    assert last < 0.15 < first
