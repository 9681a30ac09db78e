"""What a run folder's `last.pt` holds and how it is restored: the state after the last finished epoch
(model, the buffers state_dict leaves out, optimizer, scheduler, model selection, history and every
random stream), so that `trainer.fit(..., resume=True)` continues a run that died and ends exactly where
the uninterrupted run would have on the CPU. Apart from the loop because it is the one part of training
that reads a file a run folder may have been handed (`resume_checks` holds the state to this run's).
"""
from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import torch

from ..atomic import disk_of, open_new, os_error_of, replace_with
from ..safe_checkpoint import load_weights
from ..errors import DataError, StateNotResumable, one_line
from .resume_checks import check_training_state

FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)     # EFBIG: the file size limit (ulimit -f) reached


def replace_in_run_folder(path: Path, write) -> None:
    """`write(f)` to a binary file, then rename it over `path`: a kill leaves the old file or the new one, never
    half. One fixed temporary name: only this run writes its folder, so the next write takes it over; what is
    there is removed first and the file opened with `open_new`, so a link planted at the name (a shared folder's)
    is never written through."""
    def write_file(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)
        with open_new(tmp, "wb") as f:
            write(f)
    try:
        replace_with(path, write_file, tmp=path.with_name(f".{path.name}.tmp"))
    except (OSError, RuntimeError) as e:       # RuntimeError: torch.save's, raised from the OSError
        cause = os_error_of(e)
        if cause is None:
            raise
        fix = (f"free space on the disk mounted at {disk_of(path.parent)}" if cause.errno in FULL_DISK
               else f"fix {path.parent}")
        # A failed run's state: the folder stays .partial, each file as the last write that finished left it.
        raise DataError(f"could not write {path} ({cause.strerror or one_line(cause)}): {fix}, or train into "
                        f"another --out; the run's folder stays, for --resume to continue") from None


def _rng_states(generator: torch.Generator, device: torch.device) -> dict:
    """Every random stream training draws from, as tensors and plain containers (weights_only loads them)."""
    numpy = np.random.get_state(legacy=False)
    numpy["state"]["key"] = torch.from_numpy(numpy["state"]["key"].astype(np.int64))
    return {"torch": torch.get_rng_state(), "numpy": numpy, "python": random.getstate(),
            "batch_order": generator.get_state(),
            # The run's own GPU's stream, not every GPU's (get_rng_state_all): restored by position, that list gave
            # a run resumed on another GPU (a sweep's workers take devices round-robin) that GPU's unused stream.
            "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else None}


def _set_rng_states(states: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    numpy["state"]["key"] = numpy["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(numpy)
    random.setstate(states["python"])
    generator.set_state(states["batch_order"])
    cuda = states["cuda"]
    if cuda and device.type == "cuda":        # onto the GPU the run trains on now, whichever it trained on before
        # One state: the run's GPU's. Several: an older last.pt's get_rng_state_all, every GPU's by position, of
        # which the run's was the one it resumes on if it resumes on the same GPU (what that toolkit restored).
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_rng_state(cuda[0] if len(cuda) == 1 else cuda[index], device)


def save_training_state(path: Path, model, optimizer, scheduler, generator, device, epoch: int, history: list,
                        best: tuple) -> None:
    """`last.pt` after `epoch`; `best` is (value, epoch, CPU weights, valid metrics) of model selection.
    The epochs without improvement are `epoch - best epoch`, so they need no entry of their own."""
    value, best_epoch, weights, valid = best
    persistent = model.state_dict()
    state = {
        "epoch": epoch, "history": history, "model": persistent,
        # Buffers left out of state_dict (and best.pt) that training still carries, e.g. Self-MM's labels.
        "buffers": {k: v for k, v in model.named_buffers() if k not in persistent},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
        # The best weights are this epoch's weights when it was the best: stored once.
        "best": {"value": value, "epoch": best_epoch, "valid": valid,
                 "model": None if best_epoch == epoch else weights},
        "rng": _rng_states(generator, device),
    }
    replace_in_run_folder(path, lambda f: torch.save(state, f))


def load_training_state(path: Path, model, optimizer, scheduler, generator, device) -> tuple:
    """Restore what `save_training_state` saved; return (epoch, history, best) as it took them."""
    def refuse(why: str):
        return StateNotResumable(f"{path} is not a training state this toolkit wrote ({why}); remove the run's "
                                 f"folder or run without --resume")

    try:      # checked, then torch.load(weights_only=True): tensors and plain containers, never code
        state = load_weights(path)
    except Exception as e:          # garbage, a pickle with code, another file: one line, not a traceback
        raise refuse(type(e).__name__) from None
    try:      # a .partial folder may be someone else's: its state must be this run's (resume_checks)
        check_training_state(state, model, optimizer, scheduler, generator)
    except ValueError as e:
        raise refuse(str(e)) from None
    epoch = state["epoch"]
    if hasattr(model, "on_epoch_end"):        # Python attributes first: the tensors below overwrite theirs
        model.on_epoch_end(epoch)
    try:      # what the checks cannot see (a numpy state's contents) is one line too
        model.load_state_dict(state["model"])
        for name, value in state["buffers"].items():
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, value.to(device))
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        _set_rng_states(state["rng"], generator, device)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as e:
        raise refuse(f"{type(e).__name__} restoring it") from None
    b = state["best"]
    weights = state["model"] if b["epoch"] == epoch else b["model"]
    return epoch, state["history"], (b["value"], b["epoch"], weights, b["valid"])
