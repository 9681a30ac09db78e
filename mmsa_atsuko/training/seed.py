"""Seeding and device choice."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..errors import UsageError

DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)   # MMSA's result-stat seeds (thuiar/MMSA#81)


def check_seeds(seeds, where: str = "seeds") -> list[int]:
    """The seeds as ints; UsageError for one numpy cannot take or one given twice."""
    seeds = [int(s) for s in seeds]
    for seed in seeds:
        if not 0 <= seed < 2 ** 32:
            raise UsageError(f"{where}: seed {seed} is out of range; a seed is 0 to 2**32 - 1 (numpy's limit)")
        if seeds.count(seed) > 1:
            raise UsageError(f"{where}: seed {seed} is given twice; it would train the same run again "
                             f"and count it twice in the mean over seeds")
    return seeds


def set_seed(seed: int) -> None:
    """Seed every generator a run touches and ask for deterministic kernels.

    MMSA's `setup_seed` plus what it lacks: `use_deterministic_algorithms` (warn-only, since a
    few CUDA kernels have no deterministic version; the CUBLAS workspace it needs on GPU is set
    when the package is imported). Batch order comes from a `torch.Generator` the trainer
    seeds separately.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also NaN-fills every tensor torch.empty hands out, a debugging aid for
    # code that reads memory before writing it. Nothing here does (the determinism tests would
    # see it), and the fills cost 2-8% of a CPU training step (LMF, TFN, MulT) and extra kernel
    # launches on a host-bound GPU step (bench/README.md, "LMF and TFN after `set_seed` stopped
    # filling fresh tensors").
    torch.utils.deterministic.fill_uninitialized_memory = False


def resolve_device(spec: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:i' -> torch.device, with a clear error if unavailable."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise UsageError(f"--device {spec!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
