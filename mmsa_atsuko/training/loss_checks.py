"""The trainer's loss sanity checks: a last batch of one sample that BatchNorm cannot train on (checked before
a run makes its folder), and non-finite loss terms, on the first batch and on an epoch's means, each one line saying
whether the learning rate can be to blame."""
from __future__ import annotations

import math

import torch

from ..errors import TrainingError, UsageError
from ..models.contract import check_losses, model_name


def check_last_batch(model, n_train: int, batch_size: int) -> None:
    """UsageError before training when the train split ends in a batch of one sample and the model
    has BatchNorm, which cannot train on one (torch would raise mid-epoch; tfn and lmf have it)."""
    if n_train % batch_size == 1 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                         for m in model.modules()):
        raise UsageError(f"the train split has {n_train} samples, so batch_size {batch_size} leaves a last batch "
                         f"of one, and {model_name(model)}'s BatchNorm cannot train on one sample; "
                         f"choose another batch_size (e.g. -c batch_size={batch_size + 1})")


NOT_THE_LEARNING_RATE = ("check the model's forward and loss, or the features: learning_rate and grad_clip cannot "
                         "have caused it")


def check_first_losses(model, losses, n_batches: int, initial: bool) -> None:
    """The first batch's loss terms against the model contract (`check_losses`) and, on the `initial`
    parameters of a fresh fit, each scalar term finite: one read from the device, once per fit. A term that
    is non-finite before any update comes from the model or the features, never from the learning rate."""
    check_losses(model, losses)
    scalars = {k: v.detach().float() for k, v in losses.items() if torch.is_tensor(v) and v.dim() == 0}
    if not initial or torch.stack(list(scalars.values())).isfinite().all():
        return
    bad = [k for k, v in scalars.items() if not torch.isfinite(v)]
    named = [k for k in bad if k != "total"] or bad
    raise TrainingError(f"non-finite training loss at epoch 1, step 1 of {n_batches}, before the first parameter "
                        f"update: {model_name(model)}.loss term {', '.join(map(repr, named))} is non-finite on the "
                        f"initial parameters ({' '.join(f'{k}={float(scalars[k]):.4g}' for k in bad)}); "
                        f"{NOT_THE_LEARNING_RATE}")


def check_epoch_losses(model, train_losses: dict, first_bad, epoch: int, n_batches: int, grad_accum: int) -> None:
    """TrainingError (one line) when an epoch's mean loss terms are not all finite, naming the step of the
    first non-finite total (`first_bad`, 0: not noted). Within the first accumulation group of epoch 1 no
    update had happened yet (step 1 itself stopped in `check_first_losses`), so the learning rate is not
    to blame."""
    if all(math.isfinite(v) for v in train_losses.values()):
        return
    step = int(first_bad)
    terms = " ".join(f"{k}={v:.4g}" for k, v in train_losses.items() if not math.isfinite(v))
    where = f"non-finite training loss at epoch {epoch}, step {step or '?'} of {n_batches}"
    if epoch == 1 and 0 < step <= grad_accum:
        raise TrainingError(f"{where}, before the first parameter update (grad_accum {grad_accum}): "
                            f"{model_name(model)}.loss is non-finite on the initial parameters (epoch mean "
                            f"{terms}); {NOT_THE_LEARNING_RATE}")
    raise TrainingError(f"{where} (epoch mean {terms}); the run stopped: lower learning_rate, set grad_clip, "
                        f"or check the features for huge values")
