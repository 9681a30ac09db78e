"""The dataset contract: a `DatasetSpec` and three `Split`s of tensors, batched by indexing.

A split is loaded once, validated once, kept as tensors (on the training device once the
trainer moves it) and batched by fancy indexing: no per-sample Python objects and no
DataLoader workers in the hot loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .conditions import PLAIN, Condition
from .masking import condition_tensors

if TYPE_CHECKING:
    import torch

MODALITIES = ("text", "audio", "vision")


@dataclass(frozen=True)
class DatasetSpec:
    """What a model may know about its data. Dims and lengths are read from the file."""

    name: str                      # 'mosi', 'mosei', 'sims', 'simsv2', 'mintrec'
    task: str                      # 'regression' | 'classification'
    num_classes: int               # output size: 1 for regression, C for classification
    label_range: tuple | None      # (lo, hi) for regression labels, None for classification
    feature_dims: dict             # {'text': 768, 'audio': Da, 'vision': Dv}
    seq_lens: dict                 # {'text': L, 'audio': La, 'vision': Lv} (padded lengths)
    aligned: bool
    language: str                  # 'en' | 'cn'
    key_metric: str                # default model-selection metric on valid ('Loss', 'f1')
    has_text_bert: bool            # split tensors hold 'text_bert' (B,3,L) int64
    has_text_features: bool        # split tensors hold 'text' (B,L,768) float
    unimodal_labels: bool          # 'label_T/label_A/label_V' present (SIMS, SIMSv2)
    source: str                    # 'sha256:<hex>' of the feature file, or 'synthetic:<recipe>'
    path: str                      # the file (or folder) it came from
    split_sizes: dict = field(default_factory=dict)   # {'train': N, 'valid': N, 'test': N}
    label_names: tuple | None = None                  # class names (classification)
    synthetic: bool = False
    extractor: dict | None = None     # name, version, config hash of the extractor that wrote the file
    condition: Condition = PLAIN                      # missing frames / modality subset (`Dataset.under`)


class Split:
    """One split as a dict of tensors with a shared first dimension N, plus the sample ids.

    Keys follow the batch contract (docs/design.md, Contracts): `text` (N,L,768) float32 and/or
    `text_bert` (N,3,L) int64, `audio` (N,La,Da), `vision` (N,Lv,Dv) float32,
    `text_lengths`, `audio_lengths`, `vision_lengths` (N,) int64, `text_mask`, `audio_mask`,
    `vision_mask` (N,L*) bool (True = a real frame), `label` (N,) float32 or int64, and
    `label_T/label_A/label_V` where the dataset has unimodal labels.
    """

    def __init__(self, name: str, tensors: dict, ids: list):
        sizes = {k: v.shape[0] for k, v in tensors.items()}
        if len(set(sizes.values())) > 1 or (sizes and len(ids) != next(iter(sizes.values()))):
            raise ValueError(f"split {name}: tensors disagree on the sample count: {sizes}, ids {len(ids)}")
        self.name = name
        self.tensors = tensors
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.tensors.items())
        return f"Split({self.name}, n={len(self)}, {shapes})"

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def to(self, device) -> "Split":
        return Split(self.name, {k: v.to(device) for k, v in self.tensors.items()}, self.ids)

    def batch(self, index: torch.Tensor, index_dev: torch.Tensor | None = None) -> dict:
        """The batch for sample positions `index` (a 1-D int64 tensor on any device); `index_dev`,
        the same positions already on the split's device, saves a copy."""
        index_dev = index.to(self.device) if index_dev is None else index_dev
        out = {k: v.index_select(0, index_dev) for k, v in self.tensors.items()}
        out["index"] = index_dev
        idx = index.tolist()
        out["id"] = [self.ids[i] for i in idx]
        return out

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        """Yield batches in file order, or in a permutation drawn from `generator`."""
        import torch     # here, not at the top: download, extract and predict import this module before any split
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        # One copy of the order to the device per pass: a copy per batch from pageable memory
        # waits for the GPU to catch up, a host sync every step.
        order_dev = order.to(self.device)
        for start in range(0, n, batch_size):
            yield self.batch(order[start:start + batch_size], order_dev[start:start + batch_size])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


@dataclass
class Dataset:
    spec: DatasetSpec
    train: Split
    valid: Split
    test: Split

    def splits(self):
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def under(self, condition: Condition) -> "Dataset":
        """This dataset under a protocol condition (`conditions`), every split masked once, here."""
        if condition == self.spec.condition:
            return self
        if not self.spec.condition.plain:
            raise ValueError(f"dataset is already under condition {self.spec.condition.key()!r}")
        splits = {name: Split(name, condition_tensors(split.tensors, data_id=self.spec.source, split=name,
                                                      condition=condition), split.ids)
                  for name, split in self.splits().items()}
        return Dataset(replace(self.spec, condition=condition), **splits)

    def without_text_features(self) -> "Dataset":
        """A view without the `text` features, for a model that reads `text_bert` through BERT.

        The other tensors are shared, not copied. Once nothing else holds the full dataset,
        the `text` features are freed: 0.34 GB for MOSI, 3.5 GB for MOSEI, never read by a
        BERT model, and never moved to its GPU either.
        """
        splits = {name: Split(name, {k: v for k, v in split.tensors.items() if k != "text"}, split.ids)
                  for name, split in self.splits().items()}
        return Dataset(replace(self.spec, has_text_features=False), **splits)
