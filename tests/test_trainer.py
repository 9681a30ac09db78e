"""The generic trainer: selection on valid, early stopping, accumulation, clipping, determinism."""
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from easydict import EasyDict
from torch import nn

from conftest import make_dataset
from mmsa_atsuko.errors import ModelContractError
from mmsa_atsuko.training import loss_checks
from mmsa_atsuko.training import trainer as trainer_mod
from mmsa_atsuko.training.seed import set_seed
from mmsa_atsuko.training.trainer import evaluate, fit

BASE = dict(batch_size=16, learning_rate=1e-2, weight_decay=0.0, max_epochs=30, early_stop=3, key_eval="Loss",
            grad_accum=1, grad_clip=None, grad_clip_mode="value", scheduler="none", scheduler_patience=2,
            scheduler_factor=0.5, eval_batch_size=None, pretrained=None, valid_loss="exact", grad_accum_rule="sum")


def cfg(**kw):
    return EasyDict({**BASE, **kw})


class LinearProbe(nn.Module):
    """Regression from the time-mean of audio and vision, with dropout so the RNG matters."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(9, 1)
        self.drop = nn.Dropout(0.2)

    def forward(self, batch):
        a = batch["audio"].sum(1) / batch["audio_lengths"][:, None]
        v = batch["vision"].sum(1) / batch["vision_lengths"][:, None]
        return {"pred": self.head(self.drop(torch.cat([a, v], 1))).squeeze(-1)}

    def loss(self, outputs, batch):
        task = F.l1_loss(outputs["pred"], batch["label"])
        return {"total": task, "task": task}


class Frozen(LinearProbe):
    """Never changes (lr is irrelevant: no trainable parameters move), so valid loss is flat."""

    def __init__(self):
        super().__init__()
        self.head.weight.requires_grad_(False)
        self.head.bias.requires_grad_(True)

    def param_groups(self, config):
        return [{"params": [self.head.bias], "lr": 0.0}]


def test_early_stop_after_patience_when_valid_never_improves():
    data = make_dataset()
    result = fit(Frozen(), data, cfg(early_stop=3), device=torch.device("cpu"), seed=1)
    # epoch 1 sets the best; epochs 2..4 do not improve by 1e-6; stop when epoch - best >= 3
    assert result.best_epoch == 1
    assert result.epochs_run == 4
    assert len(result.history) == 4


def test_max_epochs_caps_training():
    result = fit(LinearProbe(), make_dataset(), cfg(max_epochs=2, early_stop=100), device=torch.device("cpu"), seed=1)
    assert result.epochs_run == 2


def test_best_epoch_is_the_valid_minimum_and_test_uses_its_weights(tmp_path):
    data = make_dataset()
    model = LinearProbe()
    result = fit(model, data, cfg(max_epochs=8, early_stop=100), device=torch.device("cpu"), seed=3,
                 run_dir=tmp_path)
    losses = [h["valid"]["Loss"] for h in result.history]
    assert result.best_epoch == 1 + min(range(len(losses)), key=lambda i: (losses[i], i))
    # the checkpoint on disk is the best epoch's and reproduces the test predictions
    fresh = LinearProbe()
    fresh.load_state_dict(torch.load(tmp_path / "best.pt"))
    again = evaluate(fresh, data.test, "mosi", 16, collect=True)
    assert torch.equal(torch.from_numpy(again.pred), torch.from_numpy(result.test.pred))
    assert again.metrics["Loss"] == pytest.approx(result.test.metrics["Loss"])
    assert result.valid == result.history[result.best_epoch - 1]["valid"]


def test_valid_loss_is_sample_weighted_mean_of_task_loss():
    data = make_dataset(n=(48, 17, 16))           # 17 = one batch of 16 and one of 1
    model = LinearProbe().eval()
    metrics = evaluate(model, data.valid, "mosi", 16).metrics
    with torch.no_grad():
        full = model(data.valid.batch(torch.arange(17)))["pred"]
    expected = (full - data.valid.tensors["label"]).abs().mean().item()
    assert metrics["Loss"] == pytest.approx(expected, rel=1e-6)
    assert metrics["MAE"] == pytest.approx(expected, rel=1e-6)


class Scripted(LinearProbe):
    """Valid predictions set by hand per epoch: `errors[epoch]` is each valid sample's |pred - label| after that
    epoch's training (set by on_epoch_end, which runs before the validation). Training changes nothing it shows."""

    def __init__(self, errors: dict):
        super().__init__()
        self.errors = errors
        self.epoch = 0

    def on_epoch_end(self, epoch):
        self.epoch = epoch

    def forward(self, batch):
        zero = 0 * self.head.bias                                       # a gradient for the optimizer, no change
        if self.training:
            return {"pred": batch["label"] + zero}
        return {"pred": batch["label"] + torch.tensor(self.errors[self.epoch])[batch["index"]] + zero}


def _fit_scripted(errors: dict, valid_loss: str, n_valid: int):
    data = make_dataset(n=(48, n_valid, n_valid))            # the test split sees the last epoch's errors
    return fit(Scripted(errors), data, cfg(batch_size=4, max_epochs=len(errors), early_stop=100,
                                           valid_loss=valid_loss), device=torch.device("cpu"), seed=0)


def test_mmsa_valid_loss_weighs_a_last_partial_batch_as_a_full_one_and_picks_another_epoch():
    """9 valid samples in batches of 4, 4 and 1. Worked by hand (every error a dyadic or near one):
    epoch 1: all 1.0                -> exact 1.0,           batch means 1.0, 1.0, 1.0 -> mmsa 1.0
    epoch 2: 0.5 x 8, then 2.5      -> exact 6.5/9 = 0.7222, batch means 0.5, 0.5, 2.5 -> mmsa 1.1667
    epoch 3: 0.9 x 8, then 0.6      -> exact 7.8/9 = 0.8667, batch means 0.9, 0.9, 0.6 -> mmsa 0.8
    The exact per-sample mean selects epoch 2; MMSA's mean of batch means epoch 3."""
    errors = {1: [1.0] * 9, 2: [0.5] * 8 + [2.5], 3: [0.9] * 8 + [0.6]}
    exact, mmsa = _fit_scripted(errors, "exact", 9), _fit_scripted(errors, "mmsa", 9)
    assert [h["valid"]["Loss"] for h in exact.history] == pytest.approx([1.0, 6.5 / 9, 7.8 / 9], abs=1e-6)
    assert [h["valid"]["Loss"] for h in mmsa.history] == [1.0, 1.1667, 0.8]      # rounded to 4 places
    assert exact.best_epoch == 2 and mmsa.best_epoch == 3
    # the metrics themselves stay per-sample: only the Loss that selects is made otherwise
    assert exact.valid["MAE"] == pytest.approx(6.5 / 9, abs=1e-6) and mmsa.valid["MAE"] == pytest.approx(7.8 / 9, abs=1e-6)
    # test's Loss is made by the same rule (MMSA's one do_test scores both): epoch 3's errors, the last Scripted shows
    assert mmsa.test.metrics["Loss"] == 0.8 and exact.test.metrics["Loss"] == pytest.approx(7.8 / 9, abs=1e-6)


def test_mmsa_valid_loss_rounds_to_4_places_so_a_gain_below_that_is_a_tie_the_margin_keeps():
    """One batch of 4 (no partial batch): epoch 2's loss 0.81231 beats epoch 1's 0.81234 by 3e-5 > 1e-6, so the exact
    rule moves to epoch 2; rounded, both are 0.8123, and MMSA's `cur <= best - 1e-6` keeps epoch 1."""
    errors = {1: [0.81234] * 4, 2: [0.81231] * 4}
    exact, mmsa = _fit_scripted(errors, "exact", 4), _fit_scripted(errors, "mmsa", 4)
    assert [h["valid"]["Loss"] for h in mmsa.history] == [0.8123, 0.8123]
    assert exact.best_epoch == 2 and mmsa.best_epoch == 1


def test_the_improvement_margin_and_the_stop_count_are_mmsas():
    """TFN.py:74 and :89 of thuiar/MMSA: a new best beats the old by 1e-6 at least, either way round."""
    from mmsa_atsuko.training.selection import improved
    assert improved(0.5, None, True) and not improved(math.nan, None, True)
    assert improved(0.8123 - 1e-6, 0.8123, True) and not improved(0.8123 - 5e-7, 0.8123, True)
    assert not improved(0.8123, 0.8123, True) and not improved(0.8123, 0.8123, False)
    assert improved(0.7 + 2e-6, 0.7, False) and not improved(0.7 + 5e-7, 0.7, False)
    # epochs 1..5 with the best at epoch 2 and early_stop 3: MMSA stops after epoch 5 (5 - 2 >= 3)
    errors = {1: [1.0] * 4, 2: [0.5] * 4, 3: [0.6] * 4, 4: [0.7] * 4, 5: [0.8] * 4, 6: [0.1] * 4}
    result = fit(Scripted(errors), make_dataset(n=(48, 4, 4)), cfg(batch_size=4, max_epochs=6, early_stop=3,
                                                                     valid_loss="mmsa"),
                 device=torch.device("cpu"), seed=0)
    assert (result.best_epoch, result.epochs_run) == (2, 5)


def test_valid_loss_must_be_a_rule_the_trainer_knows():
    from mmsa_atsuko.errors import UsageError
    with pytest.raises(UsageError, match="^valid_loss must be one of exact, mmsa, got 'batch'$"):
        fit(LinearProbe(), make_dataset(), cfg(valid_loss="batch"), device=torch.device("cpu"), seed=0)


def test_the_valid_loss_rules_datasets_yaml_allows_are_those_selection_computes():
    from mmsa_atsuko.config import read_yaml
    from mmsa_atsuko.registry import CONFIG_DIR
    from mmsa_atsuko.training.selection import VALID_LOSS_RULES
    assert tuple(read_yaml(CONFIG_DIR / "datasets.yaml")["checks"]["valid_loss"]) == VALID_LOSS_RULES


# One value each trainer key's check in configs/datasets.yaml refuses.
REFUSED = {"batch_size": 0, "learning_rate": 0.0, "weight_decay": -1.0, "max_epochs": 0, "early_stop": 0,
           "valid_loss": "batch", "grad_accum": 0, "grad_accum_rule": "mean", "grad_clip": -1.0,
           "grad_clip_mode": "sideways",
           "scheduler": "cosine", "scheduler_patience": -1, "scheduler_factor": 1.5, "eval_batch_size": 0}


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_the_trainer_refuses_what_the_config_loader_refuses_in_the_same_words(key):
    """check_trainer_config holds a config that never went through load_config (fit called directly, a
    model.json) to datasets.yaml's checks: one rule per key, so the two cannot drift apart."""
    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.training.trainer_config import check_trainer_config
    with pytest.raises(UsageError) as loaded:
        load_config("tfn", "mosi", overrides=[(key, REFUSED[key], "a layer")])
    assert str(loaded.value).startswith(f"a layer: {key} must be ")
    with pytest.raises(UsageError) as checked:
        check_trainer_config(cfg(**{key: REFUSED[key]}), "mosi")
    assert "a layer: " + str(checked.value) == str(loaded.value)
    with pytest.raises(UsageError) as blamed:               # the layer that set it, when the caller knows it
        check_trainer_config(cfg(**{key: REFUSED[key]}), "mosi", origins={key: "a layer"})
    assert str(blamed.value) == str(loaded.value)


def test_every_checked_trainer_key_has_a_refused_value_above():
    from mmsa_atsuko.config import trainer_checks
    _, checks = trainer_checks()
    assert {key for key, check in checks.items() if check.spec != "any"} == set(REFUSED)


def test_the_trainer_words_its_refusals_as_the_config_checks_do():
    from mmsa_atsuko.errors import UsageError
    from mmsa_atsuko.training.trainer_config import check_trainer_config
    # scheduler_factor is checked whatever the scheduler, as load_config checks it
    with pytest.raises(UsageError, match=r"^scheduler_factor must be between 0 and 1, got 1.5$"):
        check_trainer_config(cfg(scheduler="none", scheduler_factor=1.5), "mosi")
    with pytest.raises(UsageError, match=r"^grad_clip must be null or positive, got -1.0$"):
        check_trainer_config(cfg(grad_clip=-1.0), "mosi")
    with pytest.raises(UsageError, match=r"^model.json: grad_clip_mode must be one of value, norm, got 'x'$"):
        check_trainer_config(cfg(grad_clip_mode="x"), "mosi", origins={"grad_clip_mode": "model.json"})


@pytest.mark.parametrize("accum, n_train, expected_steps", [(1, 48, 3), (2, 48, 2), (4, 40, 1), (2, 40, 2)])
def test_accumulation_steps_the_last_partial_group(monkeypatch, accum, n_train, expected_steps):
    # batches per epoch = ceil(n/16): 48 -> 3, 40 -> 3. Steps = ceil(batches / accum).
    steps = []
    original = torch.optim.Adam.step

    def counting_step(self, *a, **k):
        steps.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    fit(LinearProbe(), make_dataset(n=(n_train, 16, 16)), cfg(max_epochs=1, grad_accum=accum),
        device=torch.device("cpu"), seed=0)
    assert len(steps) == expected_steps


def _mmsa_loop(model, data, config, seed: int, epochs: int) -> None:
    """thuiar/MMSA's MulT and MISA training loop (trains/singleTask/MULT.py `do_train`), written out: gradients
    cleared as each group of `update_epochs` batches starts, the running sum clipped by value after every backward,
    a step when the group is full; the counter starts afresh each epoch, so a last partial group never steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    order = torch.Generator().manual_seed(seed)        # the trainer's batch order, drawn the same way
    model.train()
    for _ in range(epochs):
        left = config.grad_accum
        for batch in data.train.batches(config.batch_size, shuffle=True, generator=order):
            if left == config.grad_accum:
                optimizer.zero_grad()
            left -= 1
            model.loss(model(batch), batch)["total"].backward()
            torch.nn.utils.clip_grad_value_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
            if not left:
                optimizer.step()
                left = config.grad_accum


@pytest.mark.parametrize("epochs", [1, 2])
def test_grad_accum_rule_mmsa_trains_as_mmsas_loop_and_sum_does_not(monkeypatch, epochs):
    """80 samples in batches of 16 are 5 batches: with grad_accum 2, MMSA steps twice an epoch and drops the fifth
    batch's gradient; a clip of 0.02 binds after single batches. Two epochs: the dropped gradient must not leak into
    the next epoch's first step. The weights after the last epoch are compared (each epoch counts as the best)."""
    monkeypatch.setattr(trainer_mod, "improved", lambda *a: True)
    data = make_dataset(n=(80, 16, 16))
    config = cfg(max_epochs=epochs, early_stop=100, grad_accum=2, grad_clip=0.02, grad_clip_mode="value")

    def trained(train):
        torch.manual_seed(11)
        model = LinearProbe()
        model.drop.p = 0.0             # no dropout: the two loops need not draw random numbers alike
        train(model)
        return [p.detach().clone() for p in model.parameters()]

    reference = trained(lambda m: _mmsa_loop(m, data, config, seed=3, epochs=epochs))
    mmsa = trained(lambda m: fit(m, data, cfg(**{**config, "grad_accum_rule": "mmsa"}), device=torch.device("cpu"),
                                 seed=3))
    summed = trained(lambda m: fit(m, data, config, device=torch.device("cpu"), seed=3))
    assert all(torch.equal(a, b) for a, b in zip(mmsa, reference))
    assert not all(torch.equal(a, b) for a, b in zip(summed, reference))


def test_grad_accum_rule_mmsa_that_would_never_step_is_refused_before_training():
    from mmsa_atsuko.errors import UsageError
    with pytest.raises(UsageError, match=r"^LinearProbe on mosi: grad_accum_rule mmsa drops each epoch's last partial "
                                         r"group of grad_accum batches, and the train split's 48 samples make "
                                         r"3 batch\(es\) of 16, fewer than grad_accum 4: no parameter would ever "
                                         r"change; set its grad_accum to 3 or less, or grad_accum_rule to sum$"):
        fit(LinearProbe(), make_dataset(n=(48, 16, 16)), cfg(grad_accum=4, grad_accum_rule="mmsa"),
            device=torch.device("cpu"), seed=0)
    fit(LinearProbe(), make_dataset(n=(48, 16, 16)), cfg(max_epochs=1, grad_accum=3, grad_accum_rule="mmsa"),
        device=torch.device("cpu"), seed=0)


@pytest.mark.parametrize("mode, fn", [("value", "clip_grad_value_"), ("norm", "clip_grad_norm_")])
def test_gradient_clipping_mode(monkeypatch, mode, fn):
    calls = []
    real = getattr(torch.nn.utils, fn)

    def spy(params, limit, *a, **k):
        calls.append(limit)
        return real(params, limit, *a, **k)

    monkeypatch.setattr(trainer_mod.torch.nn.utils, fn, spy)
    fit(LinearProbe(), make_dataset(), cfg(max_epochs=1, grad_clip=0.25, grad_clip_mode=mode),
        device=torch.device("cpu"), seed=0)
    assert calls == [0.25] * 3


@pytest.mark.parametrize("mode", ["value", "norm"])
def test_clip_and_step_steps_on_the_clipped_gradients_then_clears_them(mode):
    """The trainer's step itself (a test before called torch's clip_grad_value_ and so tested torch): the optimizer
    steps once, on the raw gradients clipped as grad_clip_mode says, worked out here from the raw gradients
    (value: each clamped to ±0.1; norm: all scaled by 0.1 / (their total L2 norm + 1e-6), torch's documented rule)."""
    model = LinearProbe()
    batch = make_dataset().train.batch(torch.arange(16))
    (model.loss(model(batch), batch)["total"] * 1000).backward()
    raw = [p.grad.clone() for p in model.parameters()]
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in raw))
    assert max(float(g.abs().max()) for g in raw) > 0.1 and norm > 0.1      # clipping has something to clip
    optimizer = trainer_mod.build_optimizer(model, cfg())
    seen = []
    optimizer.step = lambda: seen.append([p.grad.clone() for p in model.parameters()])
    trainer_mod.clip_and_step(model, optimizer, cfg(grad_clip=0.1, grad_clip_mode=mode))
    expected = [g.clamp(-0.1, 0.1) if mode == "value" else g * (0.1 / (norm + 1e-6)) for g in raw]
    assert len(seen) == 1 and all(torch.allclose(g, e, rtol=1e-5, atol=0) for g, e in zip(seen[0], expected))
    assert all(p.grad is None for p in model.parameters())      # cleared for the next accumulation group


def test_deterministic_for_a_fixed_seed_on_cpu():
    def once(seed):
        set_seed(seed)
        model = LinearProbe()
        return fit(model, make_dataset(), cfg(max_epochs=3, early_stop=100), device=torch.device("cpu"), seed=seed)

    a, b, c = once(7), once(7), once(8)
    assert [h["train"] for h in a.history] == [h["train"] for h in b.history]
    assert (a.test.pred == b.test.pred).all()
    assert not (a.test.pred == c.test.pred).all()


def _fill_ops_of_fresh_tensors() -> int:
    with torch.profiler.profile() as prof:
        torch.empty(1000)
        torch.randn(64, 64) @ torch.randn(64, 64)
    return sum(e.count for e in prof.key_averages() if e.key == "aten::fill_")


def test_set_seed_keeps_deterministic_kernels_without_filling_fresh_memory():
    set_seed(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert _fill_ops_of_fresh_tensors() == 0
    # PyTorch's own default in deterministic mode fills them: the check above can fail.
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        assert _fill_ops_of_fresh_tensors() >= 2          # the empty and the matmul's output
    finally:
        set_seed(0)


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_fit_flushes_subnormal_floats_while_it_trains_and_gives_the_mode_back(caller_flushes):
    """LSTM gradients decaying into subnormals made backwards 4-5x slower (bench/README.md), so fit flushes
    them; the mode is the thread's, NumPy's too, so fit leaves it as the caller had it."""
    subnormal = np.array([1e-39], dtype=np.float32)          # float32's smallest normal is 1.18e-38
    seen = []
    torch.set_flush_denormal(caller_flushes)
    try:
        assert (subnormal * np.float32(1.0))[0] == (0.0 if caller_flushes else np.float32(1e-39))
        fit(LinearProbe(), make_dataset(), cfg(max_epochs=2), device=torch.device("cpu"), seed=1,
            on_epoch=lambda entry: seen.append(float((subnormal * np.float32(1.0))[0])))
        assert seen == [0.0, 0.0]
        assert (subnormal * np.float32(1.0))[0] == (0.0 if caller_flushes else np.float32(1e-39))
    finally:
        torch.set_flush_denormal(False)


def test_key_eval_must_be_a_metric_of_the_dataset():
    from mmsa_atsuko.errors import UsageError
    with pytest.raises(UsageError, match="key_eval must be a metric of .*, got 'Acc_9'"):
        fit(LinearProbe(), make_dataset(), cfg(key_eval="Acc_9"), device=torch.device("cpu"), seed=0)


def test_a_maximised_key_eval_selects_its_highest_valid_epoch():
    """Model selection by a metric where higher is better. (Named '..._and_plateau_scheduler' before, with a plateau
    scheduler that never acted on these 6 epochs and nothing asserted of it: the scheduler's test is the next one.)"""
    result = fit(LinearProbe(), make_dataset(), cfg(max_epochs=6, early_stop=100, key_eval="Non0_acc_2"),
                 device=torch.device("cpu"), seed=0)
    accs = [h["valid"]["Non0_acc_2"] for h in result.history]
    assert result.best_epoch == 1 + accs.index(max(accs))
    assert all(not math.isnan(a) for a in accs)
    assert accs.index(max(accs)) != len(accs) - 1       # the best is not simply the last epoch


def test_plateau_scheduler_steps_on_the_valid_loss_whatever_selects_the_model():
    """MIntRec selects by F1 but, like MMSA, EMOE and the Atsuko spec, halves the LR on the
    valid loss. The expected LRs are replayed from the history by ReduceLROnPlateau's rule."""
    result = fit(LinearProbe(), make_dataset(), cfg(max_epochs=10, early_stop=100, key_eval="Non0_acc_2",
                                                    scheduler="plateau", scheduler_patience=0),
                 device=torch.device("cpu"), seed=0)

    def replay(values, better):
        lr, best, lrs = BASE["learning_rate"], None, []
        for v in values:
            if best is None or better(v, best):
                best = v
            else:
                lr *= 0.5
            lrs.append(lr)
        return lrs

    losses = [h["valid"]["Loss"] for h in result.history]
    accs = [h["valid"]["Non0_acc_2"] for h in result.history]
    on_loss = replay(losses, lambda v, best: v < best * (1 - 1e-4))
    on_acc = replay(accs, lambda v, best: v > best * (1 + 1e-4))
    assert on_loss != on_acc                           # the two rules differ on this run
    # history's lr is the rate each epoch trained with: the first epoch's is the initial one.
    assert [h["lr"][0] for h in result.history] == pytest.approx([BASE["learning_rate"], *on_loss[:-1]])


def test_history_is_on_disk_after_every_epoch_and_is_strict_json(tmp_path):
    """A run that dies keeps its curves; an undefined metric (NaN) is null, as in runs.jsonl."""
    import json

    class DiesInEpochTwo(LinearProbe):
        def on_epoch_end(self, epoch):
            if epoch == 2:
                raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        fit(DiesInEpochTwo(), make_dataset(), cfg(max_epochs=5), device=torch.device("cpu"), seed=0,
            run_dir=tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and (tmp_path / "best.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "history.json", "last.pt"]  # no temp files

    class Constant(LinearProbe):                       # constant predictions: Corr is undefined
        def forward(self, batch):
            return {"pred": self.head.bias.expand(len(batch["id"]))}

    fit(Constant(), make_dataset(), cfg(max_epochs=1), device=torch.device("cpu"), seed=0, run_dir=tmp_path)
    text = (tmp_path / "history.json").read_text()
    (epoch,) = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in history.json"))
    assert epoch["valid"]["Corr"] is None


class Stateful(LinearProbe):
    """Training state everywhere a model may keep it: a buffer left out of state_dict, a Python
    attribute its hooks set, and numpy's and Python's random streams besides torch's dropout."""

    def __init__(self, die_at=None):
        super().__init__()
        self.register_buffer("steps", torch.zeros(()), persistent=False)
        self.epoch, self.die_at = 0, die_at

    def on_fit_start(self, train_split):
        self.steps.zero_()
        self.epoch = 1

    def forward(self, batch):
        outputs = super().forward(batch)
        if self.training:
            outputs["pred"] = outputs["pred"] + 0.01 * np.random.randn() + 0.01 * random.random()
        return outputs

    def loss(self, outputs, batch):
        task = F.l1_loss(outputs["pred"], batch["label"])
        return {"total": task * (1 + 0.1 * self.epoch + 0.01 * self.steps), "task": task}

    def on_train_batch_end(self, batch, outputs):
        self.steps += 1

    def on_epoch_end(self, epoch):
        if epoch == self.die_at:
            raise KeyboardInterrupt       # killed in epoch `die_at`, after it trained, before its valid pass
        self.epoch = epoch + 1


# Stops early at epoch 12 (best 9), the plateau scheduler having cut the LR from epoch 6 on.
RESUME_CFG = dict(max_epochs=30, early_stop=3, grad_accum=2, scheduler="plateau", scheduler_patience=0,
                  learning_rate=0.5)


def _fit_stateful(run_dir, die_at=None, resume=False):
    run_dir.mkdir(exist_ok=True)
    set_seed(5)                 # as api.one_run.train_one: seeded, then built, then fit
    return fit(Stateful(die_at), make_dataset(), cfg(**RESUME_CFG), device=torch.device("cpu"), seed=5,
               run_dir=run_dir, resume=resume)


@pytest.mark.parametrize("die_at", [7, 11])     # 11: a fresh scheduler would not cut the LR after it
def test_a_resumed_fit_ends_exactly_where_the_uninterrupted_one_does(tmp_path, die_at):
    whole = _fit_stateful(tmp_path / "whole")
    assert (whole.best_epoch, whole.epochs_run) == (9, 12)
    assert whole.history[6]["lr"] != whole.history[0]["lr"]     # the scheduler's state matters after epoch 6
    assert not (tmp_path / "whole" / "last.pt").exists()        # deleted when the run finished
    with pytest.raises(KeyboardInterrupt):
        _fit_stateful(tmp_path / "cut", die_at=die_at)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert cut["epoch"] == die_at - 1 and len(cut["history"]) == die_at - 1
    resumed = _fit_stateful(tmp_path / "cut", resume=True)
    # Exact, not approximate: repr round-trips every float (and shows NaN as NaN).
    assert repr(resumed.history) == repr(whole.history)
    assert (resumed.best_epoch, resumed.epochs_run) == (whole.best_epoch, whole.epochs_run)
    assert repr(resumed.valid) == repr(whole.valid) and repr(resumed.test.metrics) == repr(whole.test.metrics)
    assert (resumed.test.pred == whole.test.pred).all()
    assert not (tmp_path / "cut" / "last.pt").exists()
    best = [torch.load(tmp_path / d / "best.pt", weights_only=True) for d in ("whole", "cut")]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])


def test_a_fit_killed_while_testing_resumes_to_the_test_alone(tmp_path, monkeypatch):
    whole = _fit_stateful(tmp_path / "whole")
    real_evaluate = trainer_mod.evaluate

    def dies_in_test(*args, collect=False, **kwargs):
        if collect:
            raise KeyboardInterrupt
        return real_evaluate(*args, collect=collect, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", dies_in_test)
    with pytest.raises(KeyboardInterrupt):
        _fit_stateful(tmp_path / "cut")
    monkeypatch.setattr(trainer_mod, "evaluate", real_evaluate)
    trained = []
    resumed = fit(Stateful(), make_dataset(), cfg(**RESUME_CFG), device=torch.device("cpu"), seed=5,
                  run_dir=tmp_path / "cut", resume=True, on_epoch=trained.append)
    assert trained == []                                     # no epoch trains again, not even one more
    assert (resumed.best_epoch, resumed.epochs_run) == (whole.best_epoch, whole.epochs_run)
    assert repr(resumed.test.metrics) == repr(whole.test.metrics)


# ------------------------------------------------------------------------------------------
# The model contract, checked on the first training batch; a loss non-finite before any update
# ------------------------------------------------------------------------------------------
SEE = " (docs/design.md, Contracts: Model)"


class Bent(LinearProbe):
    """LinearProbe whose forward outputs and loss terms go through `forward` and `loss` first."""

    def __init__(self, forward=lambda outputs: outputs, loss=lambda losses: losses):
        super().__init__()
        self.bend_forward, self.bend_loss = forward, loss

    def forward(self, batch):
        return self.bend_forward(super().forward(batch))

    def loss(self, outputs, batch):
        return self.bend_loss(super().loss(outputs, batch))


@pytest.mark.parametrize("bent,message", [
    (Bent(forward=lambda o: {"pred": o["pred"][:, None]}), "Bent.forward: pred is (16, 1), expected (16,) for regression"),
    (Bent(forward=lambda o: {"prediction": o["pred"]}),
     "Bent.forward: returned a dict without 'pred' (keys: prediction); put the predictions under 'pred'"),
    (Bent(forward=lambda o: o["pred"]), "Bent.forward: returned a Tensor of shape (16,), expected a dict with 'pred'"),
    (Bent(forward=lambda o: {"pred": o["pred"].tolist()}),
     "Bent.forward: pred is a list, expected a tensor of shape (16,) for regression"),
    (Bent(loss=lambda l: {"loss": l["total"]}),
     "Bent.loss: returned a dict without 'total' and 'task' (keys: loss), expected a dict of scalar terms with "
     "'total' (what is optimised) and 'task' (the prediction loss alone)"),
    (Bent(loss=lambda l: {"total": l["total"]}), "Bent.loss: returned a dict without 'task' (keys: total)"),
    (Bent(loss=lambda l: l["total"]), "Bent.loss: returned a Tensor of shape (), expected a dict of scalar terms"),
    (Bent(loss=lambda l: {**l, "total": l["total"] * torch.ones(3)}),
     "Bent.loss: 'total' is a Tensor of shape (3,), expected a scalar tensor (reduce it, e.g. with .mean())"),
    (Bent(loss=lambda l: {**l, "task": 0.5}), "Bent.loss: 'task' is a float, expected a scalar tensor"),
    (Bent(loss=lambda l: {**l, "total": l["total"].detach()}),
     "Bent.loss: 'total' carries no gradient (it was detached, or computed under no_grad or from .item())"),
], ids=["pred-B-1", "prediction-key", "bare-pred", "list-pred", "loss-key", "no-task", "bare-loss", "vector-total",
        "float-task", "detached-total"])
def test_a_model_that_breaks_the_contract_stops_on_the_first_batch_in_one_line(bent, message, monkeypatch):
    steps = []
    monkeypatch.setattr(torch.optim.Adam, "step", lambda *a, **k: steps.append(1))
    with pytest.raises(ModelContractError) as err:
        fit(bent, make_dataset(), cfg(max_epochs=1), device=torch.device("cpu"), seed=0)
    assert str(err.value).startswith(message) and str(err.value).endswith(SEE), str(err.value)
    assert "\n" not in str(err.value) and steps == []


class Logits(nn.Module):
    """Classification into `classes` logits from the time-mean of audio and vision."""

    def __init__(self, classes):
        super().__init__()
        self.head = nn.Linear(9, classes)

    def forward(self, batch):
        return {"pred": self.head(torch.cat([batch["audio"].mean(1), batch["vision"].mean(1)], 1))}

    def loss(self, outputs, batch):
        task = F.cross_entropy(outputs["pred"], batch["label"].long())
        return {"total": task, "task": task}


def test_classification_logits_must_have_one_column_per_class():
    data = make_dataset(task="classification", name="mintrec", num_classes=4)
    with pytest.raises(ModelContractError, match=r"^Logits.forward: pred is \(16, 3\), expected \(16, 4\) for "
                                                 r"classification with 4 classes"):
        fit(Logits(3), data, cfg(max_epochs=1), device=torch.device("cpu"), seed=0)
    assert fit(Logits(4), data, cfg(max_epochs=1, key_eval="Loss"), device=torch.device("cpu"), seed=0).epochs_run == 1


def test_the_contract_is_checked_once_per_fit_on_its_first_batch(monkeypatch):
    seen = []
    monkeypatch.setattr(trainer_mod, "check_outputs", lambda model, outputs, n, spec: seen.append(("forward", n)))
    monkeypatch.setattr(loss_checks, "check_losses", lambda model, losses: seen.append(("loss", len(losses))))
    result = fit(LinearProbe(), make_dataset(), cfg(max_epochs=3, early_stop=100), device=torch.device("cpu"), seed=0)
    assert result.epochs_run == 3                   # 3 epochs of 3 batches: 9 steps, one check
    assert seen == [("forward", 16), ("loss", 2)]


class NanAt(LinearProbe):
    """LinearProbe with a loss term `aux` (0 on its own), NaN from training step `step` on (counted over the fit)."""

    def __init__(self, step):
        super().__init__()
        self.nan_step, self.calls = step, 0

    def loss(self, outputs, batch):
        task = super().loss(outputs, batch)["task"]
        self.calls += self.training
        aux = outputs["pred"].sum() * (float("nan") if self.training and self.calls >= self.nan_step else 0.0)
        return {"total": task + aux, "task": task, "aux": aux}


@pytest.mark.parametrize("step,accum,before_any_update", [(1, 1, True), (1, 3, True), (2, 1, False), (2, 2, True),
                                                          (3, 2, False)])
def test_a_loss_non_finite_before_the_first_update_blames_the_loss_not_the_learning_rate(step, accum,
                                                                                        before_any_update):
    from mmsa_atsuko.errors import TrainingError
    model = NanAt(step)
    with pytest.raises(TrainingError) as err:
        fit(model, make_dataset(), cfg(max_epochs=1, grad_accum=accum), device=torch.device("cpu"), seed=0)
    message = str(err.value)
    assert message.startswith(f"non-finite training loss at epoch 1, step {step} of 3")
    if step == 1:          # stopped on the first batch, its own terms named exactly
        assert model.calls == 1
        assert message == ("non-finite training loss at epoch 1, step 1 of 3, before the first parameter update: "
                           "NanAt.loss term 'aux' is non-finite on the initial parameters (total=nan aux=nan); "
                           "check the model's forward and loss, or the features: learning_rate and grad_clip "
                           "cannot have caused it")
    elif before_any_update:
        assert (f"step {step} of 3, before the first parameter update (grad_accum {accum}): NanAt.loss is "
                "non-finite on the initial parameters (epoch mean ") in message
        assert message.endswith("learning_rate and grad_clip cannot have caused it")
    else:
        assert "lower learning_rate, set grad_clip" in message and "initial parameters" not in message
