"""Datasets: the `Dataset`/`Split` contract and the MMSA feature-pickle loader."""
from .mmsa_format import dataset_names, load_dataset, resolve_feature_path
from .spec import Dataset, DatasetSpec, Split

__all__ = ["load_dataset", "resolve_feature_path", "DatasetSpec", "Split", "Dataset", "dataset_names"]
