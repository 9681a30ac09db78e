"""The trainer's checks of its config keys, without torch: a sweep checks every setting with them before it
plans (and before torch is imported), `api` before a run makes its folder, `fit` again for callers that go
straight there, `model_card` for a run folder from elsewhere. `resolve_config`, a run's checked config (the config
loader's layers, then these checks), lives here for the same reason: a sweep's and a tune's configs and search space
are checked before their planning line (`api` re-exports it)."""
from __future__ import annotations

from ..cache import synthetic_bert_name
from ..config import load_config
from ..errors import UsageError
from ..metrics.names import metric_keys
from .selection import VALID_LOSS_RULES


def check_trainer_config(config, dataset: str, origins: dict | None = None) -> None:
    """Raise UsageError (one line) for a trainer key whose value cannot train: checked when a run
    is planned, before anything is written, and again by `fit` for callers that go straight there.
    (The config loader has already checked each key's type, that no float is NaN or inf, and each
    value against the `checks:` of configs/datasets.yaml, naming the layer; only key_eval, which
    depends on the dataset, is left to this check for a loaded config.) `origins`, as
    `load_config(origins=...)` fills it, names the layer that set a refused value."""
    def require(ok: bool, key: str, what: str) -> None:
        if not ok:
            where = f"{origins[key]}: " if origins and key in origins else ""
            raise UsageError(f"{where}{key} must be {what}, got {config[key]!r}")

    for key in ("batch_size", "grad_accum", "max_epochs", "early_stop"):
        require(config[key] >= 1, key, "at least 1")
    require(config.eval_batch_size is None or config.eval_batch_size >= 1, "eval_batch_size", "null or at least 1")
    require(config.learning_rate > 0, "learning_rate", "positive")
    require(config.weight_decay >= 0, "weight_decay", "0 or more")
    require(config.grad_clip is None or config.grad_clip > 0, "grad_clip", "null (no clipping) or positive")
    require(config.grad_clip_mode in ("value", "norm"), "grad_clip_mode", "value or norm")
    require(config.scheduler in ("none", "plateau"), "scheduler", "none or plateau")
    require(config.valid_loss in VALID_LOSS_RULES, "valid_loss", " or ".join(VALID_LOSS_RULES))
    if config.scheduler == "plateau":
        require(0 < config.scheduler_factor < 1, "scheduler_factor", "between 0 and 1 (the LR is multiplied by it)")
        require(config.scheduler_patience >= 0, "scheduler_patience", "0 or more")
    allowed = ("Loss", *metric_keys(dataset))
    require(config.key_eval in allowed, "key_eval", f"a metric of {dataset} ({', '.join(allowed)})")


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
