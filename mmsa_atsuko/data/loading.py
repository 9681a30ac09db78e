"""`load_dataset` and `resolve_feature_path`: one entry for every dataset, whatever its format."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import dataset_facts
from ..errors import UsageError
from . import mmsa_format
from .spec import Dataset

log = logging.getLogger("mmsa_atsuko")


def _format(name: str) -> str:
    return dataset_facts(name)["format"]


def _no_aligned_mintrec(aligned: bool) -> None:
    if aligned:
        raise UsageError("mintrec has no aligned setting (MIntRec ships unaligned features only): drop --aligned")


def resolve_feature_path(name: str, aligned: bool = False, data_root=None, feature_path=None) -> Path:
    """Where the data of `name` is: its MMSA feature pickle, or for mintrec its folder."""
    name = str(name).lower()
    if _format(name) == "mintrec":
        from .mintrec import resolve_mintrec_folder
        _no_aligned_mintrec(aligned)
        return resolve_mintrec_folder(data_root, feature_path)[0]
    return mmsa_format.resolve_feature_path(name, aligned, data_root, feature_path)


def load_dataset(name: str, *, aligned: bool = False, data_root=None, feature_path=None,
                 pretrained=None) -> Dataset:
    """Load and validate one dataset.

    MMSA datasets: `feature_path` is the pickle, `data_root` the folder holding MOSI/, SIMS/...
    mintrec: `feature_path` is the MIntRec folder, `data_root` the folder holding MIntRec/;
    `pretrained` is the BERT that tokenizes its raw text (the run config's `pretrained`;
    default bert-base-uncased). MMSA datasets ship their tokens and ignore it.
    """
    name = str(name).lower()
    if _format(name) == "mintrec":
        from .mintrec import load_mintrec
        _no_aligned_mintrec(aligned)
        data = load_mintrec(data_root, feature_path, pretrained=pretrained)
    else:
        data = mmsa_format.load_dataset(name, aligned=aligned, data_root=data_root, feature_path=feature_path)
    warn_huge_features(data)
    return data


HUGE = 1e6      # no real MMSA or MIntRec feature comes near it


def warn_huge_features(data: Dataset) -> dict:
    """Warn, with counts, of finite feature values above HUGE in magnitude; return {(split, modality): count}.

    A warning, not an error: the file is well-formed (NaN and +inf are already errors, -inf is
    zeroed in audio and vision), and a feature scale is the data's business; but values like 1e30
    overflow float32 arithmetic, and a run on them stops at its first non-finite loss."""
    return warn_huge_splits(data.spec.name, (data.train, data.valid, data.test))


def warn_huge_splits(name: str, splits) -> dict:
    """`warn_huge_features` of the `splits` of dataset `name` (predict reads a file's splits without a Dataset)."""
    found = {}
    for split in splits:
        for modality in ("text", "audio", "vision"):
            x = split.tensors.get(modality)
            if x is None or not x.is_floating_point() or x.numel() == 0:
                continue
            lo, hi = torch.aminmax(x)                   # one pass, no copy; counting only when needed
            if max(-float(lo), float(hi)) > HUGE:
                count = int((x.abs() > HUGE).sum())
                found[(split.name, modality)] = count
                log.warning("%s %s %s: %d feature values above %g in magnitude (largest %.3g); models may "
                            "overflow on them (a non-finite loss stops the run)", name, split.name,
                            modality, count, HUGE, max(-float(lo), float(hi)))
    return found
