"""What the trainer scores, in float32 whatever the precision: the model's `pred`, and a word when it is constant
(one value, or one predicted class).

Under `--precision bf16` a model's `pred` could come out of autocast in bf16 (8 significant bits): the loss,
the metrics and predictions_test.csv then saw numbers rounded to 1/64 or coarser (TFN on SIMS: 1-2 distinct
values over 32 test samples). The toolkit's models compute their output layers in float32
(`models.common.heads.OutputLinear`); `float32_pred` makes the loss and metrics float32 for any model, a
model of one's own included.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger("mmsa_atsuko")


def float32_pred(outputs):
    """`outputs` (what `forward` returned) with a floating `pred` in float32; anything else as it is (the
    model contract's checks name what is wrong with it)."""
    pred = outputs.get("pred") if isinstance(outputs, dict) else None
    if not torch.is_tensor(pred) or not pred.is_floating_point() or pred.dtype == torch.float32:
        return outputs
    return {**outputs, "pred": pred.float()}


def warn_if_constant(pred: np.ndarray, split: str, who: str, label_names=None) -> bool:
    """One warning line when a split's predictions are all one value: a regression split's (Corr is then undefined
    and recorded as NaN) or a classification split's predicted class, the argmax of its (N, C) logits (TFN at the
    small preset's 4 epochs on 20-class MIntRec, which has only learnt a class prior). True when it warned. `who`:
    the run, as the line names it; `label_names`: the classes' names, for the line."""
    if pred.ndim == 2 and len(pred) >= 2:
        classes = pred.argmax(axis=1)
        if not np.all(classes == classes[0]):
            return False
        name = f" ({label_names[classes[0]]})" if label_names is not None and classes[0] < len(label_names) else ""
        log.warning("%s: all %d %s predictions are class %d%s, so the model tells no sample from another; train "
                    "longer (--max-epochs) or check the features", who, len(pred), split, int(classes[0]), name)
        return True
    if pred.ndim != 1 or len(pred) < 2 or not np.all(pred == pred[0]):
        return False
    log.warning("%s: all %d %s predictions are %.6g, so Corr is undefined (NaN) and the model tells no sample "
                "from another; train longer (--max-epochs) or check the features", who, len(pred), split,
                float(pred[0]))
    return True
