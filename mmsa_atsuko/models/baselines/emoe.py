"""EMOE: Modality-Specific Enhanced Dynamic Emotion Experts (Fang et al., CVPR 2025).

Follows the public code, fuyyyyy/EMOE (trains/singleTask/model/emoe.py, model/router.py,
trains/singleTask/EMOE.py, trains/utils/functions.py, config/config.json).
Modality order is EMOE's everywhere: l (text), v (vision), a (audio).

    router: w = softmax(W2 relu(normalize(W1 z)) / temperature)       (B, 3)
            z = flatten(cat[text, Align_v(vision), Align_a(audio)])   raw features, before any projection;
            Align_m = Linear(T_m, T_l) on the time axis, only when T_m != T_l (unaligned data)
    experts: x_m --Conv1d(d_m, d, k_m, no padding, no bias)--> shared Conv1d(d, d, 1)
             --TransformerEncoder_m (self-attention)--> last step h_m  (B, d)
    unimodal heads: r_m, logits_m = ResidualHead_m(h_m)
    fusion ("sum"): c = sum_m w_m h_m; c_proj, logits_c = ResidualHead_c(c)

Losses (EMOE.py), criterion = L1 (cross-entropy for classification):

    L = crit(logits_c, y) + 1/3 sum_m crit(logits_m, y)                    task, unimodal
        + 0.1 * N mean_b sum_m w_m log w_m                                  entropy balance, N = 3
        + 0.01 * mean_b mean_m (q_m - w_m)^2                                router target q (detached)
        + 0.1 * mean_b mean_f (softmax_f(c_proj) - softmax_f(sum_m w_m r_m).detach())^2   distillation
    q_m = (1 / (e_m + 0.1)) / sum_k (1 / (e_k + 0.1)),   e_m = (y - logits_m)^2 per sample

The four weights (EMOE hard-codes them) are config keys with EMOE's values as defaults.

Classification (MIntRec; EMOE publishes no code for it). DECISION: the per-sample error of
modality m is e_m = (1 - p_m(y))^2, where p_m(y) is the softmax probability that head m gives
the true class; it is the regression error with the prediction "probability of the true class"
and the target 1, so q keeps EMOE's form and its 0.1 smoothing on the same [0, 1] error scale.
Task and unimodal losses are cross-entropy; the distillation is unchanged (it acts on features).

Faithful to EMOE:
- The router's L2-normalisation sits between W1 and the ReLU; weights are softmaxed at
  temperature 0.1; the entropy clamps w at 1e-9 before both factors of w log w.
- The router reads the text BERT output before the text dropout; the experts read it after.
- Encoders are the common MulT TransformerEncoder with a causal mask (`attn_mask`);
  `positions: from_input` keeps the MulT quirk that a frame whose first channel is exactly
  0 gets no position embedding (after the bias-free convolutions: every all-padding frame).
- No padding mask anywhere; sequences run at their padded lengths, read from the data.
- Trainer settings in configs/emoe.yaml: one Adam at 1e-4 for everything (BERT included), no
  weight decay, no gradient clipping (EMOE's config lists grad_clip/weight_decay but its trainer
  never reads them), grad_accum 10, ReduceLROnPlateau(factor 0.5, patience 5), early stop 10.
- EMOE's released config trains on the aligned files (`need_data_aligned: true`): pass
  `--aligned` to reproduce it; the unaligned path is EMOE's too.

Differences from EMOE:
- Sequence lengths come from the data (`spec.seq_lens`), not from EMOE's hard-coded table for
  MOSI/MOSEI, so every dataset runs (EMOE's code raises for any other dataset name).
- An Align linear is built only when a modality's length differs from the text length; EMOE
  builds both whenever the data is unaligned (a Linear(T, T) where lengths coincide).
- EMOE's unused `encoder_l/v/a` convolutions are not built (they never receive a gradient).
- The trainer steps the last partial accumulation group of an epoch under the default
  `grad_accum_rule: sum`; EMOE drops it, as `grad_accum_rule: mmsa` does.
- The fusion is vectorised; EMOE loops over the batch (same values).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ..common.bert import TextInput
from ..atsuko.modality_router import ModalityRouter, PreAttentionInput
from ..common.heads import ResidualHead
from ..common.task import task_loss
from ..common.transformer import TransformerEncoder, check_heads
from ...registry import register_model

MODALITIES = ("l", "v", "a")                      # EMOE's order: router column 0 = text, 1 = vision, 2 = audio
BATCH_KEY = {"l": "text", "v": "vision", "a": "audio"}
ROUTER_KEY = {"l": "L", "v": "V", "a": "A"}       # PreAttentionInput's names
ATTN_DROPOUT_KEY = {"l": "attn_dropout", "v": "attn_dropout_v", "a": "attn_dropout_a"}
FUSION_METHODS = ("sum", "concat")
ERROR_SMOOTHING = 0.1                             # EMOE: 1 / (e + 0.1)
ENTROPY_CLAMP = 1e-9                              # EMOE entropy_balance


def per_sample_error(task: str, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """e (B,): squared error (regression, EMOE `eva_imp`) or (1 - p(true class))^2 (classification)."""
    if task == "regression":
        return (label.to(logits.dtype) - logits.reshape(-1)) ** 2
    p_true = logits.softmax(dim=-1).gather(1, label.long().unsqueeze(1)).squeeze(1)
    return (1.0 - p_true) ** 2


def router_target(errors: torch.Tensor) -> torch.Tensor:
    """EMOE's inverse-error target q (B, M) from per-sample errors (B, M): (1/(e+0.1)) normalised over M."""
    inverse = 1.0 / (errors + ERROR_SMOOTHING)
    return inverse / inverse.sum(dim=1, keepdim=True)


def entropy_balance(weights: torch.Tensor) -> torch.Tensor:
    """EMOE `entropy_balance`: mean over the batch of N sum_m w log w, with w clamped at 1e-9 first."""
    w = weights.clamp(min=ENTROPY_CLAMP)
    return (w.shape[1] * (w * w.log()).sum(dim=1)).mean()


def feature_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """EMOE `uni_distill`: MSE between softmaxes over the feature dimension, averaged over features and batch."""
    return ((student.softmax(dim=-1) - teacher.softmax(dim=-1)) ** 2).mean(dim=-1).mean()


@register_model("emoe", tasks=("regression", "classification"), modality_subsets=True)
class EMOE(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        if config.fusion_method not in FUSION_METHODS:
            raise UsageError(f"fusion_method must be one of {', '.join(FUSION_METHODS)}, got {config.fusion_method!r}")
        self.task = spec.task
        self.fusion_method = config.fusion_method
        self.text_dropout = config.text_dropout
        self.loss_weights = {"unimodal": config.loss_weight_unimodal, "entropy": config.loss_weight_entropy,
                             "router": config.loss_weight_router, "distill": config.loss_weight_distill}
        d, num_heads = config.dst_feature_dim_nheads
        check_heads(d, num_heads, "dst_feature_dim_nheads")
        out_dim = spec.num_classes

        self.text_input = TextInput(config, spec, "emoe")
        text_dim = self.text_input.dim
        input_dims = {"l": text_dim, "v": spec.feature_dims["vision"], "a": spec.feature_dims["audio"]}
        lengths = {m: spec.seq_lens[BATCH_KEY[m]] for m in MODALITIES}

        # Router on the raw features, time-aligned to the text length (EMOE transfer_v_ali / transfer_a_ali).
        self.router_input = PreAttentionInput({ROUTER_KEY[m]: lengths[m] for m in MODALITIES})
        router_dim = lengths["l"] * sum(input_dims.values())
        self.router = ModalityRouter(router_dim, len(MODALITIES), config.temperature)

        # Experts: Conv1d projection (skipped when d_m == d), one shared 1x1 conv, a transformer each.
        self.proj = nn.ModuleDict()
        for m in MODALITIES:
            if input_dims[m] == d:
                continue
            kernel = config[f"conv1d_kernel_size_{m}"]
            if lengths[m] - kernel + 1 < 1:
                raise UsageError(f"conv1d_kernel_size_{m}={kernel} is longer than the {BATCH_KEY[m]} sequence "
                                 f"({lengths[m]} steps)")
            self.proj[m] = nn.Conv1d(input_dims[m], d, kernel_size=kernel, padding=0, bias=False)
        self.encoder_c = nn.Conv1d(d, d, kernel_size=1, padding=0, bias=False)
        self.transformers = nn.ModuleDict({
            m: TransformerEncoder(
                embed_dim=d, num_heads=num_heads, layers=config.nlevels, attn_dropout=config[ATTN_DROPOUT_KEY[m]],
                relu_dropout=config.relu_dropout, res_dropout=config.res_dropout,
                embed_dropout=config.embed_dropout, attn_mask=config.attn_mask,
                positions=config.positions)
            for m in MODALITIES
        })

        self.unimodal_heads = nn.ModuleDict({m: ResidualHead(d, out_dim, config.output_dropout) for m in MODALITIES})
        fused_dim = d if self.fusion_method == "sum" else 3 * d
        self.fusion_head = ResidualHead(fused_dim, out_dim, config.output_dropout)

    def forward(self, batch: dict) -> dict:
        text = self.text_input(batch)
        raw = {"l": text, "v": batch["vision"], "a": batch["audio"]}
        weights = self.router(self.router_input({ROUTER_KEY[m]: raw[m] for m in MODALITIES}))   # (B, 3)

        raw["l"] = F.dropout(text, p=self.text_dropout, training=self.training)
        h, refined, logits = {}, {}, {}
        for m in MODALITIES:
            x = raw[m].transpose(1, 2)                                     # (B, d_m, T_m)
            if m in self.proj:
                x = self.proj[m](x)
            x = self.encoder_c(x).permute(2, 0, 1)                         # (T'_m, B, d), sequence-first
            h[m] = self.transformers[m](x, last_only=True)                 # last step, (B, d)
            refined[m], logits[m] = self.unimodal_heads[m](h[m])

        w = [weights[:, i:i + 1] for i in range(len(MODALITIES))]        # (B, 1) each, order l, v, a
        if self.fusion_method == "sum":
            fused = sum(w_m * h[m] for w_m, m in zip(w, MODALITIES))
            teacher = sum(w_m * refined[m] for w_m, m in zip(w, MODALITIES))
        else:                                                    # EMOE scales the concat by 3, not the teacher
            fused = torch.cat([w_m * h[m] for w_m, m in zip(w, MODALITIES)], dim=-1) * 3
            teacher = torch.cat([w_m * refined[m] for w_m, m in zip(w, MODALITIES)], dim=-1)
        fused_proj, logits_c = self.fusion_head(fused)

        pred = logits_c.squeeze(-1) if self.task == "regression" else logits_c
        return {"pred": pred, "logits_unimodal": logits, "modality_weights": weights,
                "fused_proj": fused_proj, "teacher": teacher.detach(),
                "features": {"text": h["l"], "vision": h["v"], "audio": h["a"], "fusion": fused},
                "export": {"modality_weights": weights.detach()}}

    def loss(self, outputs: dict, batch: dict) -> dict:
        label = batch["label"]
        task = task_loss(self.task, outputs["pred"], label)
        unimodal = torch.stack([task_loss(self.task, outputs["logits_unimodal"][m], label) for m in MODALITIES]).mean()

        weights = outputs["modality_weights"]
        errors = torch.stack([per_sample_error(self.task, outputs["logits_unimodal"][m], label)
                              for m in MODALITIES], dim=1)                 # (B, 3)
        target = router_target(errors).detach()
        router = ((target - weights) ** 2).mean(dim=1).mean()
        entropy = entropy_balance(weights)
        distill = feature_distillation(outputs["fused_proj"], outputs["teacher"])

        lw = self.loss_weights
        total = (task + lw["unimodal"] * unimodal + lw["entropy"] * entropy + lw["router"] * router
                 + lw["distill"] * distill)
        return {"total": total, "task": task, "unimodal": unimodal, "router": router,
                "entropy": entropy, "distill": distill}
