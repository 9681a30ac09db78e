"""Self-MM: self-supervised multi-task learning (Yu et al., AAAI 2021), as MMSA 2.2.1 has it.

Network (thuiar/MMSA:src/MMSA/models/multiTask/SELF_MM.py):
- text: BERT's [CLS] vector (fine-tuned); audio and vision: an LSTM over the true frames
  (what MMSA's packing computes), final hidden state -> Dropout -> Linear (`AuViSubNet`);
- four 3-layer heads: the fusion head M on [text; audio; vision] and one unimodal head each
  for T, A, V. The first layer's ReLU output of each head is the feature ULGM works on.

Unimodal label generation, ULGM (thuiar/MMSA:src/MMSA/trains/multiTask/SELF_MM.py):
- every training sample gets generated labels y_T, y_A, y_V, initialised to its
  multimodal label y_M (SIMS's human unimodal labels are not used, as MMSA);
- after every training batch, the batch's detached features are stored per sample, and the
  positive / negative class centres of each head are recomputed over ALL training samples,
  from that head's own current labels (positive: > 0 with `exclude_zero`, else >= 0);
- from epoch 2, before the features are stored, the batch's labels are updated:
      delta_f = (d_fn - d_fp) / (d_fp + 1e-8)       d_* = L2 distance of the feature to a centre
      delta_s = (d_sn - d_sp) / (d_sp + 1e-8)       s in T, A, V
      alpha   = delta_s / (delta_f + 1e-8)
      y_hat_s = clamp(0.5 * alpha * y_M + 0.5 * (y_M + delta_s - delta_f), -H, H)
      y_s    <- (n - 1) / (n + 1) * y_s + 2 / (n + 1) * y_hat_s          n = current epoch
Loss: sum over M, T, A, V of mean(w * |y_hat - y|), w_M = 1, w_s = tanh(|y_s - y_M|) (so the
unimodal heads learn nothing in epoch 1, where y_s = y_M). `task` is plain L1 on M, which is
MMSA's valid "Loss". Optimizer: Adam with five parameter groups (`param_groups`).

Faithful to MMSA, with these fixes:
- ULGM's buffers are sized from the training split in `on_fit_start`. MMSA sizes them from
  the config's `train_samples`, which must be edited by hand to match the data.
- Only detached features are stored, and nothing keeps a batch's graph: MMSA appends the
  undetached outputs of every batch to a list for its training metrics, which keeps every
  graph of the epoch alive (about 14.5 GB RSS on MOSI-sized data on CPU).
- The buffers are non-persistent: they are training state of one fit, not weights, so the
  state dict (and any checkpoint) holds only parameters, and a freshly built model loads a
  checkpoint without having seen the data. `ulgm.label(head)` returns a head's labels.
- The five groups are picked by parameter NAME (module prefix `text_model.`, `audio_model.`,
  `video_model.`, and MMSA's no-decay substrings for BERT), and the trainer checks that they
  cover every trainable parameter exactly once.
- A class with no sample (e.g. no positive label) keeps its previous centre; MMSA's mean over
  an empty set is NaN and turns every generated label NaN.
- `AuViSubNet` reads the LAST layer's final state through the shared `LSTMEncoder`; MMSA's
  `final_states[0].squeeze()` breaks for more than one LSTM layer and for a batch of one.
- The text width is BERT's hidden size, read from the weights (MMSA's `text_out: 768`).
- MMSA's `t_bert_dropout` is declared but unused; left out. `save_labels` is not provided.
- The trainer steps the last partial accumulation group under the default `grad_accum_rule: sum`
  (MMSA discards it, as `grad_accum_rule: mmsa` does).
- BERT reads the batch's tokens only up to its longest text (`trim_to_longest_text`); MMSA
  feeds all padded positions. [CLS] is the same, at less cost.
The T/A/V predictions go out under `export`, so they land in the per-sample predictions file.
Regression only (MMSA's trainer asserts it): building it for a classification dataset fails
with one line from the registry.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common.bert import BertTextEncoder, trim_to_longest_text
from ..common.checks import require_bert_token_ids
from ..common.heads import OutputLinear
from ..common.rnn import LSTMEncoder
from ...registry import register_model

HEADS = ("fusion", "text", "audio", "vision")   # MMSA's label_map keys: M, T, A, V
UNIMODAL = HEADS[1:]
BERT_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")   # MMSA's substrings


class AuViSubNet(nn.Module):
    """Audio/vision encoder: LSTM over the true frames -> final state -> Dropout -> Linear."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.rnn = LSTMEncoder(in_size, hidden_size, num_layers=num_layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)    # MMSA reuses the LSTM dropout here
        self.linear = nn.Linear(hidden_size, out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.rnn(x, lengths)))


class PostHead(nn.Module):
    """Dropout -> Linear+ReLU (the ULGM feature) -> Linear+ReLU -> Linear(1)."""

    def __init__(self, in_dim: int, dim: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.layer_1 = nn.Linear(in_dim, dim)
        self.layer_2 = nn.Linear(dim, dim)
        self.layer_3 = OutputLinear(dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = F.relu(self.layer_1(self.dropout(x)))
        return feature, self.layer_3(F.relu(self.layer_2(feature))).squeeze(-1)


class ULGM(nn.Module):
    """Unimodal label generation: per-sample labels and features, class centres, momentum update.

    All state is in non-persistent buffers (they follow `.to(device)` but stay out of the
    state dict), sized by `reset(labels)` from the training split.
    """

    def __init__(self, feature_dims: dict, H: float, exclude_zero: bool):
        super().__init__()
        self.H = H
        self.exclude_zero = exclude_zero
        self.register_buffer("labels", torch.zeros(len(HEADS), 0), persistent=False)   # rows in HEADS order
        for m in HEADS:
            self.register_buffer(f"features_{m}", torch.zeros(0, feature_dims[m]), persistent=False)
            self.register_buffer(f"centre_pos_{m}", torch.zeros(feature_dims[m]), persistent=False)
            self.register_buffer(f"centre_neg_{m}", torch.zeros(feature_dims[m]), persistent=False)

    @property
    def num_samples(self) -> int:
        return self.labels.shape[1]

    def label(self, m: str) -> torch.Tensor:
        return self.labels[HEADS.index(m)]

    def feature(self, m: str) -> torch.Tensor:
        return getattr(self, f"features_{m}")

    def centres(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"centre_pos_{m}"), getattr(self, f"centre_neg_{m}")

    @torch.no_grad()
    def reset(self, labels: torch.Tensor) -> None:
        """Size everything for a split with these multimodal labels (N,); all heads start at y_M."""
        labels = labels.detach().to(torch.float32)
        self.labels = labels.unsqueeze(0).repeat(len(HEADS), 1)
        for m in HEADS:
            dim = self.feature(m).shape[1]
            setattr(self, f"features_{m}", labels.new_zeros(labels.shape[0], dim))
            setattr(self, f"centre_pos_{m}", labels.new_zeros(dim))
            setattr(self, f"centre_neg_{m}", labels.new_zeros(dim))

    @torch.no_grad()
    def update_labels(self, features: dict, index: torch.Tensor, epoch: int) -> None:
        """The label update for one batch (epoch >= 2), with the current centres."""
        def relative_distance(m: str) -> torch.Tensor:
            pos, neg = self.centres(m)
            d_p = torch.linalg.vector_norm(features[m] - pos, dim=-1)
            d_n = torch.linalg.vector_norm(features[m] - neg, dim=-1)
            return (d_n - d_p) / (d_p + 1e-8)

        y_m = self.label("fusion")[index]
        delta_f = relative_distance("fusion")
        for m in UNIMODAL:
            delta_s = relative_distance(m)
            alpha = delta_s / (delta_f + 1e-8)
            new = (0.5 * alpha * y_m + 0.5 * (y_m + delta_s - delta_f)).clamp(-self.H, self.H)
            row = self.labels[HEADS.index(m)]
            row[index] = (epoch - 1) / (epoch + 1) * row[index] + 2 / (epoch + 1) * new

    @torch.no_grad()
    def store_features(self, features: dict, index: torch.Tensor) -> None:
        for m in HEADS:
            self.feature(m)[index] = features[m].detach().to(self.feature(m).dtype)

    @torch.no_grad()
    def update_centres(self) -> None:
        """Class centres over all training samples, split by each head's own current labels."""
        for m in HEADS:
            y, f = self.label(m), self.feature(m)
            positive = y > 0 if self.exclude_zero else y >= 0
            for name, chosen in (("pos", positive), ("neg", y < 0)):
                chosen = chosen.to(f.dtype)
                count = chosen.sum()
                mean = (chosen @ f) / count.clamp(min=1)
                # An empty class keeps its previous centre (MMSA: NaN). torch.where, not an `if`,
                # so that no device-to-host sync happens on every batch.
                old = getattr(self, f"centre_{name}_{m}")
                setattr(self, f"centre_{name}_{m}", torch.where(count > 0, mean, old))

    @torch.no_grad()
    def step(self, features: dict, index: torch.Tensor, epoch: int) -> None:
        """MMSA's per-batch order: update labels (from epoch 2), store features, recompute centres."""
        if epoch > 1:
            self.update_labels(features, index, epoch)
        self.store_features(features, index)
        self.update_centres()


@register_model("self_mm", tasks=("regression",), modality_subsets=True)
class SelfMM(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        require_bert_token_ids(spec, "self_mm")
        self.config = config
        # Module names matter: param_groups picks the groups by these prefixes.
        self.text_model = BertTextEncoder(config.pretrained, config.use_finetune, reads_padding=False)
        self.audio_model = AuViSubNet(spec.feature_dims["audio"], config.a_lstm_hidden_size, config.audio_out,
                                      config.a_lstm_layers, config.a_lstm_dropout)
        self.video_model = AuViSubNet(spec.feature_dims["vision"], config.v_lstm_hidden_size, config.video_out,
                                      config.v_lstm_layers, config.v_lstm_dropout)
        text_dim = self.text_model.hidden_size
        self.heads = nn.ModuleDict({
            "fusion": PostHead(text_dim + config.audio_out + config.video_out, config.post_fusion_dim,
                               config.post_fusion_dropout),
            "text": PostHead(text_dim, config.post_text_dim, config.post_text_dropout),
            "audio": PostHead(config.audio_out, config.post_audio_dim, config.post_audio_dropout),
            "vision": PostHead(config.video_out, config.post_video_dim, config.post_video_dropout),
        })
        feature_dims = {"fusion": config.post_fusion_dim, "text": config.post_text_dim,
                        "audio": config.post_audio_dim, "vision": config.post_video_dim}
        self.ulgm = ULGM(feature_dims, config.H, config.exclude_zero)
        self.epoch = 1       # the epoch being trained, for ULGM's momentum; set by the hooks

    def forward(self, batch: dict) -> dict:
        text = self.text_model(trim_to_longest_text(batch["text_bert"]))[:, 0, :]   # [CLS]; trim: same features
        # Aligned data carries the text lengths as audio/vision lengths, which is what MMSA uses there.
        audio = self.audio_model(batch["audio"], batch["audio_lengths"])
        vision = self.video_model(batch["vision"], batch["vision_lengths"])
        inputs = {"fusion": torch.cat([text, audio, vision], dim=-1), "text": text, "audio": audio, "vision": vision}
        features, preds = {}, {}
        for m in HEADS:
            features[m], preds[m] = self.heads[m](inputs[m])
        return {
            "pred": preds["fusion"],
            "unimodal": {m: preds[m] for m in UNIMODAL},
            "features": features,
            "export": {f"pred_{m}": preds[m].detach() for m in UNIMODAL},
        }

    def loss(self, outputs: dict, batch: dict) -> dict:
        task = F.l1_loss(outputs["pred"], batch["label"])
        if not self.training:
            # Validation and test: M against the true label only, as MMSA's do_test.
            return {"total": task, "task": task}
        if self.ulgm.num_samples == 0:
            raise RuntimeError("self_mm: call on_fit_start(train_split) before training; ULGM's labels are "
                               "sized from the training split")
        index = batch["index"]       # training batches index the training split, as ULGM's buffers do
        y_m = self.ulgm.label("fusion")[index]
        losses = {"fusion": (outputs["pred"] - y_m).abs().mean()}
        for m in UNIMODAL:
            y_s = self.ulgm.label(m)[index]
            weight = torch.tanh((y_s - y_m).abs())
            losses[m] = (weight * (outputs["unimodal"][m] - y_s).abs()).mean()
        total = sum(losses.values())
        return {"total": total, "task": task, **{f"loss_{m}": v for m, v in losses.items()}}

    # --- trainer hooks ---------------------------------------------------------------------------------

    def on_fit_start(self, train_split) -> None:
        self.ulgm.reset(train_split.tensors["label"].to(self.ulgm.labels.device))
        self.epoch = 1

    def on_train_batch_end(self, batch: dict, outputs: dict) -> None:
        self.ulgm.step(outputs["features"], batch["index"], self.epoch)

    def on_epoch_end(self, epoch: int) -> None:
        self.epoch = epoch + 1

    def param_groups(self, config) -> list[dict]:
        """MMSA's five Adam groups, chosen by parameter name."""
        spec = {
            "bert_decay": (config.learning_rate_bert, config.weight_decay_bert),
            "bert_no_decay": (config.learning_rate_bert, 0.0),
            "audio": (config.learning_rate_audio, config.weight_decay_audio),
            "video": (config.learning_rate_video, config.weight_decay_video),
            "other": (config.learning_rate_other, config.weight_decay_other),
        }
        params = {name: [] for name in spec}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("text_model."):
                group = "bert_no_decay" if any(nd in name for nd in BERT_NO_DECAY) else "bert_decay"
            elif name.startswith("audio_model."):
                group = "audio"
            elif name.startswith("video_model."):
                group = "video"
            else:
                group = "other"
            params[group].append(p)
        return [{"name": name, "params": params[name], "lr": lr, "weight_decay": wd}
                for name, (lr, wd) in spec.items()]
