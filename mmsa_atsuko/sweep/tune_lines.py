"""What a tune says as it goes: its planning line (before torch), how many trials counted before this call, what
becomes of a trial its process died in, and one line per trial told (its outcome, the count, the best so far)."""
from __future__ import annotations

import math

from .plan import data_to_read
from .sweep_file import Setting


def interrupted_line(study_name: str, number: int, before: int, trials: int) -> str:
    """What becomes of trial `number`, running when a tune died, whose queued parameters run as the new trial after
    `before` (the trials done, and those queued ahead of it): in this call only where `trials` goes past it."""
    line = f"[{study_name}] trial {number} was running when an earlier tune stopped: "
    if before < trials:
        return line + "its parameters run again as a new trial"
    return (line + f"it does not count, and its parameters are kept to run again as a new trial, which --trials "
            f"{trials} leaves no room for: give --trials {before + 1} or more")


def done_before(done: int, trials: int) -> str:
    """How many trials counted before this call, beside `trials` (--trials): "9/8 trials done" would read as a slip."""
    if done < trials:
        return f"{done}/{trials} trials done before this call"
    return (f"{done} trials done before this call, --trials {trials}: no trial to run (give --trials {done + 1} or "
            f"more to search on)")


def planning_line(study_name: str, setting: Setting, where: str) -> str:
    """The tune's first line, before torch: what it reads before the study opens, so the wait has a reason."""
    return (f"[{study_name}] planning the tune: reading the config of {setting.model}, its search space {where} and "
            f"the data of {data_to_read([setting])}")


def progress_line(study, name: str, number: int, result: dict, done: int, trials: int, key: str) -> str:
    what = {"complete": f"valid {key} {result.get('value', math.nan):.4f}", "pruned": result.get("error", "pruned"),
            }.get(result.get("state"), f"FAILED: {result.get('error', '?')}")
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no best yet"
    return (f"[{name}] trial {number}: {what} ({result.get('seconds', 0):.1f}s) | {done}/{trials} trials done, "
            f"{best}")
