"""The task criterion most models share: L1 for regression (MMSA, EMOE), cross-entropy for classification."""
import torch
import torch.nn.functional as F


def task_loss(task: str, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean L1 between (B,) predictions and labels, or cross-entropy of (B, C) logits."""
    if task == "regression":
        return F.l1_loss(pred.reshape(-1), label.reshape(-1).to(pred.dtype))
    if task == "classification":
        return F.cross_entropy(pred, label.long())
    raise ValueError(f"unknown task {task!r}")
