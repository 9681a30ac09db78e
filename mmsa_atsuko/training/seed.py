"""Seeding and device choice. The seeds' check imports no torch (a sweep runs it before it plans); seeding and
choosing a device import it."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:
    import torch

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


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed every generator a run touches and choose the kernels.

    MMSA's `setup_seed` plus what it lacks: with `deterministic`, strict
    `use_deterministic_algorithms(True)` (an op without a deterministic version raises instead of
    running: on CUDA, float32 attention's memory-efficient backward otherwise adds with atomics,
    and two atsuko runs differed by 0.003 MAE; issue 17). The CUBLAS workspace it needs on GPU is
    set when the package is imported. `deterministic=False` (`--nondeterministic`) lets torch and
    cuDNN pick the fastest kernels. Batch order comes from a `torch.Generator` the trainer seeds
    separately.
    """
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    # Deterministic mode also NaN-fills every tensor torch.empty hands out, a debugging aid for
    # code that reads memory before writing it. Nothing here does (the determinism tests would
    # see it), and the fills cost 2-8% of a CPU training step (LMF, TFN, MulT) and extra kernel
    # launches on a host-bound GPU step (bench/README.md, "LMF and TFN after `set_seed` stopped
    # filling fresh tensors").
    torch.utils.deterministic.fill_uninitialized_memory = False


def resolve_device(spec: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:i' -> torch.device, with a clear error if unavailable."""
    import torch
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
