"""What a last.pt must hold before `--resume` restores anything from it.

`load_weights` lets only tensors and plain containers through, but a `.partial` folder may come with
someone's results folder, and its last.pt is then restored into the model, the optimizer, the
scheduler, every random stream and the run's history. Unchecked, what is not the run's own would be a
traceback from the restore (a weight of another shape, an RNG state of another size or type) or from
training later (a learning rate that is a string, a history that is no list), a buffer name would set any
attribute of the model (`forward` to a tensor), and a negative epoch would train a run of more epochs than
max_epochs without a word. So the state is checked against the model, optimizer, scheduler and
generator just built for the run; `check_training_state` raises ValueError naming what differs.
"""
from __future__ import annotations

import numbers
import random

import torch

STATE_KEYS = {"epoch", "history", "model", "buffers", "optimizer", "scheduler", "best", "rng"}
BEST_KEYS = {"value", "epoch", "valid", "model"}
RNG_KEYS = {"torch", "numpy", "python", "batch_order", "cuda"}
PLAIN = (str, int, float, bool, type(None))


def check_training_state(state, model, optimizer, scheduler, generator) -> None:
    """ValueError unless `state` (a loaded last.pt) is what `save_training_state` saved for this run."""
    if type(state) is not dict or set(state) != STATE_KEYS:
        raise ValueError("its keys are not a training state's")
    epoch, history = state["epoch"], state["history"]
    if type(epoch) is not int or epoch < 1:
        raise ValueError("its epoch is no finished epoch")
    if not (type(history) is list and len(history) == epoch and _plain(history)
            and all(type(h) is dict and h.get("epoch") == i + 1 for i, h in enumerate(history))):
        raise ValueError(f"its history does not list epochs 1 to {epoch}")
    shapes = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    _check_weights(state["model"], shapes, "its weights")
    best = state["best"]
    if not (type(best) is dict and set(best) == BEST_KEYS and type(best["epoch"]) is int
            and 0 <= best["epoch"] <= epoch and (best["value"] is None) == (best["epoch"] == 0)
            and (best["value"] is None or _number(best["value"])) and _plain(best["valid"])):
        raise ValueError("its model selection is not one of its epochs")
    if best["epoch"] in (0, epoch):
        if best["model"] is not None:
            raise ValueError("its model selection stores weights it does not use")
    else:
        _check_weights(best["model"], shapes, "its best weights")
    others = {k: v for k, v in model.named_buffers() if k not in shapes}
    buffers = state["buffers"]
    if not (type(buffers) is dict and all(
            k in others and isinstance(v, torch.Tensor) and v.shape == others[k].shape and v.dtype == others[k].dtype
            for k, v in buffers.items())):
        raise ValueError("its buffers are not the model's")
    _check_optimizer(state["optimizer"], optimizer)
    if (scheduler is None) != (state["scheduler"] is None) or (
            scheduler is not None and not _same_kind(state["scheduler"], scheduler.state_dict())):
        raise ValueError("its scheduler state is not the run's scheduler's")
    _check_rng(state["rng"], generator)


def _number(x) -> bool:
    """A real number a float holds (an int of 400 digits overflowed where the optimizer used it)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and (type(x) is not int or abs(x) < 2 ** 63)


def _plain(value, depth: int = 0) -> bool:
    """JSON-like: what history.json and a record can hold."""
    if depth > 16:
        return False
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    if type(value) in (list, tuple):
        return all(_plain(v, depth + 1) for v in value)
    return type(value) in PLAIN


def _check_weights(weights, shapes: dict, what: str) -> None:
    if not isinstance(weights, dict) or set(weights) != set(shapes):
        raise ValueError(f"{what} are not the model's")
    for key, value in weights.items():
        if not (isinstance(value, torch.Tensor) and (value.shape, value.dtype) == shapes[key]):
            raise ValueError(f"{what} give {key} another shape or type than the model's")


def _same_kind(new, old) -> bool:
    """`new` has `old`'s structure: the same keys, lengths and kinds of value (any real number for a number)."""
    if isinstance(old, dict):
        return type(new) is dict and set(new) == set(old) and all(_same_kind(new[k], old[k]) for k in old)
    if isinstance(old, (list, tuple)):
        return type(new) is type(old) and len(new) == len(old) and all(map(_same_kind, new, old))
    if isinstance(old, torch.Tensor):
        return isinstance(new, torch.Tensor) and new.shape == old.shape and new.dtype == old.dtype
    if old is None or isinstance(old, bool):
        return new is None or type(new) is bool
    if _number(old):
        return _number(new) or (isinstance(new, torch.Tensor) and new.numel() == 1)
    return type(new) is type(old)


def _check_optimizer(saved, optimizer) -> None:
    fresh = optimizer.state_dict()
    groups = saved.get("param_groups") if type(saved) is dict else None
    # Groups are matched by position: a code change that reorders groups of equal size (Self-MM's audio and video
    # subnets) would pass every check below and load one group's Adam moments and lr onto the other. A model's
    # `param_groups` names its groups (an unnamed group's name is None on both sides), so the names must match too.
    if type(groups) is list and len(groups) == len(fresh["param_groups"]):
        for number, (group, own) in enumerate(zip(groups, fresh["param_groups"]), 1):
            if type(group) is dict and group.get("name") != own.get("name"):
                named = "an unnamed group" if own.get("name") is None else f"group {own['name']!r}"
                raise ValueError(f"its optimizer group {number} is not the run's {named}: the groups are in "
                                 f"another order or named otherwise")
    if not (type(saved) is dict and set(saved) == {"state", "param_groups"} and type(groups) is list
            and len(groups) == len(fresh["param_groups"])
            and all(type(g) is dict and g.get("params") == f["params"] and _same_kind(
                {k: v for k, v in g.items() if k != "params"}, {k: v for k, v in f.items() if k != "params"})
                for g, f in zip(groups, fresh["param_groups"]))):
        raise ValueError("its optimizer groups are not the run's optimizer's")
    params = {i: p for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    if not (type(saved["state"]) is dict and all(k in params and type(v) is dict for k, v in saved["state"].items())):
        raise ValueError("its optimizer state names parameters the model does not have")
    for index, values in saved["state"].items():
        for value in values.values():
            if isinstance(value, torch.Tensor):
                # A step count is one value; a moment is the parameter's shape, stored whole (no stride-0 view).
                if not ((value.numel() == 1 and value.dim() <= 1) or (
                        value.shape == params[index].shape and value.is_contiguous())):
                    raise ValueError("its optimizer state gives a parameter another shape than the model's")
            elif not _number(value):
                raise ValueError("its optimizer state holds other than numbers and tensors")


def _python_state(state) -> bool:
    """random.getstate()'s (version, 625 words, the next gaussian or None)."""
    version, words, _ = random.getstate()
    return (type(state) is tuple and len(state) == 3 and state[0] == version and type(state[1]) is tuple
            and len(state[1]) == len(words) and all(type(w) is int and 0 <= w < 2 ** 32 for w in state[1][:-1])
            and type(state[1][-1]) is int and 0 <= state[1][-1] <= len(words) and type(state[2]) in (float, type(None)))


def _check_rng(rng, generator) -> None:
    def byte_state(value, like) -> bool:
        return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.shape == like.shape

    python = rng.get("python") if type(rng) is dict else None
    if not (type(rng) is dict and set(rng) == RNG_KEYS and byte_state(rng["torch"], torch.get_rng_state())
            and byte_state(rng["batch_order"], generator.get_state())
            and _python_state(python) and type(rng["numpy"]) is dict
            and (rng["cuda"] is None or (type(rng["cuda"]) is list
                                         and all(isinstance(s, torch.Tensor) for s in rng["cuda"])))):
        raise ValueError("its random states are not the streams a run draws from")
