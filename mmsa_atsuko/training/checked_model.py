"""A model built from a config written elsewhere, against the weights it claims to describe.

A run folder may come from anywhere, and a config sizes the model it builds: `post_fusion_dim:
1000000` asks for terabytes. `build_checked` takes the config (already held to the training
checks: `model_card.check_run_config`) and the state dict read from best.pt (`load_weights`,
bounded by the file), and builds the model for real only once
- every integer of the config and of the spec is at most the number of values the weights hold
  (a model's sizes never exceed its parameter count, and a build loops over some of them in
  Python, where no meta device helps), counted as best.pt stores them (`_stored_values`), not as
  its tensors' shapes claim;
- the model built on the meta device (models/common/meta.py), within a budget of tensors and
  modules set by the weights, has exactly the weights' tensor names and shapes;
- it holds few values beside those best.pt stores (non-persistent buffers).
Anything else is one DataError line. `predict.checkpoint.load_checkpoint` (the config of a run folder's
model.json) and `analysis.runs.load_run` (the config of a runs.jsonl record) both build through it.

It lives in training/, the lowest layer that holds every check a config written elsewhere passes
(`check_trainer_config` is the trainer's); it imports nothing above.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, ToolkitError, one_line
from ..models.build_budget import OverBudget, registration_budget
from ..registry import build_model
from ..results import show

# What a model may hold beyond its state dict (non-persistent buffers, such as Atsuko's band
# projectors: num_bands times its spectral bases): this many values per value of the weights, plus
# a fixed allowance. Every shipped model stays under 2 per value (Atsuko at MOSEI's lengths: 1.2;
# tests/test_predict.py).
EXTRA_ELEMENTS_PER_WEIGHT = 8
EXTRA_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Described:
    """Who describes the model, as the one-line errors name it.

    `where` starts a line about the description itself (a model.json path, or a runs.jsonl
    record); `weights_of` ends "<best.pt> is not the weights of ..."; `noun` is the description
    in a sentence ("the card", "the record")."""
    where: str
    weights_of: str
    noun: str


def build_checked(model_name: str, config, spec, state, weights: Path, described: Described) -> torch.nn.Module:
    """The model `config` and `spec` describe with `state` (read from `weights`) loaded, on the CPU
    (train mode, as `build_model` leaves it), or a one-line DataError before anything is built for
    real (see the module docstring)."""
    def not_these(why: str) -> DataError:
        return DataError(f"{weights} is not the weights of {described.weights_of} ({why})")

    if not (isinstance(state, dict) and state
            and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())):
        raise not_these("it holds no state dict of named tensors")
    stored = _stored_values(state)
    _check_sizes(config, spec, stored, described)
    with torch.device("meta"):
        shapes = _build(model_name, config, spec, described, budget=len(state))
    wrong = _shape_difference(shapes, state, described)
    if wrong:
        raise not_these(wrong)
    every = sum(t.numel() for t in (*shapes.parameters(), *shapes.buffers()))
    if every - stored > EXTRA_ELEMENTS_PER_WEIGHT * stored + EXTRA_ELEMENTS:
        raise DataError(f"{described.where}: its {model_name} would hold {every:,} values beside the {stored:,} "
                        f"that {weights} stores: not a model this toolkit trains; train the run again")
    del shapes
    model = _build(model_name, config, spec, described)
    try:
        model.load_state_dict(state)
    except Exception as e:          # shapes matched; a value the model itself refuses (e.g. Atsuko's lengths)
        raise not_these(one_line(e)) from None
    return model


def _build(model_name: str, config, spec, described: Described, budget: int | None = None) -> torch.nn.Module:
    """`build_model`, any failure one DataError line naming the description. With `budget` (the
    number of tensors of the weights), a build that registers far more tensors or modules than that
    is stopped as it goes: on the meta device, a config's layer count alone could take hours."""
    try:
        with registration_budget(2 * budget + 64) if budget is not None else nullcontext():
            return build_model(model_name, config, spec)
    except OverBudget as e:
        raise DataError(f"{described.where}: its {model_name} has {e}, and best.pt holds {budget} tensors: "
                        f"{described.noun} does not describe these weights") from None
    except ToolkitError as e:      # e.g. a kernel longer than the spec's sequence length
        raise DataError(f"{described.where}: {e}") from None
    except Exception as e:         # values that pass the config checks but build no model
        raise DataError(f"{described.where}: its {model_name} cannot be built "
                        f"({one_line(e)})") from None


def _stored_values(state: dict) -> int:
    """How many values best.pt really stores: each storage once, at its size as torch.load read it
    (bounded by the file). A tensor's shape may claim far more: torch.save keeps a view's strides, so a
    stride of 0 repeats one value (a 10 KB best.pt declared 1.6 billion values, and the model its card
    described took 6.7 GB to build), and tensors may share one storage. A model's state dict saves
    neither: each of its tensors has a storage of its own, exactly as large (tests/test_predict.py)."""
    storages = {}
    for tensor in state.values():
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
    return sum(storages.values())


def _check_sizes(config, spec, total: int, described: Described) -> None:
    """DataError unless every integer of the config and of the spec's dims is at most `total`, the number
    of values the weights store."""
    sizes = [(key, v) for key, value in config.items() for v in (value if isinstance(value, list) else [value])]
    sizes += [(f"spec {name} {m}", n) for name in ("feature_dims", "seq_lens") for m, n in getattr(spec, name).items()]
    sizes.append(("spec num_classes", spec.num_classes))
    for key, value in sizes:
        if isinstance(value, int) and not isinstance(value, bool) and value > total:
            raise DataError(f"{described.where}: {key} is {show(value)}, more than the {total} values of its best.pt: "
                            f"{described.noun} does not describe these weights")


def _shape_difference(model: torch.nn.Module, state: dict, described: Described) -> str | None:
    """What differs between the model's state dict (on any device) and `state`, or None."""
    want = model.state_dict()
    missing, unexpected = [k for k in want if k not in state], [k for k in state if k not in want]
    if missing:
        return f"it lacks {len(missing)} of the model's tensors, e.g. {show(missing[0])}"
    if unexpected:
        return f"it holds {len(unexpected)} tensors the model lacks, e.g. {show(unexpected[0])}"
    for key, tensor in want.items():
        if tuple(tensor.shape) != tuple(state[key].shape):
            return (f"{show(key)} is {tuple(state[key].shape)} in the weights and {tuple(tensor.shape)} "
                    f"in the model {described.noun} describes")
    return None
