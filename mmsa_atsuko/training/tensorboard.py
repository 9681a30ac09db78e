"""Per-epoch scalars for TensorBoard (`run.py --tensorboard`); `tensorboard` is an optional extra."""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import UsageError

INSTALL = "pip install 'mmsa-atsuko[tensorboard]' (or: pip install -c constraints.txt tensorboard)"


def require_tensorboard() -> None:
    """UsageError (one line) when torch's SummaryWriter cannot be imported: checked before any data is read."""
    try:
        import torch.utils.tensorboard  # noqa: F401  (lazy: an optional extra, and slow to import)
    except ImportError:
        raise UsageError(f"--tensorboard needs the tensorboard package: {INSTALL}") from None


@contextlib.contextmanager
def tensorboard_log(folder: Path):
    """A `fit(on_epoch=...)` callback that writes each history entry to an event file in `folder`:
    train/<loss term>, valid/<metric> and lr/group<i>, at step = epoch."""
    from torch.utils.tensorboard import SummaryWriter    # lazy: an optional extra
    writer = None

    def write(entry: dict) -> None:
        nonlocal writer
        step = entry["epoch"]
        if writer is None:
            # A resumed run may have written epochs after its last checkpoint before it died: its
            # first epoch here hides every event from that step on, so no epoch shows twice.
            writer = SummaryWriter(str(folder), purge_step=step)
        for name, value in entry["train"].items():
            writer.add_scalar(f"train/{name}", value, step)
        for name, value in entry["valid"].items():
            writer.add_scalar(f"valid/{name}", value, step)
        for i, lr in enumerate(entry["lr"]):
            writer.add_scalar(f"lr/group{i}", lr, step)
        writer.flush()                  # an epoch is minutes apart; its scalars should show now

    try:
        yield write
    finally:
        if writer is not None:
            writer.close()
