"""Datasets: the `Dataset`/`Split` contract and one `load_dataset` for every dataset.

MOSI, MOSEI, CH-SIMS and CH-SIMS v2 are MMSA feature pickles (`mmsa_format`); MIntRec is a
folder in thuiar/MIntRec's own layout (`mintrec`).
"""
from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import UsageError
from . import mmsa_format
from .mmsa_format import MMSA_DATASETS
from .spec import Dataset, DatasetSpec, Split

MINTREC = "mintrec"

__all__ = ["load_dataset", "resolve_feature_path", "DatasetSpec", "Split", "Dataset", "dataset_names"]


def dataset_names() -> tuple:
    """The datasets `load_dataset` reads."""
    return (*MMSA_DATASETS, MINTREC)


def _known(name: str) -> str:
    name = str(name).lower()
    if name not in dataset_names():
        close = difflib.get_close_matches(name, dataset_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown dataset {name!r}{hint}: choose one of {', '.join(dataset_names())}")
    return name


def _no_aligned_mintrec(aligned: bool) -> None:
    if aligned:
        raise UsageError("mintrec has no aligned setting (MIntRec ships unaligned features only): drop --aligned")


def resolve_feature_path(name: str, aligned: bool = False, data_root=None, feature_path=None) -> Path:
    """Where the data of `name` is: its MMSA feature pickle, or for mintrec its folder."""
    name = _known(name)
    if name == MINTREC:
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
    name = _known(name)
    if name == MINTREC:
        from .mintrec import load_mintrec
        _no_aligned_mintrec(aligned)
        return load_mintrec(data_root, feature_path, pretrained=pretrained)
    return mmsa_format.load_dataset(name, aligned=aligned, data_root=data_root, feature_path=feature_path)
