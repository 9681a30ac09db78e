"""MulT: Multimodal Transformer (Tsai et al., ACL 2019), as MMSA 2.2.1 implements it (no CTC).

    text (dropout) / audio / vision --Conv1d(d_m, d, k_m, padding 0)--> (T'_m, B, d)
    for each target t in (l, a, v), for each other source s:
        h_{t<-s} = CrossModalTransformer_{t<-s}(query t, key/value s)     nlevels layers
    h_t = SelfAttentionMemory_t(cat[h_{t<-s1}, h_{t<-s2}])                max(nlevels, 3) layers, width 2d
    last time step of each h_t -> concat (6d) -> residual head -> Linear(6d, out)

Faithful to MMSA (thuiar/MMSA:src/MMSA/models/singleTask/MULT.py, trains/singleTask/MULT.py,
models/subNets/transformers_encoder/):
- The encoders are the project's common TransformerEncoder (MulT's pre-LN blocks, final
  LayerNorm, Xavier-initialised attention projections) with no position embedding: MMSA builds
  them with `position_embedding=False` (`positions: none`; `table` and `from_input` add them).
  `attn_mask: true` applies MulT's causal future mask, also in the cross-modal stacks (key j
  is hidden from query i when j > i + |T_k - T_q|); there is no padding mask, so padded
  frames are attended, as in MMSA.
- Each cross-modal stack uses the attention dropout of its *source* modality (MulT's
  `get_network`: l<-a uses attn_dropout_a, a<-l uses attn_dropout); the memory stacks use
  `attn_dropout`.
- Projections are skipped when the input width already equals d (MMSA).
- Training, through the generic trainer and this config: Adam at `learning_rate` with no weight
  decay (MMSA's `weight_decay` key is unused by its MulT trainer, so it is 0 here), L1 loss,
  `grad_accum` = MMSA `update_epochs` (8), `grad_clip` by value, ReduceLROnPlateau(factor 0.1,
  patience = MMSA `patience`) on the valid loss.

Differences from MMSA (trainer-level; `grad_accum_rule: mmsa` does as MMSA, paper.yaml sets it):
- MMSA calls `clip_grad_value_` after every micro-batch's backward, on the partly accumulated
  gradient; `grad_accum_rule: sum` (the default) clips once, on the summed gradient, before each
  step. Both leave every gradient entry in [-grad_clip, grad_clip].
- MMSA drops the last partial accumulation group of each epoch; `sum` steps it.
- `use_bert: true` feeds `text_bert` through the common BertTextEncoder (`use_finetune` says
  whether BERT trains). MMSA's configs leave BERT off for MulT; so do ours.
Classification (MIntRec) uses a C-way output layer and cross-entropy, as MMSA's
`train_mode == "classification"` branch does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UsageError
from ..common.bert import TextInput
from ..common.heads import ResidualHead
from ..common.task import task_loss
from ..common.transformer import TransformerEncoder, check_heads
from ...registry import register_model

# MulT's short modality names and the batch keys / config suffixes they stand for.
MODALITIES = ("l", "a", "v")
BATCH_KEY = {"l": "text", "a": "audio", "v": "vision"}
ATTN_DROPOUT_KEY = {"l": "attn_dropout", "a": "attn_dropout_a", "v": "attn_dropout_v"}


@register_model("mult", tasks=("regression", "classification"), modality_subsets=True)
class MulT(nn.Module):
    def __init__(self, config, spec):
        super().__init__()
        self.task = spec.task
        self.text_dropout = config.text_dropout
        d, num_heads = config.dst_feature_dim_nheads
        check_heads(d, num_heads, "dst_feature_dim_nheads")
        self.dim = d

        self.text_input = TextInput(config, spec, "mult")
        text_dim = self.text_input.dim
        input_dims = {"l": text_dim, "a": spec.feature_dims["audio"], "v": spec.feature_dims["vision"]}

        # 1. Temporal Conv1d projections, no padding and no bias: kernel k shortens a sequence by k - 1.
        self.proj = nn.ModuleDict()
        for m in MODALITIES:
            if input_dims[m] == d:
                continue
            kernel = config[f"conv1d_kernel_size_{m}"]
            if spec.seq_lens[BATCH_KEY[m]] - kernel + 1 < 1:
                raise UsageError(f"conv1d_kernel_size_{m}={kernel} is longer than the {BATCH_KEY[m]} sequence "
                                 f"({spec.seq_lens[BATCH_KEY[m]]} steps)")
            self.proj[m] = nn.Conv1d(input_dims[m], d, kernel_size=kernel, padding=0, bias=False)

        def encoder(width: int, layers: int, attn_dropout: float) -> TransformerEncoder:
            return TransformerEncoder(
                embed_dim=width, num_heads=num_heads, layers=layers, attn_dropout=attn_dropout,
                relu_dropout=config.relu_dropout, res_dropout=config.res_dropout,
                embed_dropout=config.embed_dropout, attn_mask=config.attn_mask,
                positions=config.positions)

        # 2. Six cross-modal stacks, keyed "l_with_a" = text queries attending to audio.
        self.cross = nn.ModuleDict({
            f"{t}_with_{s}": encoder(d, config.nlevels, config[ATTN_DROPOUT_KEY[s]])
            for t in MODALITIES for s in MODALITIES if s != t
        })
        # 3. Three self-attention memory stacks over the 2d-wide concatenation (MulT: at least 3 layers).
        self.memory = nn.ModuleDict({
            t: encoder(2 * d, max(config.nlevels, 3), config.attn_dropout) for t in MODALITIES
        })
        # 4. Residual block and output layer on the 6d concatenation of last steps.
        self.head = ResidualHead(6 * d, spec.num_classes, config.output_dropout)

    def forward(self, batch: dict) -> dict:
        text = self.text_input(batch)
        raw = {"l": F.dropout(text, p=self.text_dropout, training=self.training),
               "a": batch["audio"], "v": batch["vision"]}
        seq = {}
        for m in MODALITIES:
            x = raw[m].transpose(1, 2)                                     # (B, d_m, T_m)
            if m in self.proj:
                x = self.proj[m](x)                                        # (B, d, T'_m)
            seq[m] = x.permute(2, 0, 1)                                    # (T'_m, B, d), sequence-first

        last = {}
        for t in MODALITIES:
            crossed = [self.cross[f"{t}_with_{s}"](seq[t], seq[s], seq[s]) for s in MODALITIES if s != t]
            last[t] = self.memory[t](torch.cat(crossed, dim=-1), last_only=True)   # (B, 2d): the last step
        fused = torch.cat([last[m] for m in MODALITIES], dim=-1)          # (B, 6d)
        _, y = self.head(fused)
        if self.task == "regression":
            y = y.squeeze(-1)
        return {"pred": y, "features": {"text": last["l"], "audio": last["a"], "vision": last["v"],
                                        "fusion": fused}}

    def loss(self, outputs: dict, batch: dict) -> dict:
        task = task_loss(self.task, outputs["pred"], batch["label"])
        return {"total": task, "task": task}
