"""A bound on what a model's build registers, counted as it goes. A model is built from a config or a run's card
that may be anyone's, and a layer count of millions built layer after layer for hours before any check could see
it. Its users: `api.jobs` (a config, before any run folder) and `training.checked_model` (a run's card against the
tensors its best.pt holds)."""
from __future__ import annotations

from contextlib import contextmanager

import torch


class OverBudget(Exception):
    """A build registered more than `limit` of `kind` ("tensors": parameters and buffers, or "modules")."""

    def __init__(self, kind: str, limit: int):
        super().__init__(f"more than {limit} {kind}")
        self.kind, self.limit = kind, limit


@contextmanager
def registration_budget(limit: int):
    """Raise OverBudget as soon as a build in this block registers more than `limit` tensors or modules, and again
    as the block ends, whatever the build made of the first (a model's own constructor may catch or wrap it)."""
    counts, over = {"tensors": 0, "modules": 0}, []

    def count(kind: str):
        def hook(*_):
            counts[kind] += 1
            if counts[kind] > limit:
                over.append(kind)
                raise OverBudget(kind, limit)
        return hook

    registration = torch.nn.modules.module
    handles = [registration.register_module_parameter_registration_hook(count("tensors")),
               registration.register_module_buffer_registration_hook(count("tensors")),
               registration.register_module_module_registration_hook(count("modules"))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        if over:
            raise OverBudget(over[0], limit) from None
