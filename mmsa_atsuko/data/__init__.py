"""Datasets: the `Dataset`/`Split` contract and one `load_dataset` for every dataset.

A dataset's `format` in configs/datasets.yaml picks its reader: `mmsa`, an MMSA feature pickle
(MOSI, MOSEI, CH-SIMS, CH-SIMS v2, and any dataset of yours in that format: `mmsa_format`);
`mintrec`, a folder in thuiar/MIntRec's own layout (`mintrec`).
"""
from __future__ import annotations

from pathlib import Path

from ..config import dataset_facts, dataset_names
from ..errors import UsageError
from . import mmsa_format
from .spec import Dataset, DatasetSpec, Split

__all__ = ["load_dataset", "resolve_feature_path", "DatasetSpec", "Split", "Dataset", "dataset_names"]


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
        return load_mintrec(data_root, feature_path, pretrained=pretrained)
    return mmsa_format.load_dataset(name, aligned=aligned, data_root=data_root, feature_path=feature_path)
