"""Late fusion: each modality averaged over its real frames, encoded alone, concatenated, an MLP head.

The simplest fusion there is, and here as a floor: each modality is read on its own (masked mean over
its true frames, then Linear -> ReLU -> Dropout), and the three codes meet only in the head
(concatenation -> Linear -> ReLU -> Dropout -> Linear). No modality ever sees another before the head,
so a fusion model (TFN's outer product, MulT's crossmodal attention, ...) that does not beat it on the
same data and seeds gains nothing from its fusion.

Regression predicts the label directly (no squashing into a fixed range, so any label_range trains);
classification gives C logits. An absent modality (`--modalities TA`) is a constant input, so its
encoder gives a constant code and the head learns around it.
"""
from __future__ import annotations

import torch
from torch import nn

from ..common.checks import require_text_features
from ..common.heads import OutputLinear
from ..common.pooling import masked_mean
from ..common.task import task_loss
from ...registry import register_model

MODALITIES = ("text", "audio", "vision")


@register_model("late_fusion", tasks=("regression", "classification"), modality_subsets=True)
class LateFusion(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        require_text_features(spec, "late_fusion")
        self.task = spec.task
        self.encoders = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(spec.feature_dims[m], config.encoder_dim), nn.ReLU(),
                             nn.Dropout(config.encoder_dropout))
            for m in MODALITIES})
        self.head = nn.Sequential(nn.Linear(len(MODALITIES) * config.encoder_dim, config.head_dim), nn.ReLU(),
                                  nn.Dropout(config.head_dropout), OutputLinear(config.head_dim, spec.num_classes))

    def forward(self, batch: dict) -> dict:
        codes = {m: self.encoders[m](masked_mean(batch[m], batch[f"{m}_mask"])) for m in MODALITIES}
        y = self.head(torch.cat([codes[m] for m in MODALITIES], dim=-1))
        return {"pred": y.squeeze(-1) if self.task == "regression" else y, "features": codes}

    def loss(self, outputs: dict, batch: dict) -> dict:
        task = task_loss(self.task, outputs["pred"], batch["label"])
        return {"total": task, "task": task}
