"""Training objective (paper §3.3, Eq. 10-12; docs/atsuko.md §11).

    (10) L_task = L_full + lambda_u L_uni + lambda_b L_bi
         L_full = crit(y_hat, y), L_uni = (1/M) sum_m crit(y_hat_m, y), L_bi = (1/M) sum_m crit(y_hat_{-m}, y)
    (11) Ent(p) = (1/B) sum_b N sum_i p_bi log p_bi         (EMOE entropy_balance, N = #experts)
         L_ent^mod = Ent(w), L_ent^band = (1/M) sum_m Ent(w^b_m)   (unmasked w^b)
    (12) L = L_task + lambda_ent (L_ent^mod + L_ent^band) + lambda_c L_comp + lambda_d L_d
         (DECISION, §11: one lambda_ent for both terms; `lambda_ent_band` can weight the band
         term on its own, and by default it follows lambda_ent)

crit is L1 for regression and cross-entropy for classification.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-9
ENTROPY_NORMS = ("emoe", "log_m")        # routing_entropy's cases, as configs/atsuko.yaml checks: lists them


def per_sample_loss(task: str, prediction: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The task criterion without reduction, (B,): |y_hat - y| (regression) or CE (classification).

    `prediction` is (B,) or (B, 1) for regression, (B, C) logits for classification.
    """
    if task == "regression":
        return (prediction.reshape(-1) - label.reshape(-1).to(prediction.dtype)).abs()
    if task == "classification":
        return F.cross_entropy(prediction, label.long(), reduction="none")
    raise ValueError(f"unknown task {task!r}")


def routing_entropy(weights: torch.Tensor, norm: str = "emoe") -> torch.Tensor:
    """Eq. 11: the scaled negative entropy of routing weights (B, N), averaged over the batch.

    `emoe`:  N sum_i p log p, range [-N log N, 0]; minimising it pushes p towards uniform.
    `log_m`: sum_i p log p / log N = -H / log N, range [-1, 0].
    p is clamped at 1e-9 inside the log (EMOE).
    """
    num_experts = weights.shape[-1]
    neg_entropy = (weights * torch.log(weights.clamp_min(EPS))).sum(-1)        # (B,) = -H
    if norm == "emoe":
        return (num_experts * neg_entropy).mean()
    if norm == "log_m":
        return (neg_entropy / math.log(num_experts)).mean()
    raise ValueError(f"entropy_norm must be one of {ENTROPY_NORMS}, got {norm!r}")


def weighted(weight: float, term: torch.Tensor) -> torch.Tensor:
    """weight * term; at weight 1.0 the term itself, which is the same bits (1.0 * x is x exactly),
    without the multiply and its backward (two launches)."""
    return term if weight == 1.0 else weight * term


def total_loss(terms: dict, lambda_uni: float, lambda_bi: float, lambda_ent: float, lambda_ent_band: float,
               lambda_comp: float, lambda_distill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 10 and Eq. 12 from the named terms present in `terms` -> (L_task, L).

    Absent terms (a switched-off module) contribute nothing: 'bi' and 'comp' without MCM,
    'distill' without distillation, 'ent_band' without SBN.
    """
    task = terms["task"] + weighted(lambda_uni, terms["uni"])
    if "bi" in terms:
        task = task + weighted(lambda_bi, terms["bi"])                         # Eq. 10
    total = task + weighted(lambda_ent, terms["ent_mod"])                      # Eq. 12
    if "ent_band" in terms:
        total = total + weighted(lambda_ent_band, terms["ent_band"])
    if "comp" in terms:
        total = total + weighted(lambda_comp, terms["comp"])
    if "distill" in terms:
        total = total + weighted(lambda_distill, terms["distill"])
    return task, total
