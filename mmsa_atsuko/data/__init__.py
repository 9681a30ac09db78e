"""Datasets: the `Dataset`/`Split` contract and one `load_dataset` for every dataset.

A dataset's `format` in configs/datasets.yaml picks its reader: `mmsa`, an MMSA feature pickle
(MOSI, MOSEI, CH-SIMS, CH-SIMS v2, and any dataset of yours in that format: `mmsa_format`);
`mintrec`, a folder in thuiar/MIntRec's own layout (`mintrec`).

Importing the package costs nothing: its names are imported on first use (PEP 562), so that
`run.py --help` and anything that needs one light module of it (recipe names, the safe unpickler)
does not start torch.
"""
from __future__ import annotations

import importlib

_HOMES = {"load_dataset": "loading", "resolve_feature_path": "loading", "warn_huge_features": "loading",
          "warn_huge_splits": "loading", "Dataset": "spec", "DatasetSpec": "spec", "Split": "spec"}
__all__ = [*_HOMES, "dataset_names"]


def __getattr__(name: str):
    if name == "dataset_names":
        from ..config import dataset_names
        return dataset_names
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
