"""How the trainer picks its best epoch on valid: the valid `Loss` it compares, and when a value improves.

Both follow MMSA's trainers (thuiar/MMSA at a94e65d, src/MMSA/trains/singleTask/TFN.py and every other
`trains/*/*.py`; EMOE's trains/singleTask/EMOE.py is the same code), except the valid `Loss` under the default
`valid_loss: exact`:

- `exact` (default): the per-sample mean task loss over the split. It does not depend on the batch size.
- `mmsa`: MMSA's `do_test`, TFN.py:127-134: `eval_loss += loss.item()` per batch, `eval_loss / len(dataloader)`,
  `round(eval_loss, 4)`. A last partial batch weighs as much as a full one, and the rounding makes epochs whose
  losses agree to 4 decimals ties, which the margin below never takes as an improvement. MMSA's valid loader
  shuffles (data_loader.py:233-236, `shuffle=True` for every split), so which samples share its last batch is
  random each epoch; ours are the split's last samples in file order, so a run stays reproducible.

An improvement must beat the best by 1e-6 (TFN.py:74, `cur_valid <= best_valid - 1e-6` for a loss, `>= best_valid
+ 1e-6` for a score), and training stops once `epoch - best_epoch >= early_stop` (TFN.py:89), in both modes.
"""
from __future__ import annotations

import math

VALID_LOSS_RULES = ("exact", "mmsa")


def split_loss(batch_means: list, batch_sizes: list, rule: str) -> float:
    """A split's `Loss` from its batches' mean task losses (float64 tensors, or floats) and sizes, by `rule`."""
    if rule == "mmsa":
        return round(float(sum(batch_means)) / len(batch_means), 4)
    return float(sum(mean * n for mean, n in zip(batch_means, batch_sizes))) / sum(batch_sizes)


def improved(value: float, best: float | None, minimize: bool) -> bool:
    """Whether `value` is a new best (`best` None: nothing selected yet, and a NaN never is)."""
    if best is None:
        return not math.isnan(value)
    return value <= best - 1e-6 if minimize else value >= best + 1e-6
