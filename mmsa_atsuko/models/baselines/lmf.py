"""LMF: Low-rank Multimodal Fusion (Liu et al., ACL 2018), as MMSA 2.2.1 implements it.

The pre-fusion networks are TFN's: audio and vision are averaged over time and encoded by
`SubNet`, text is read by a 1-layer LSTM whose final state goes through a Linear of width
`text_hidden // 2`. Each vector h_m, with a 1 prepended, is multiplied by its modality factor
W_m (rank, d_m + 1, out), and the three products are multiplied elementwise:

    fused_r = prod_m [1; h_m] W_m[r]                    (B, rank, out)
    output  = sum_r fusion_weights[r] * fused_r + fusion_bias

which equals TFN's outer-product fusion followed by a rank-`rank` weight tensor, without ever
building the outer product (Eq. 6-7 of the LMF paper). The output is not squashed.

Faithful to MMSA (thuiar/MMSA:src/MMSA/models/singleTask/LMF.py, trains/singleTask/LMF.py):
- Adam with two groups and the config's `weight_decay` on both: the modality factors at
  `factor_lr`, everything else at `learning_rate`; L1 loss (cross-entropy for classification).
- `temporal_mean: padded` averages over the padded time axis like MMSA's `need_normalized`;
  the text LSTM reads the padded sequence unpacked (`text_packing: false`).
- MMSA's text dropout is dead (forced to 0 on a 1-layer LSTM) and its post-fusion dropout is
  built but never applied in `forward`; both stay dead here, so only the audio and vision
  dropouts of `dropouts` have an effect.
- Factors and `fusion_weights` get Xavier-normal init, `fusion_bias` zeros (as MMSA).

Fixed, with a switch back to MMSA:
- MMSA builds its optimizer by position, `params[:3]` and `params[5:]`, so `fusion_weights`
  and `fusion_bias` (positions 3-4) are in no group and are never trained: they keep their
  random init (the original LMF code does the same). Here the groups are chosen by parameter
  name and every parameter trains. `mmsa_frozen_fusion_weights: true` reproduces MMSA: those
  two parameters get requires_grad False and are left out of the optimizer.
Classification (MIntRec) uses C-way factors (out = C) and cross-entropy, as MMSA's
`train_mode == "classification"` branch does.
"""
from __future__ import annotations

import torch
from torch import nn

from .tfn import SubNet, append_one, temporal_mean
from ...errors import UsageError
from ..common.checks import require_temporal_mean_mode, require_text_features
from ..common.heads import float32_region
from ..common.rnn import LSTMEncoder
from ..common.task import task_loss
from ...registry import register_model

FACTOR_NAMES = ("audio_factor", "video_factor", "text_factor")
FUSION_NAMES = ("fusion_weights", "fusion_bias")


@register_model("lmf", tasks=("regression", "classification"), modality_subsets=True)
class LMF(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        require_text_features(spec, "lmf")
        require_temporal_mean_mode(config)
        if config.rank < 1:
            raise UsageError(f"rank must be at least 1, got {config.rank}")
        self.config = config
        self.task = spec.task
        text_hidden, audio_hidden, vision_hidden = config.hidden_dims
        text_out = text_hidden // 2                                       # MMSA: not a config key
        audio_drop, vision_drop, _text_drop_dead_in_mmsa, _post_drop_unused_in_mmsa = config.dropouts
        out_dim = spec.num_classes

        self.audio_subnet = SubNet(spec.feature_dims["audio"], audio_hidden, audio_drop)
        self.vision_subnet = SubNet(spec.feature_dims["vision"], vision_hidden, vision_drop)
        self.text_lstm = LSTMEncoder(spec.feature_dims["text"], text_hidden)
        self.text_out = nn.Linear(text_hidden, text_out)

        # MMSA's names (video, not vision), so checkpoints and the docstring read alike.
        self.audio_factor = nn.Parameter(torch.empty(config.rank, audio_hidden + 1, out_dim))
        self.video_factor = nn.Parameter(torch.empty(config.rank, vision_hidden + 1, out_dim))
        self.text_factor = nn.Parameter(torch.empty(config.rank, text_out + 1, out_dim))
        self.fusion_weights = nn.Parameter(torch.empty(1, config.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, out_dim))
        for name in FACTOR_NAMES + ("fusion_weights",):
            nn.init.xavier_normal_(getattr(self, name))
        if config.mmsa_frozen_fusion_weights:
            for name in FUSION_NAMES:
                getattr(self, name).requires_grad_(False)

    def forward(self, batch: dict) -> dict:
        mode = self.config.temporal_mean
        audio_h = self.audio_subnet(temporal_mean(batch["audio"], batch["audio_mask"], mode))
        vision_h = self.vision_subnet(temporal_mean(batch["vision"], batch["vision_mask"], mode))
        text_lengths = batch["text_lengths"] if self.config.text_packing else None
        text_h = self.text_out(self.text_lstm(batch["text"], text_lengths))

        # [1; h_m] (B, d+1) against W_m (rank, d+1, out) -> (B, rank, out), then the product over modalities.
        # The fusion is LMF's output layer: float32 under bf16 autocast (OutputLinear's reason; a few rank x d
        # products per sample, cheap).
        with float32_region(audio_h):
            a, v, t = (append_one(h.float()) for h in (audio_h, vision_h, text_h))
            fused = (torch.einsum("bd,rdo->bro", a, self.audio_factor)
                     * torch.einsum("bd,rdo->bro", v, self.video_factor)
                     * torch.einsum("bd,rdo->bro", t, self.text_factor))
            y = torch.einsum("r,bro->bo", self.fusion_weights[0], fused) + self.fusion_bias
        if self.task == "regression":
            y = y.squeeze(-1)
        return {"pred": y, "features": {"text": text_h, "audio": audio_h, "vision": vision_h, "fusion": fused}}

    def loss(self, outputs: dict, batch: dict) -> dict:
        task = task_loss(self.task, outputs["pred"], batch["label"])
        return {"total": task, "task": task}

    def param_groups(self, config) -> list[dict]:
        """MMSA's two Adam groups, chosen by name: the factors at `factor_lr`, the rest at `learning_rate`.

        Frozen parameters (the fusion weights under `mmsa_frozen_fusion_weights`) are left out.
        Both groups take the trainer's default `weight_decay`, as MMSA passes it to Adam once.
        """
        factors, rest = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (factors if name in FACTOR_NAMES else rest).append(param)
        return [{"name": "factors", "params": factors, "lr": config.factor_lr},
                {"name": "rest", "params": rest, "lr": config.learning_rate}]
