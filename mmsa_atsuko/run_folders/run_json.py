"""Reading a run folder's run.json: the run identity it names and the attempts (processes) that worked in it.

A `.partial` folder may be anyone's in a shared results folder, so run.json is read as hostile (`_run_json`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..atomic import read_small_file
from ..data.conditions import folder_condition_key
from ..errors import ResumeRefused
from .layout import RUN_IDENTITY

log = logging.getLogger("mmsa_atsuko")

MAX_RUN_JSON = 1 << 20           # a run.json names an identity and its attempts: a few hundred bytes each


def _run_json(folder: Path) -> dict:
    """The run.json of a `.partial` folder, which may be anyone's in a shared results folder: never read
    through a link (one to /dev/zero filled memory), from a named pipe (it blocked every run), past
    MAX_RUN_JSON or deeper than the JSON reader goes; a ValueError or OSError for anything else."""
    raw = read_small_file(folder / RUN_IDENTITY, MAX_RUN_JSON)
    try:
        found = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("too deep") from None
    if not isinstance(found, dict):
        raise ValueError("not an object")
    return found


def identity_of(folder: Path) -> tuple | None:
    """The run identity a `.partial` folder names, or None (a folder of an older version, or one being removed).
    Its condition is read as its record's would be (`folder_identity`): a drop=T run's folder made before text_rows
    was marked (its first epochs zeroed fewer text rows than today) names `drop=T,text_drop=older`, and a
    missing-rate run's made before text_spared was, on data not known to be BERT text (its first epochs spared
    the first and last row of every text), `missing_rate=R,text_missing=older`: no run of today's continues it."""
    try:
        found = _run_json(folder)
        identity = tuple(found["identity"])
        return folder_identity(identity, found.get("condition"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def folder_identity(identity: tuple, stored) -> tuple:
    """The identity a run folder's run.json names: `identity` (results.run_identity) with its condition's key
    read with the marks of its `condition` block `stored` (None: no marks, as an older toolkit's run.json kept
    none), as `condition_of` reads a record's, the identity's data id, dataset and aligned flag standing for
    the record's (`conditions.folder_condition_key`)."""
    if len(identity) != 7:               # no condition's key: the plain condition, which no rule changed
        return identity
    dataset, aligned, data, key = identity[1], identity[2], identity[5], identity[6]
    return identity[:6] + (folder_condition_key(key, stored, data=data, dataset=dataset, aligned=aligned),)


def attempts_of(folder: Path) -> list[dict]:
    """The attempts at the run in a `.partial` folder, oldest first: each process that worked in it
    (the first start, then each --resume) as `run_folder` was given it, {"git_commit": ..., "started_at": ...,
    "torch_threads": ..., "precision": ..., "deterministic": ...}. A folder that does not list them (one of an older
    version, or a damaged run.json) counts as one attempt of unknown code, threads and protocol, so that a resumed
    run never claims one commit made all of it; a field an older version did not note is None."""
    unknown = [dict.fromkeys(ATTEMPT_FIELDS)]
    try:
        attempts = _run_json(folder)["attempts"]
    except (OSError, ValueError, KeyError, TypeError):
        return unknown
    if not (isinstance(attempts, list) and attempts and all(
            isinstance(a, dict) and all(_is(a.get(k), kind) for k, kind in ATTEMPT_FIELDS.items())
            and _threads_or_none(a.get("torch_threads")) for a in attempts)):
        return unknown
    return [{k: a.get(k) for k in ATTEMPT_FIELDS} for a in attempts]


# What an attempt notes, and the type of each value (None: not noted, by an older version).
ATTEMPT_FIELDS = {"git_commit": str, "started_at": str, "torch_threads": int, "precision": str, "deterministic": bool}


def _is(value, kind: type) -> bool:
    """Whether `value` may be an attempt's field of type `kind`; a string of one printable line only, as a refusal
    names the precision in its one line."""
    return value is None or type(value) is kind and (kind is not str or value.isprintable())


def _threads_or_none(value) -> bool:
    """Whether `value` may be an attempt's torch_threads: a count of 1 or more, or None (not noted)."""
    return value is None or (type(value) is int and value >= 1)


def warn_of_other_threads(folder: Path, earlier: list[dict], threads: int | None) -> None:
    """One warning line when this resume runs under another torch thread count than the attempt before it:
    float sums over 1 and 2 threads differ in the last bits, so the run may end a few last digits away from an
    uninterrupted one's. Not refused: the record names each attempt's threads (`earlier_attempts`)."""
    before = earlier[-1].get("torch_threads") if earlier else None
    if before is not None and threads is not None and before != threads:
        log.warning("resuming %s with %d torch thread(s), where its earlier epochs ran with %d: its metrics may "
                    "differ from an uninterrupted run's in the last digits (give --threads %d to match)",
                    folder, threads, before, before)


def refuse_other_protocol(folder: Path, earlier: list[dict], attempt: dict) -> None:
    """ResumeRefused (one line) when this resume would train at another precision or with other kernels than the
    earlier epochs did: bf16 and fp32, or deterministic and nondeterministic kernels, give other numbers for one seed,
    so a run of both matches neither and its record could name only one. An attempt that noted neither (an older
    version's) is not judged."""
    for before in earlier:
        then = (before.get("precision"), before.get("deterministic"))
        now = (attempt.get("precision"), attempt.get("deterministic"))
        if None not in then and None not in now and then != now:
            raise ResumeRefused(f"{folder} trained its first epochs {_protocol_text(*then)}, and this resume asks "
                                f"{_protocol_text(*now)}: resume it with {_protocol_flags(*then)} (one run at one "
                                f"precision and kernels), or run without --resume to train it afresh")


def _protocol_text(precision: str, deterministic: bool) -> str:
    return f"at {precision} with {'deterministic' if deterministic else 'nondeterministic'} kernels"


def _protocol_flags(precision: str, deterministic: bool) -> str:
    return f"--precision {precision}" + (" without --nondeterministic" if deterministic else " --nondeterministic")
