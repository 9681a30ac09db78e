"""TFN: Tensor Fusion Network (Zadeh et al., EMNLP 2017), as MMSA 2.2.1 implements it.

Audio and vision are averaged over time and encoded by `SubNet` (BatchNorm -> Dropout ->
3 x Linear+ReLU); text is read by a 1-layer LSTM whose final state goes through a Linear
(MMSA's `TextSubNet`). The three vectors, each with a 1 appended, are fused by their 3-way
outer product (Eq. 4 of the TFN paper), flattened, and passed through a 3-layer MLP.

Faithful to MMSA (thuiar/MMSA:src/MMSA/models/singleTask/TFN.py), with switches:
- `temporal_mean: padded` averages audio/vision over the whole padded time axis, padding
  included, like MMSA's `need_normalized`; `valid` averages only over the true frames.
- `output_range: [-3, 3]`: regression output is `sigmoid(x) * 6 - 3` on every dataset,
  SIMS included, as in MMSA (SIMS metrics clip to [-1, 1] afterwards); training on a dataset
  whose label_range it does not hold is refused (`check_training_data`).
- The text LSTM reads the padded sequence unpacked (MMSA); `text_packing: true` reads only
  the true frames, as packing would.
- MMSA's text dropout is dead (forced to 0 on a 1-layer LSTM); kept dead here.
- MMSA's optimizer skips `output_range`/`output_shift` by slicing `params[2:]`; here they are
  buffers, so every parameter the optimizer sees is trainable.
- `SubNet`'s BatchNorm cannot train on one sample (MMSA crashes there too): a training batch of
  one raises a UsageError that says to pick another batch size. Evaluation takes any batch.
Classification (MIntRec) uses a C-way final layer without the sigmoid, with cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ..common.checks import require_temporal_mean_mode, require_text_features
from ..common.heads import OutputLinear
from ..common.pooling import masked_mean
from ..common.rnn import LSTMEncoder
from ..common.task import task_loss
from ...registry import register_model


class SubNet(nn.Module):
    """Pre-fusion network for a time-averaged modality vector."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_size)
        self.drop = nn.Dropout(dropout)
        self.linear_1 = nn.Linear(in_size, hidden_size)
        self.linear_2 = nn.Linear(hidden_size, hidden_size)
        self.linear_3 = nn.Linear(hidden_size, hidden_size)

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            # torch's own error ("Expected more than 1 value per channel") names neither model nor fix
            raise UsageError("tfn and lmf cannot train on a batch of one sample: their BatchNorm needs two or "
                             "more; the training split leaves one sample in its last batch, so pick another "
                             "batch_size (-c batch_size=N)")
        x = self.drop(self.norm(x))
        x = F.relu(self.linear_1(x))
        x = F.relu(self.linear_2(x))
        return F.relu(self.linear_3(x))


def temporal_mean(x: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, L, D) -> (B, D): over all L steps (`padded`, MMSA) or over the true frames (`valid`)."""
    return x.mean(dim=1) if mode == "padded" else masked_mean(x, mask)


def fusion_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, as F.dropout, drawn with `rand_like` instead of `bernoulli_`.

    The fusion vector is huge (MOSI: 32 x 140,481 per batch) and CPU `bernoulli_` draws one
    element at a time: this form takes half the time of F.dropout forward+backward there.
    """
    if not training or p == 0.0:
        return x
    return x * ((torch.rand_like(x) >= p) * (1.0 / (1.0 - p)))


def append_one(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.new_ones(x.shape[0], 1), x], dim=1)


@register_model("tfn", tasks=("regression", "classification"), modality_subsets=True)
class TFN(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        require_text_features(spec, "tfn")
        require_temporal_mean_mode(config)
        self.config = config
        self.task = spec.task
        text_hidden, audio_hidden, vision_hidden = config.hidden_dims
        audio_drop, vision_drop, _text_drop_dead_in_mmsa, post_drop = config.dropouts
        self.audio_subnet = SubNet(spec.feature_dims["audio"], audio_hidden, audio_drop)
        self.vision_subnet = SubNet(spec.feature_dims["vision"], vision_hidden, vision_drop)
        self.text_lstm = LSTMEncoder(spec.feature_dims["text"], text_hidden)
        self.text_out = nn.Linear(text_hidden, config.text_out)

        fused_dim = (config.text_out + 1) * (vision_hidden + 1) * (audio_hidden + 1)
        self.post_fusion_dropout = post_drop
        self.post_fusion_layer_1 = nn.Linear(fused_dim, config.post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(config.post_fusion_dim, config.post_fusion_dim)
        self.post_fusion_layer_3 = OutputLinear(config.post_fusion_dim, spec.num_classes)
        lo, hi = config.output_range
        self.register_buffer("output_scale", torch.tensor(float(hi - lo)), persistent=False)
        self.register_buffer("output_shift", torch.tensor(float(lo)), persistent=False)

    def check_training_data(self, spec) -> None:
        """The sigmoid's range must hold the labels it is trained on. MMSA's (-3, 3) holds MOSI's and SIMS's, but
        a dataset of your own with labels in [-5, 5] trained a model that could never predict beyond 3, without a
        word. Checked before training only: a run trained so still loads for predict, explain and robustness."""
        if spec.task != "regression":
            return
        lo, hi = self.config.output_range
        low, high = spec.label_range
        if low < lo or high > hi:
            raise UsageError(f"tfn: output_range [{lo:g}, {hi:g}] cannot reach the labels of {spec.name} (label_range "
                             f"[{low:g}, {high:g}]): set -c output_range=[{low:g},{high:g}]")

    def forward(self, batch: dict) -> dict:
        audio_h = self.audio_subnet(temporal_mean(batch["audio"], batch["audio_mask"], self.config.temporal_mean))
        vision_h = self.vision_subnet(temporal_mean(batch["vision"], batch["vision_mask"], self.config.temporal_mean))
        text_lengths = batch["text_lengths"] if self.config.text_packing else None
        text_h = self.text_out(self.text_lstm(batch["text"], text_lengths))

        # Tensor fusion: [1;a] (x) [1;v] (x) [1;t], flattened in MMSA's (audio, vision, text) order.
        a, v, t = append_one(audio_h), append_one(vision_h), append_one(text_h)
        fusion = torch.einsum("ba,bv,bt->bavt", a, v, t).flatten(1)

        y = fusion_dropout(fusion, self.post_fusion_dropout, self.training)
        y = F.relu(self.post_fusion_layer_1(y))
        y = F.relu(self.post_fusion_layer_2(y))
        y = self.post_fusion_layer_3(y)            # float32 under bf16 autocast, and so the squash below
        if self.task == "regression":
            y = torch.sigmoid(y.squeeze(-1)) * self.output_scale + self.output_shift
        return {"pred": y, "features": {"text": text_h, "audio": audio_h, "vision": vision_h}}

    def loss(self, outputs: dict, batch: dict) -> dict:
        task = task_loss(self.task, outputs["pred"], batch["label"])
        return {"total": task, "task": task}
