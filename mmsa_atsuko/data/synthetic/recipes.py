"""Which synthetic datasets exist, what each recipe is called, and what shapes its file has.

A recipe is a pure function of (dataset, size, seed, aligned, stress recipe) and is named by
them (`mosi-small-unaligned-seed0-v2`); the name is the seed of every random draw, the cache
folder and the data id. Kept apart from the generator because naming and checking a request
is all that `run` needs before it generates anything, and because the request checks here
also answer for synthetic MIntRec, which the generator does not make.
"""
from __future__ import annotations

import numpy as np

from mmsa_atsuko.config import datasets_table, real_layout
from mmsa_atsuko.errors import UsageError
from ..synthetic_stress import SIZES, STANDARD, STRESS_SMALL_SPLIT_SIZES, check_recipe, stress_name

SYNTHETIC_DATASETS = ("mosi", "mosei", "sims", "simsv2")
SPLITS = ("train", "valid", "test")

# Bump when the generator changes what it writes: the version is part of every recipe
# name, so caches and run records made by an older generator never pass for new ones.
RECIPE_VERSION = "v2"         # v2: audio/vision cues partly oscillate, plus baseline drift

# `size='small'`: enough samples for a split to have a few batches, sequences short enough
# that even MulT-style cross-modal attention trains in seconds. Feature dims stay real.
SMALL_SPLIT_SIZES = {"train": 96, "valid": 32, "test": 32}
SMALL_SEQ_LENS = {"text": 16, "audio": 24, "vision": 20}


def facts_of(dataset: str) -> dict:
    """The datasets.yaml block of a dataset the generator can make."""
    if dataset not in SYNTHETIC_DATASETS:
        raise UsageError(f"no synthetic version of dataset {dataset!r}; choose one of {', '.join(SYNTHETIC_DATASETS)}")
    return datasets_table()[dataset]


def check_args(dataset, size, seed, aligned) -> tuple[str, str, int, bool]:
    """Validate and normalise the four arguments that name a recipe."""
    dataset = str(dataset).lower()
    facts = facts_of(dataset)
    if size not in SIZES:
        raise UsageError(f"unknown synthetic size {size!r}; choose one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    aligned = bool(aligned)
    setting = "aligned" if aligned else "unaligned"
    if setting not in facts["files"]:
        raise UsageError(f"{dataset} has no {setting} setting (it has: {', '.join(facts['files'])})")
    return dataset, size, seed, aligned


def synthetic_recipe(dataset: str, size: str = "small", seed: int = 0, aligned: bool = False,
                     recipe: str = STANDARD) -> str:
    """The recipe name, e.g. 'mosi-small-unaligned-seed0-v2', or for a stress recipe
    'corrupt-s2-mosi-small-unaligned-seed0-v2' (synthetic_stress.py); sample ids carry it."""
    dataset, size, seed, aligned = check_args(dataset, size, seed, aligned)
    standard = f"{dataset}-{size}-{'aligned' if aligned else 'unaligned'}-seed{seed}-{RECIPE_VERSION}"
    return stress_name(check_recipe(recipe), standard)


def synthetic_shapes(dataset: str, size: str = "small", aligned: bool = False, recipe: str = STANDARD) -> dict:
    """Split sizes, padded sequence lengths and feature dims a synthetic file will have.

    Returns `{'split_sizes': {split: N}, 'seq_lens': {modality: L}, 'feature_dims':
    {modality: D}}`. Full size copies datasets.yaml (`real_sizes`, `real_shapes`); small
    keeps the real feature dims with short sequences. The writer takes its shapes from here.
    """
    dataset, size, _, aligned = check_args(dataset, size, 0, aligned)
    real = real_layout(dataset, "aligned" if aligned else "unaligned")
    if real is None:
        raise UsageError(f"configs/datasets.yaml gives {dataset} no usable real_sizes and real_shapes: the "
                         f"synthetic generator copies them; restore them in its block")
    if size == "full":
        return real
    split_sizes = dict(SMALL_SPLIT_SIZES if check_recipe(recipe) == STANDARD else STRESS_SMALL_SPLIT_SIZES)
    seq_lens = dict(SMALL_SEQ_LENS)
    if aligned:  # aligned files share the text length on every modality
        seq_lens = {m: SMALL_SEQ_LENS["text"] for m in seq_lens}
    return {"split_sizes": split_sizes, "seq_lens": seq_lens, "feature_dims": real["feature_dims"]}


def check_mintrec_request(aligned: bool, recipe) -> None:
    """Synthetic MIntRec (synthetic_mintrec.py) is unaligned and has the standard recipe only."""
    if aligned:
        raise UsageError("mintrec has no aligned setting (MIntRec ships unaligned features only): drop --aligned")
    if check_recipe(recipe) != STANDARD:
        raise UsageError(f"the {recipe} synthetic recipe exists for {', '.join(SYNTHETIC_DATASETS)} only; "
                         f"synthetic mintrec has the standard recipe: drop --synthetic-recipe")


def check_synthetic_request(dataset: str, size: str = "small", aligned: bool = False, recipe: str = STANDARD) -> None:
    """The UsageError `ensure_synthetic` would raise for this request, without writing anything: `run` checks
    every dataset of a request before it generates or loads the first."""
    if str(dataset).lower() == "mintrec":
        check_mintrec_request(aligned, recipe)
    else:
        synthetic_recipe(dataset, size, 0, aligned, recipe)
