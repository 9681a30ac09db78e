"""The trainer's checks of its config keys, without torch: a sweep checks every setting with them before it
plans (and before torch is imported), `api` before a run makes its folder, `fit` again for callers that go
straight there, `model_card` for a run folder from elsewhere. `resolve_config`, a run's checked config (the config
loader's layers, then these checks), lives here for the same reason: a sweep's and a tune's configs and search space
are checked before their planning line (`api` re-exports it)."""
from __future__ import annotations

from ..cache import synthetic_bert_name
from ..config import load_config, trainer_checks
from ..config.checks import check_meaning
from ..errors import UsageError
from ..metrics.names import metric_keys


def check_trainer_config(config, dataset: str, origins: dict | None = None) -> None:
    """Raise UsageError (one line) for a trainer key whose value cannot train: checked when a run
    is planned, before anything is written, and again by `fit` for callers that go straight there.
    Each key is held to its check in configs/datasets.yaml (`config.trainer_checks`, the checks the
    config loader applied already as each layer set it, so they hold for a config that never went
    through it); key_eval, which depends on the dataset, is checked here only. `origins`, as
    `load_config(origins=...)` fills it, names the layer that set a refused value."""
    origins = origins or {}
    declared, checks = trainer_checks()
    for key, check in checks.items():
        check_meaning(key, config[key], declared[key], check, origins.get(key, ""))
    allowed = ("Loss", *metric_keys(dataset))
    if config.key_eval not in allowed:
        where = f"{origins['key_eval']}: " if "key_eval" in origins else ""
        raise UsageError(f"{where}key_eval must be a metric of {dataset} ({', '.join(allowed)}), "
                         f"got {config.key_eval!r}")


def check_accumulation(n_train: int, config, who: str) -> None:
    """UsageError when `grad_accum_rule: mmsa`, which drops each epoch's last partial group of batches as MMSA's
    loops do, would never update a parameter: the train split makes fewer batches than `grad_accum`. `who`: the
    model on the dataset, as the line names them (a sweep plans many)."""
    n_batches = -(-n_train // config.batch_size)
    if config.grad_accum_rule == "mmsa" and n_batches < config.grad_accum:
        raise UsageError(f"{who}: grad_accum_rule mmsa drops each epoch's last partial group of grad_accum batches, "
                         f"and the train split's {n_train} samples make {n_batches} batch(es) of {config.batch_size}, "
                         f"fewer than grad_accum {config.grad_accum}: no parameter would ever change; set its "
                         f"grad_accum to {n_batches} or less, or grad_accum_rule to sum")


def resolve_config(model, dataset, *, preset=None, overrides=(), max_epochs=None, synthetic_bert=None):
    """The checked config of one (model, dataset) run: `load_config` with `max_epochs` and, for
    synthetic data, its BERT folder as `pretrained` unless an override names one; then the
    trainer's checks (`check_trainer_config`), an error naming the layer that set the value. Reads no data."""
    overrides = list(overrides)
    if max_epochs is not None:
        overrides.append(("max_epochs", max_epochs, "--max-epochs"))       # its type checked as any value's
    if synthetic_bert is not None and not any(
            (o[0] if isinstance(o, tuple) else o.split("=", 1)[0].strip()) == "pretrained" for o in overrides):
        overrides.insert(0, ("pretrained", synthetic_bert_name(synthetic_bert), "--synthetic"))
    origins = {}
    config = load_config(model, dataset, preset=preset, overrides=overrides, origins=origins)
    check_trainer_config(config, dataset, origins)
    return config
