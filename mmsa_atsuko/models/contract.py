"""The model contract's outputs as checks (docs/design.md, Contracts: Model): what `forward` and `loss` return.

`trainer.fit` runs them once, on the first training batch, so a model of one's own that breaks the contract
stops in one line naming its method before any other code trips over what it returned;
tests/test_model_contract.py runs the same checks on every registered model.
"""
from __future__ import annotations

import torch

from ..errors import ModelContractError

SEE = "(docs/design.md, Contracts: Model)"


def model_name(model) -> str:
    """The registered name of `model` (its class name for an unregistered one)."""
    meta = getattr(type(model), "registry_meta", None)
    return meta["name"] if meta else type(model).__name__


def pred_shape(task: str, batch_size: int, num_classes: int) -> tuple:
    """What `forward(batch)["pred"]` must be: (B,) for regression, (B, C) logits for classification."""
    return (batch_size,) if task == "regression" else (batch_size, num_classes)


def _shape(shape) -> str:
    return str(tuple(shape))


def _what(value) -> str:
    return f"a {type(value).__name__}" + (f" of shape {_shape(value.shape)}" if torch.is_tensor(value) else "")


def check_outputs(model, outputs, batch_size: int, spec) -> None:
    """ModelContractError unless `outputs` (of `model(batch)`, a batch of `batch_size` samples) is a dict
    whose `pred` has the contract's shape for `spec.task` and `spec.num_classes`."""
    where = f"{model_name(model)}.forward"
    if not isinstance(outputs, dict):
        raise ModelContractError(f"{where}: returned {_what(outputs)}, expected a dict with 'pred' {SEE}")
    if "pred" not in outputs:
        raise ModelContractError(f"{where}: returned a dict without 'pred' (keys: {', '.join(map(str, outputs))}); "
                                 f"put the predictions under 'pred' {SEE}")
    pred, want = outputs["pred"], pred_shape(spec.task, batch_size, spec.num_classes)
    if not torch.is_tensor(pred):
        raise ModelContractError(f"{where}: pred is {_what(pred)}, expected a tensor of shape {_shape(want)} "
                                 f"for {spec.task} {SEE}")
    if tuple(pred.shape) != want:
        classes = f" with {spec.num_classes} classes" if spec.task == "classification" else ""
        raise ModelContractError(f"{where}: pred is {_shape(pred.shape)}, expected {_shape(want)} for "
                                 f"{spec.task}{classes} {SEE}")


def check_losses(model, losses) -> None:
    """ModelContractError unless `losses` (of `model.loss(outputs, batch)`) is a dict holding scalar tensors
    `total` (what is optimised) and `task` (the prediction loss alone); in training mode, `total` must
    carry a gradient back to the model."""
    where = f"{model_name(model)}.loss"
    wanted = "a dict of scalar terms with 'total' (what is optimised) and 'task' (the prediction loss alone)"
    if not isinstance(losses, dict):
        raise ModelContractError(f"{where}: returned {_what(losses)}, expected {wanted} {SEE}")
    missing = [key for key in ("total", "task") if key not in losses]
    if missing:
        raise ModelContractError(f"{where}: returned a dict without {' and '.join(map(repr, missing))} "
                                 f"(keys: {', '.join(map(str, losses))}), expected {wanted} {SEE}")
    for key in ("total", "task"):
        value = losses[key]
        if not torch.is_tensor(value) or value.dim() != 0:
            raise ModelContractError(f"{where}: {key!r} is {_what(value)}, expected a scalar tensor "
                                     f"(reduce it, e.g. with .mean()) {SEE}")
    if model.training and torch.is_grad_enabled() and not losses["total"].requires_grad \
            and any(p.requires_grad for p in model.parameters()):
        raise ModelContractError(f"{where}: 'total' carries no gradient (it was detached, or computed under "
                                 f"no_grad or from .item()), so training could not change the model {SEE}")
