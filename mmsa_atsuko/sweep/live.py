"""Signs of life of runs in worker processes: a worker's console shows warnings only, and its epochs go to the
run's train.log alone, so a sweep's driver said nothing from its plan line to its first finished run (hours on real
data). It says where each run's train.log is as the run starts (`say_started`), and where the runs in hand stand
after a quiet while (`in_hand_line`: after `QUIET_S`, then less and less often, see `QUIET_MAX_S`)."""
from __future__ import annotations

import json

from ..run_folders import partial_dir

# How long a sweep with runs in workers stays silent before a still-training line, at first: a line a minute,
# however many workers, is no flood. Each such line in a row doubles the wait for the next, up to QUIET_MAX_S; a run
# that starts or ends sets it back (`LocalBackend.run`). A line a minute for as long as runs train was about 60
# near-identical lines an hour on real data; a line only where epoch counts changed would still be one a minute
# where epochs are short, and none for hours inside a long epoch, when a sign of life is wanted most.
QUIET_S = 60.0
QUIET_MAX_S = 900.0


def say_started(echo, run, run_id: str, out, device: str) -> None:
    """The line of a planned run whose training a worker starts: where its epochs go (`run_id`: the folder's, as the
    worker names it: a resumed run's is an earlier call's). Nothing for a tune's trial, which has no folder
    (nor for anything else that is not a planned run)."""
    if getattr(run, "trial", True) is None:
        echo(f"started {run.describe()} on {device}: its epochs go to {partial_dir(out, run_id) / 'train.log'}")


def in_hand_line(tasks, now: float) -> str:
    """One line on the runs in hand ((run, folder, out, began, handed) each): each one's epochs done, by its
    history.json (rewritten after each epoch), and how long it has trained. `folder`: the run_id of the folder the run
    works in, as its worker said when its training started (a resumed run's is an earlier call's), None for a trial,
    which has none: its epochs are not named. `began`: when its training started, None before that; `handed`: when
    its worker was given it. A worker's start-up (imports, its data) counted as the run's time: `0:00:08` before
    the first epoch of a run that trained in 1.3 s."""
    parts = []
    for run, folder, out, began, handed in tasks:
        trial = getattr(run, "trial", None)
        name = f"trial {trial['number']}" if trial is not None else run.describe() if hasattr(run, "describe") \
            else str(run)
        if began is None:
            parts.append(f"{name} (not training yet, handed to its worker {clock(now - handed)} ago)")
            continue
        history = None if trial is not None or folder is None else partial_dir(out, folder) / "history.json"
        epochs = None if history is None else _epochs_done(history)
        done = "" if epochs is None else f"{epochs} epoch{'' if epochs == 1 else 's'} done, "
        parts.append(f"{name} ({done}training {clock(now - began)})")
    return "still training: " + "; ".join(parts)


def _epochs_done(history) -> int | None:
    """The epochs a run's history.json lists, or None where there is none yet (or it cannot be read)."""
    try:
        with open(history, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return None
    return len(entries) if isinstance(entries, list) else None


def clock(seconds: float) -> str:
    """h:mm:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
