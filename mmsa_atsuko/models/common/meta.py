"""Building a model on the meta device: its parameters' and buffers' shapes without their memory.

`run.py predict` (a run folder's model.json) and `load_run` (explain, robustness, tsne: a runs.jsonl
record) build the model a config describes under `torch.device("meta")` first
(training/checked_model.py), and compare its shapes with best.pt's before building it for real: a card whose config
asks for a model of terabytes is refused without allocating them. Code that computes values
while a model is built (BERT's pretrained weights, Atsuko's spectral basis) asks
`building_on_meta()` and then makes tensors of the right shapes and dtypes instead: on the meta
device there are no values to compute with (`.tolist()` raises), and a value cached there would
be a meta tensor in every later real build.
"""
from __future__ import annotations

import torch


def building_on_meta() -> bool:
    """Whether tensors made without a device land on the meta device (`with torch.device("meta")`)."""
    return torch.get_default_device().type == "meta"
