"""The model contract (docs/design.md, Contracts: Model), checked for every registered model on the tiny fixture data.

Each model is built from its own YAML with its `small` preset and the tiny BERT; the data carries both
`text` features and `text_bert` tokens, so a model reads whichever its config asks for. What is special
to one model (MMSA parity, its own losses and hooks) stays in that model's test file. Every key a model's
YAML declares, and every default of configs/datasets.yaml, is read by the model or the trainer.
"""
from dataclasses import replace

import pytest
import torch
from easydict import EasyDict

from conftest import assert_same_outputs_after_reload, make_dataset, with_text_bert
from mmsa_atsuko.config import CONFIG_DIR, load_config, model_config_name
from mmsa_atsuko.config.yaml_files import read_yaml
from mmsa_atsuko.errors import ModelContractError, UsageError
from mmsa_atsuko.models import contract
from mmsa_atsuko.registry import build_model, get_model_class, list_models, model_yaml_path
from mmsa_atsuko.training.trainer import build_optimizer, fit

NUM_CLASSES = 4
# BatchNorm over the batch cannot train on one sample (models/baselines/tfn.py SubNet, as in MMSA): a batch
# of one is refused with a UsageError instead of torch's traceback.
ONE_SAMPLE_TRAINING_REFUSED = {"tfn", "lmf"}


def tasks(name):
    return get_model_class(name).registry_meta.get("tasks", ("regression",))


MODEL_TASKS = [pytest.param(name, task, id=f"{name}-{task}")
               for name in list_models() for task in ("regression", "classification") if task in tasks(name)]


@pytest.fixture(scope="module")
def datasets():
    return {"regression": with_text_bert(make_dataset()),
            "classification": with_text_bert(make_dataset(task="classification", num_classes=NUM_CLASSES))}


def build(name, data, tiny_bert, seed=0, fit_start=True):
    """The model as the trainer has it before its first step: built under `seed`, `on_fit_start` run."""
    config = load_config(name, data.spec.name, preset="small", overrides=[("pretrained", tiny_bert)])
    torch.manual_seed(seed)
    model = build_model(name, config, data.spec)
    if fit_start and hasattr(model, "on_fit_start"):
        model.on_fit_start(data.train)
    return model, config


def pred_shape(task, n):
    return contract.pred_shape(task, n, NUM_CLASSES)


def check_outputs(model, outputs, batch, data):
    # The trainer's own check of the first batch (models/contract.py): one definition of the contract.
    contract.check_outputs(model, outputs, len(batch["id"]), data.spec)


def check_losses(model, losses):
    contract.check_losses(model, losses)
    for key in ("total", "task"):
        assert torch.isfinite(losses[key]), key


def assert_every_trainable_parameter_has_a_finite_gradient(model):
    # a zero gradient is allowed (a dead ReLU, Self-MM's unimodal weight tanh(0) = 0 in epoch 1); a
    # parameter that the loss does not reach at all is not
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    broken = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not missing and not broken, (missing, broken)


@pytest.mark.parametrize("name,task", MODEL_TASKS)
def test_outputs_losses_and_gradients(name, task, datasets, tiny_bert):
    data = datasets[task]
    model, _ = build(name, data, tiny_bert)
    batch = data.train.batch(torch.arange(8))
    out = model.train()(batch)
    check_outputs(model, out, batch, data)
    losses = model.loss(out, batch)
    check_losses(model, losses)
    losses["total"].backward()
    assert_every_trainable_parameter_has_a_finite_gradient(model)

    model.eval()
    with torch.no_grad():                      # how the trainer evaluates valid and test
        out = model(batch)
        check_outputs(model, out, batch, data)
        check_losses(model, model.loss(out, batch))


def test_the_checks_above_are_the_trainers_and_refuse_what_breaks_the_contract(datasets, tiny_bert):
    # What this file checks every model with is what `fit` checks a model of one's own with, on its first batch.
    from mmsa_atsuko.training import loss_checks, trainer
    assert trainer.check_outputs is contract.check_outputs and loss_checks.check_losses is contract.check_losses
    data = datasets["regression"]
    model, _ = build("tfn", data, tiny_bert)
    batch = data.train.batch(torch.arange(8))
    out = model.train()(batch)
    with pytest.raises(ModelContractError, match=r"^tfn.forward: pred is \(8, 1\), expected \(8,\) for regression"):
        check_outputs(model, {**out, "pred": out["pred"][:, None]}, batch, data)
    losses = model.loss(out, batch)
    with pytest.raises(ModelContractError, match=r"^tfn.loss: returned a dict without 'total'"):
        check_losses(model, {"task": losses["task"]})


@pytest.mark.parametrize("name", [m for m in list_models() if "classification" not in tasks(m)])
def test_a_regression_only_model_refuses_classification_in_one_line(name, datasets, tiny_bert):
    with pytest.raises(UsageError, match="supports regression only") as err:
        build(name, datasets["classification"], tiny_bert)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", list_models())
def test_the_same_seed_gives_the_same_model_step_and_outputs(name, datasets, tiny_bert):
    data = datasets["regression"]
    batch = data.train.batch(torch.arange(8))

    def one_step(seed):
        model, config = build(name, data, tiny_bert, seed=seed)
        optimizer = build_optimizer(model, config)
        torch.manual_seed(1)                   # dropout, masks
        out = model.train()(batch)
        model.loss(out, batch)["total"].backward()
        optimizer.step()
        with torch.no_grad():
            return out["pred"].detach(), model.eval()(batch)["pred"]

    (train_a, eval_a), (train_b, eval_b) = one_step(0), one_step(0)
    assert torch.equal(train_a, train_b) and torch.equal(eval_a, eval_b)
    assert not torch.equal(eval_a, one_step(2)[1])          # and the seed is what decides them


@pytest.mark.parametrize("name,task", MODEL_TASKS)
def test_a_batch_of_one(name, task, datasets, tiny_bert):
    data = datasets[task]
    model, _ = build(name, data, tiny_bert)
    one = data.train.batch(torch.tensor([3]))
    model.train()
    if name in ONE_SAMPLE_TRAINING_REFUSED:
        with pytest.raises(UsageError, match="batch of one sample.*batch_size") as err:
            model(one)
        assert "\n" not in str(err.value)
    else:
        out = model(one)
        check_outputs(model, out, one, data)
        losses = model.loss(out, one)
        check_losses(model, losses)
        losses["total"].backward()
        assert_every_trainable_parameter_has_a_finite_gradient(model)
    model.eval()
    with torch.no_grad():
        alone = model(one)["pred"]
        in_a_batch = model(data.train.batch(torch.arange(8)))["pred"][3:4]
    assert alone.shape == pred_shape(task, 1)
    # evaluation does not mix samples: padding and batch size leave a sample's prediction alone
    assert torch.allclose(alone, in_a_batch, atol=1e-5)


@pytest.mark.parametrize("name", [m for m in list_models() if hasattr(get_model_class(m), "param_groups")])
def test_param_groups_cover_every_trainable_parameter_once(name, datasets, tiny_bert):
    model, config = build(name, datasets["regression"], tiny_bert)
    grouped = [id(p) for group in model.param_groups(config) for p in group["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("name", list_models())
def test_a_reloaded_state_gives_the_same_predictions(name, datasets, tiny_bert):
    # After a training step (BatchNorm statistics, calibrated bands and weights all moved), a fresh
    # model built under another seed, without on_fit_start, loads the state strictly and predicts the same.
    data = datasets["regression"]
    model, config = build(name, data, tiny_bert)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(8))
    model.train().loss(model(batch), batch)["total"].backward()
    optimizer.step()
    rebuilt, _ = build(name, data, tiny_bert, seed=1, fit_start=False)
    test = data.test.batch(torch.arange(16))
    with torch.no_grad():
        assert not torch.equal(model.eval()(test)["pred"], rebuilt.eval()(test)["pred"])
        assert_same_outputs_after_reload(model, rebuilt, test)


@pytest.mark.parametrize("name,overrides,line", [
    ("mult", [("dst_feature_dim_nheads", [9, 2])], "dst_feature_dim_nheads: a width of 9 does not split into 2 "
     "attention heads; make the width a multiple of the heads (e.g. 10) or the heads a divisor of 9"),
    ("emoe", [("dst_feature_dim_nheads", [17, 2])], "dst_feature_dim_nheads: a width of 17 does not split into 2 "
     "attention heads; make the width a multiple of the heads (e.g. 18) or the heads a divisor of 17"),
    ("atsuko", [("d_model", 16), ("nheads", 3)], "d_model and nheads: a width of 16 does not split into 3 "
     "attention heads; make the width a multiple of the heads (e.g. 18) or the heads a divisor of 16"),
])
def test_an_attention_width_the_heads_do_not_divide_is_one_line(name, overrides, line, datasets, tiny_bert):
    """`-c dst_feature_dim_nheads=[9,2]` was torch's ValueError traceback from inside the transformer."""
    data = datasets["regression"]
    config = load_config(name, data.spec.name, preset="small", overrides=[("pretrained", tiny_bert), *overrides])
    with pytest.raises(UsageError) as err:
        build_model(name, config, data.spec)
    assert str(err.value) == line


@pytest.mark.parametrize("name,lacking,line", [
    ("tfn", "has_text_features", "tfn reads pre-extracted `text` features, which <memory> lacks"),
    ("lmf", "has_text_features", "lmf reads pre-extracted `text` features, which <memory> lacks"),
    ("late_fusion", "has_text_features", "late_fusion reads pre-extracted `text` features, which <memory> lacks"),
    ("misa", "has_text_bert", "misa fine-tunes BERT and needs 'text_bert' token ids, which <memory> lacks"),
    ("self_mm", "has_text_bert", "self_mm fine-tunes BERT and needs 'text_bert' token ids, which <memory> lacks"),
])
def test_a_model_refuses_data_without_the_text_it_reads_in_its_own_name(name, lacking, line, datasets, tiny_bert):
    """The checks models/common/checks.py holds once: each model names itself and the file it was given."""
    data = datasets["regression"]
    config = load_config(name, data.spec.name, preset="small", overrides=[("pretrained", tiny_bert)])
    with pytest.raises(UsageError) as err:
        build_model(name, config, replace(data.spec, **{lacking: False}))
    assert str(err.value) == line


@pytest.mark.parametrize("name", ["tfn", "lmf"])
def test_a_temporal_mean_the_config_check_let_through_is_refused_by_the_model(name, datasets, tiny_bert):
    """load_config refuses it first; a config built in code (EasyDict) meets the model's own check."""
    data = datasets["regression"]
    config = load_config(name, data.spec.name, preset="small", overrides=[("pretrained", tiny_bert)])
    config.temporal_mean = "middle"
    with pytest.raises(UsageError) as err:
        build_model(name, config, data.spec)
    assert str(err.value) == "temporal_mean must be padded or valid, got 'middle'"

# --------------------------------------------------------------------------------------
# No config key that silently does nothing (MMSA's global config ignores what it does not read)
# --------------------------------------------------------------------------------------
def reading(config) -> tuple[EasyDict, set]:
    """`config` as a config that notes the name of every key read from it (attribute, item or get)."""
    read = set()

    class Reading(EasyDict):
        def __getattribute__(self, name):
            if name == "get":
                return lambda key, default=None: (read.add(key), dict.get(self, key, default))[1]
            if dict.__contains__(self, name):
                read.add(name)
            return super().__getattribute__(name)

        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

    return Reading(config), read


def keys_read_in_one_epoch(name, preset, data, tiny_bert) -> tuple[set, set]:
    """(the keys of `name`'s config under `preset`, those that building it and one epoch of `fit` read).
    The switches that gate other keys are on: the plateau schedule (scheduler_factor, _patience) and,
    where the model has one, BERT (use_finetune)."""
    switches = [("pretrained", tiny_bert), ("max_epochs", 1), ("scheduler", "plateau")]
    declared = set(load_config(name, data.spec.name, preset=preset, overrides=switches))
    switches += [("use_bert", True)] if "use_bert" in declared else []
    config, read = reading(load_config(name, data.spec.name, preset=preset, overrides=switches))
    model = build_model(name, config, data.spec)
    fit(model, data, config, device=torch.device("cpu"), seed=0, progress=False)
    return declared, read


def models_of(config_name):
    return [m for m in list_models() if model_config_name(m)[0] == config_name]


@pytest.fixture(scope="module")
def reads(datasets, tiny_bert):
    """config name -> (its keys, the keys its models read), over every model that shares the YAML (atsuko's
    variants switch SBN or MCM off) and every preset of it; both tasks' data where the model has both."""
    datasets = {"regression": datasets["regression"],       # fit computes MIntRec's metrics on classification
                "classification": with_text_bert(make_dataset(task="classification", name="mintrec", num_classes=20))}
    found = {}
    for name in list_models():
        yaml_file = model_yaml_path(model_config_name(name)[0])
        presets = list(read_yaml(yaml_file).get("presets") or {})
        keys, read = found.setdefault(model_config_name(name)[0], (set(), set()))
        for preset in presets:
            for task in tasks(name):
                declared, got = keys_read_in_one_epoch(name, preset, datasets[task], tiny_bert)
                keys |= declared
                read |= got
    return found


@pytest.mark.parametrize("config_name", sorted({model_config_name(m)[0] for m in list_models()}))
def test_every_key_of_a_models_yaml_is_read_by_the_model_or_the_trainer(config_name, reads):
    """A key in configs/<model>.yaml's common: block (which its dataset blocks, presets and variants can only
    set, load_config refuses any other) that neither the model nor the trainer reads would do nothing."""
    keys, read = reads[config_name]
    own = keys - set(read_yaml(CONFIG_DIR / "datasets.yaml")["defaults"])
    assert own and not own - read, f"configs/{config_name}.yaml declares keys nothing reads: {sorted(own - read)}"


def test_every_default_of_datasets_yaml_is_read(reads):
    """The trainer keys of configs/datasets.yaml `defaults` (a dataset's `config:` may set only these) are each
    read by the trainer or a model."""
    defaults = set(read_yaml(CONFIG_DIR / "datasets.yaml")["defaults"])
    read = set().union(*(r for _, r in reads.values()))
    assert defaults and not defaults - read, f"datasets.yaml defaults nothing reads: {sorted(defaults - read)}"
