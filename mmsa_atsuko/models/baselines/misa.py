"""MISA: Modality-Invariant and -Specific Representations (Hazarika et al., ACM MM 2020), as MMSA 2.2.1 has it.

Pipeline (thuiar/MMSA:src/MMSA/models/singleTask/MISA.py):
- text: BERT (fine-tuned) last hidden states, averaged over the attention mask;
- audio, vision: a 2-layer bidirectional LSTM stack with a LayerNorm between the layers and
  the hidden size equal to the raw feature size; the utterance vector is both layers' final
  states, (B, 4 * dim);
- each modality is projected to `hidden_size` (Linear, ReLU, LayerNorm), then split into a
  private code (one Sigmoid encoder per modality) and a shared code (one Sigmoid encoder for
  all three); private + shared is decoded back to the projection (reconstruction);
- the six codes go through a 1-layer `nn.TransformerEncoder` (2 heads, torch's defaults),
  are concatenated, and a 2-layer MLP predicts.

Losses (thuiar/MMSA:src/MMSA/trains/singleTask/MISA.py):
    total = task + diff_weight * L_diff + sim_weight * L_cmd + recon_weight * L_recon
- task: MSE for regression (cross-entropy for classification). `task` is that criterion on
  the prediction alone, which is exactly MMSA's valid "Loss" for MISA (it leaves the
  auxiliary terms out), so model selection on valid Loss matches MMSA's;
- L_diff: soft orthogonality, 3 private-shared pairs + 3 private-private pairs (`diff_loss`);
- L_cmd: central moment discrepancy of order 5 between the 3 pairs of shared codes, / 3;
- L_recon: MSE between reconstruction and projection, mean over the 3 modalities.
The optimizer is plain Adam at `learning_rate` for everything, BERT included, with no weight
decay: MMSA's MISA trainer never passes its configured `weight_decay` to Adam, so our config
sets 0. Gradients are clipped by value (`grad_clip`) and accumulated over 2 batches
(MMSA `update_epochs`).

Faithful to MMSA, with these choices:
- `av_lengths: own` (default) reads audio and vision over their OWN lengths. MMSA packs them
  with the text token count (CLS and SEP included) even on unaligned data, so it reads only
  the first ~L_text frames of a 375-frame audio track; the MIntRec authors say this is meant
  as an "alignment" (thuiar/MIntRec#5). `av_lengths: text` reproduces it (lengths clamped to
  the padded length, where MMSA would crash if the text were longer than the track).
- CMD's moment distance is `torch.linalg.vector_norm`, the same value as MMSA's
  `sum(...)**0.5` but with a zero (not NaN) gradient when two moments coincide exactly,
  which happens for every batch of one sample (all central moments are 0).
- Left out because MMSA computes them but never uses them with its shipped config
  (`use_cmd_sim: true`): the `sp_discriminator`, the adversarial `discriminator` (its
  `use_cmd_sim: false` path crashes in MMSA), and the unused `tlayer_norm`. Hence no
  `sp_weight`, `reverse_grad_weight`, `use_cmd_sim` keys. `rnncell` is LSTM only (MMSA's value).
- BERT reads the batch's tokens only up to its longest text (`trim_to_longest_text`); MMSA
  feeds all padded positions. The features of the real tokens are the same, at less cost.
- Under the default `grad_accum_rule: sum` the trainer clips once per optimizer step (on the
  summed micro-batch gradients) and steps the last partial accumulation group of an epoch;
  MMSA clips after every micro-batch and discards that group, as `grad_accum_rule: mmsa` does.
Classification (MIntRec) uses a C-way final layer and cross-entropy, as MMSA's trainer does
for `train_mode: classification`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ..common.bert import BertTextEncoder, trim_to_longest_text
from ..common.checks import require_bert_token_ids
from ..common.heads import OutputLinear
from ..common.rnn import BiLSTM
from ...registry import register_model

MODALITIES = ("text", "vision", "audio")   # MMSA's order for the codes, the fusion stack and the losses


# --- the auxiliary losses (MMSA trains/singleTask/MISA.py: CMD, DiffLoss, MSE) --------------------------


def cmd(x1: torch.Tensor, x2: torch.Tensor, n_moments: int) -> torch.Tensor:
    """Central moment discrepancy between two batches of codes (B, d) (Zellinger et al., 2017).

        ||mean(x1) - mean(x2)||_2 + sum_{k=2..n} ||E[(x1 - mean(x1))^k] - E[(x2 - mean(x2))^k]||_2

    Unnormalised, as MMSA (no division by the range of the activations).
    """
    mean1, mean2 = x1.mean(dim=0), x2.mean(dim=0)
    centred1, centred2 = x1 - mean1, x2 - mean2
    total = torch.linalg.vector_norm(mean1 - mean2)
    for k in range(2, n_moments + 1):
        total = total + torch.linalg.vector_norm(centred1.pow(k).mean(dim=0) - centred2.pow(k).mean(dim=0))
    return total


def diff_loss(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality between two batches of codes: mean((X1^T X2)^2).

    Each code is centred over the batch and divided by its row L2 norm (+1e-6). MMSA detaches
    the norm, so the gradient does not flow through the normalisation; kept.
    """
    x1 = x1.flatten(1) - x1.flatten(1).mean(dim=0, keepdim=True)
    x2 = x2.flatten(1) - x2.flatten(1).mean(dim=0, keepdim=True)
    x1 = x1 / (x1.norm(dim=1, keepdim=True).detach() + 1e-6)
    x2 = x2 / (x2.norm(dim=1, keepdim=True).detach() + 1e-6)
    return (x1.t() @ x2).pow(2).mean()


# --- the audio / vision encoder ------------------------------------------------------------------------


class LayerNormedBiLSTM(nn.Module):
    """MISA's 2-layer bidirectional LSTM with a LayerNorm on the first layer's outputs.

    MISA-specific (MMSA `extract_features`): the shared `LSTMEncoder` returns only the last
    layer's final state and has no normalisation between layers. Each layer reads the true
    frames only (`BiLSTM`, what MMSA's packed nn.LSTM computes). Returns both layers' final
    states in MMSA's order [h1 fwd, h2 fwd, h1 bwd, h2 bwd], (B, 4 * hidden).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.rnn1 = BiLSTM(dim, dim)
        self.norm = nn.LayerNorm(2 * dim)
        self.rnn2 = BiLSTM(2 * dim, dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out1, h1 = self.rnn1(x, lengths)
        _, h2 = self.rnn2(self.norm(out1), lengths)
        # h1, h2: (2 directions, B, dim) -> (B, 2, 2 * dim) -> (B, 4 * dim), as MMSA's cat/permute/view.
        return torch.cat([h1, h2], dim=2).permute(1, 0, 2).reshape(x.shape[0], -1)


def projection(in_dim: int, hidden: int) -> nn.Sequential:
    """Linear -> ReLU -> LayerNorm to the common size (MMSA `project_t/v/a`)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.LayerNorm(hidden))


@register_model("misa", tasks=("regression", "classification"), modality_subsets=True)
class MISA(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        require_bert_token_ids(spec, "misa")
        if config.av_lengths not in ("own", "text"):
            raise UsageError(f"av_lengths must be own or text, got {config.av_lengths!r}")
        if config.hidden_size % 2:
            raise UsageError("misa's fusion transformer has 2 heads: hidden_size must be even, "
                             f"got {config.hidden_size}")
        self.config = config
        self.task = spec.task
        hidden = config.hidden_size

        self.text_encoder = BertTextEncoder(config.pretrained, config.use_finetune, reads_padding=False)
        dims = spec.feature_dims
        self.vision_encoder = LayerNormedBiLSTM(dims["vision"])
        self.audio_encoder = LayerNormedBiLSTM(dims["audio"])

        self.project = nn.ModuleDict({
            "text": projection(self.text_encoder.hidden_size, hidden),
            "vision": projection(4 * dims["vision"], hidden),
            "audio": projection(4 * dims["audio"], hidden),
        })
        self.private = nn.ModuleDict({m: nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid()) for m in MODALITIES})
        self.shared = nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())
        self.recon = nn.ModuleDict({m: nn.Linear(hidden, hidden) for m in MODALITIES})

        # torch's defaults for everything MMSA leaves unset (feed-forward 2048, dropout 0.1, post-LN).
        layer = nn.TransformerEncoderLayer(d_model=hidden, nhead=2, dim_feedforward=2048, dropout=0.1)
        self.fusion_transformer = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fusion = nn.Sequential(
            nn.Linear(6 * hidden, 3 * hidden), nn.Dropout(config.dropout), nn.ReLU(),
            OutputLinear(3 * hidden, spec.num_classes),
        )

    def _av_lengths(self, batch: dict, modality: str, text_lengths: torch.Tensor) -> torch.Tensor:
        if self.config.av_lengths == "own":
            return batch[f"{modality}_lengths"]
        # MMSA: the BERT token count, never more than the track's padded length.
        return text_lengths.long().clamp(max=batch[modality].shape[1])

    def forward(self, batch: dict) -> dict:
        text_bert = trim_to_longest_text(batch["text_bert"])       # same features, fewer padded tokens
        mask = text_bert[:, 1, :].to(torch.float32)
        text_lengths = mask.sum(dim=1)
        hidden_states = self.text_encoder(text_bert)
        # Mean of BERT's last layer over the real tokens (CLS and SEP included), as MMSA.
        utterance = {"text": (hidden_states * mask.unsqueeze(-1)).sum(dim=1) / text_lengths.clamp(min=1).unsqueeze(-1)}
        for m, encoder in (("vision", self.vision_encoder), ("audio", self.audio_encoder)):
            utterance[m] = encoder(batch[m], self._av_lengths(batch, m, text_lengths))

        orig = {m: self.project[m](utterance[m]) for m in MODALITIES}
        private = {m: self.private[m](orig[m]) for m in MODALITIES}
        shared = {m: self.shared(orig[m]) for m in MODALITIES}
        recon = {m: self.recon[m](private[m] + shared[m]) for m in MODALITIES}

        codes = torch.stack([private[m] for m in MODALITIES] + [shared[m] for m in MODALITIES], dim=0)  # (6, B, h)
        fused = self.fusion_transformer(codes)
        y = self.fusion(torch.cat(list(fused), dim=1))
        if self.task == "regression":
            y = y.squeeze(-1)
        return {"pred": y, "orig": orig, "private": private, "shared": shared, "recon": recon}

    def loss(self, outputs: dict, batch: dict) -> dict:
        if self.task == "regression":
            task = F.mse_loss(outputs["pred"], batch["label"])
        else:
            task = F.cross_entropy(outputs["pred"], batch["label"])
        private, shared = outputs["private"], outputs["shared"]
        t, v, a = MODALITIES
        diff = (diff_loss(private[t], shared[t]) + diff_loss(private[v], shared[v]) + diff_loss(private[a], shared[a])
                + diff_loss(private[a], private[t]) + diff_loss(private[a], private[v])
                + diff_loss(private[t], private[v]))
        n = self.config.cmd_moments
        sim = (cmd(shared[t], shared[v], n) + cmd(shared[t], shared[a], n) + cmd(shared[a], shared[v], n)) / 3.0
        recon = sum(F.mse_loss(outputs["recon"][m], outputs["orig"][m]) for m in MODALITIES) / 3.0
        c = self.config
        total = task + c.diff_weight * diff + c.sim_weight * sim + c.recon_weight * recon
        return {"total": total, "task": task, "diff": diff, "cmd": sim, "recon": recon}
