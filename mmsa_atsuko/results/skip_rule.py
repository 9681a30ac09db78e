"""The skip rule every command that trains runs follows: run.py in process (`api.run`), a sweep and run.py --jobs
(`sweep.plan`). A run whose identity the store holds recorded ok is not trained again (`recorded_ok`), and what the
request asks that the recorded run did not run with is said (`apart_from_request`): its precision, its kernels and
the code of a model of your own, none of them part of a run's identity, so any of them alone skipped it as the same
run. `skip_reason` is the tail of run.py's skip line; `serves` says whether a record another process appended
while a call waited stands for the run asked (with --rerun only one where nothing differs).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..user_models.source import changed_files, source_changes
from .record import ran_at_other_precision, ran_with_other_kernels


def recorded_ok(recorded: dict[tuple, dict], run_identity: tuple) -> dict | None:
    """The ok record that stands for the run of `run_identity` among `recorded` (`latest_by_identity`): the run
    is skipped. None: it is trained (never recorded, or its latest record failed)."""
    record = recorded.get(run_identity, {})
    return record if record.get("status") == "ok" else None


@dataclass(frozen=True)
class Apart:
    """How a recorded run differs from a request in what is not part of a run's identity."""
    precision: str | None        # the precision it ran at, where not the one asked (`ran_at_other_precision`)
    kernels: str | None          # the kernels it ran with, where not those asked (`ran_with_other_kernels`)
    code: list[str]              # a model of your own edited since: one phrase per file (`source_changes`)
    # The same per file, (path, sha256 then, sha256 now) (`changed_files`: none for a source it cannot read), for a
    # line over many records, which names each file once.
    files: list[tuple[Path, str | None, str | None]]

    @property
    def nothing(self) -> bool:
        return not (self.precision or self.kernels or self.code)


def apart_from_request(record: dict, model: str, precision: str, deterministic: bool) -> Apart:
    """What `record`, a run of model `model`, ran with that differs from a request at `precision` with
    deterministic kernels or not, every one that does."""
    source = record.get("model_source")
    return Apart(ran_at_other_precision(record, precision), ran_with_other_kernels(record, deterministic),
                 source_changes(source, model), changed_files(source, model))


def serves(record: dict, *, model: str, precision: str, deterministic: bool, rerun: bool, began: datetime) -> bool:
    """Whether an ok record of the run's identity that another process appended while a call waited for the run
    stands for the request as a stored one would: without --rerun any does (the skip line then says what differs,
    `skip_reason`); with --rerun, which trains every recorded run again, only a run started after the call began,
    at the precision and with the kernels asked, and with the model's code as it is now."""
    if not rerun:
        return True
    try:
        started = datetime.fromisoformat(record.get("started_at") or "")
    except (TypeError, ValueError):
        return False
    # started_at is cut to the second: a run started in the call's second may have started before it, so it does not
    return (started.tzinfo is not None and started > began
            and apart_from_request(record, model, precision, deterministic).nothing)


def skip_reason(record: dict, model: str, precision: str, deterministic: bool, rerun: bool = False) -> str:
    """The skip line's tail: what differs from the recorded seed, every one that does. With --rerun a record is
    taken only where nothing differs (`serves`): it started after the call began."""
    if rerun:
        return " (it started after this call began, as asked: --rerun trains only runs recorded before)"
    apart = apart_from_request(record, model, precision, deterministic)
    ran, kernels, changed = apart.precision, apart.kernels, apart.code
    asked_kernels = "deterministic" if deterministic else "nondeterministic"
    how = ([f"at {ran}, not the {precision} asked"] if ran else []) + (
        [f"with {kernels} kernels, not the {asked_kernels} asked"] if kernels else [])
    if not how and not changed:
        return " (--rerun trains it again)"
    named = [name for name, differs in (("precision", ran), ("kernels", kernels), ("the code", changed)) if differs]
    verb = "are" if named[-1] == "kernels" else "is"
    subject = (f"{named[0]} {verb} not" if len(named) == 1
               else f"neither {', '.join(named[:-1])} nor {named[-1]} {verb}")
    withs = ([f"{asked_kernels} kernels"] if kernels else []) + (["the code as it is now"] if changed else [])
    trains = " ".join(([f"at {precision}"] if ran else []) + ([f"with {' and '.join(withs)}"] if withs else []))
    if not how:
        return f", but {'; '.join(changed)} ({subject} part of a run's identity: --rerun trains it {trains})"
    place = f"{',' if len(named) > 1 else ''} in its place, or give another --out"
    return (f", which ran {', and '.join(how)}" + (f", and {'; '.join(changed)}" if changed else "")
            + f" ({subject} part of a run's identity: --rerun trains it {trains}{place})")
