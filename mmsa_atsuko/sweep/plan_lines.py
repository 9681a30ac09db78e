"""What a sweep says of its plan before any run starts: the planning line (what it reads, so the wait before the
plan has a reason), the plan line (runs, settings, what is recorded, failed, cut short or held up), and a dry run's
list of the runs it would train. The driver (`driver.sweep`) says them; nothing here writes or trains."""
from __future__ import annotations

from ..run_folders import resume_points
from .plan import Plan, data_to_read, dry_run_notes, plan, unfit_error


def show_dry_run(expanded, out, retry_failed, resume, echo) -> Plan:
    """What the sweep would do, missing data named, not raised; every setting that cannot train named, then refused."""
    sweep_plan = plan(expanded, out, retry_failed=retry_failed)
    echo(plan_line(sweep_plan, retry_failed) + f"{len(sweep_plan.todo)} would run{cut_short(sweep_plan, out, resume)}"
         + (f"{held_back(sweep_plan)}:" if sweep_plan.todo else ""))
    for run in sweep_plan.todo:
        echo(f"  {run.describe():<38} config {run.config_hash}  data {run.data_id}  [{run.experiment}]")
    for line in dry_run_notes(sweep_plan):
        echo(line)
    if sweep_plan.unfit:
        raise unfit_error(sweep_plan, listed=True)
    return sweep_plan


def held_back(sweep_plan: Plan) -> str:
    """What a dry run's plan line says after the runs that would run where missing data or settings that cannot
    train would stop the sweep before its first run (`check_runnable`): '1 would run:' then 'the sweep would run
    nothing' read as a contradiction."""
    what = [why for why, there in (("the missing data", sweep_plan.missing),
                                   ("the settings that cannot train", sweep_plan.unfit)) if there]
    return f", were it not for {' and '.join(what)} (below)" if what else ""


def cut_short(sweep_plan: Plan, out, resume: bool | None) -> str:
    """What the plan line says of the runs to do that an earlier call left cut short (a dead `.partial` folder with
    a last.pt): with --resume they continue from their last finished epoch, else they start again from their first.
    Only the folders whose run.json names a planned run are locked (`resume_points` with identities): a results
    folder shared with other work holds other runs' folders, which a live run of theirs may be looking for."""
    todo = [run.identity for run in sweep_plan.todo]
    left = {found for found, _ in resume_points(out, todo).values()} if todo else set()
    n = sum(run.identity in left for run in sweep_plan.todo)
    if not n:
        return ""
    if resume:
        return f", {n} of them cut short earlier, to continue from their last finished epoch (--resume)"
    return (f", {n} of them cut short earlier, to start again from their first epoch"
            + (" (--resume continues them)" if resume is False else ""))


def planning_line(expanded) -> str:
    """The line before planning: what it reads, so the wait before the plan line has a reason."""
    settings = [setting for _, setting, _ in expanded]
    # Counted as the plan line counts them, each once: a setting in two experiments (Table 1's Atsuko row is Table 4's
    # full row) made paper.yaml's 54 settings 56 here.
    distinct = len({setting.cache_key() for setting in settings})
    return (f"planning the sweep: reading the configs of {_count(distinct, 'setting')} and the data of "
            f"{data_to_read(settings)}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _other_precision(sweep_plan: Plan) -> str:
    """What the plan line says of recorded runs that ran at another precision than the one asked: they are
    skipped as the same runs (precision is not part of a run's identity), and their numbers are not the asked one's."""
    if not sweep_plan.other_precision:
        return ""
    asked = sweep_plan.runs[0].precision
    ran = ", ".join(f"{n} at {p}" for p, n in sorted(sweep_plan.other_precision.items()))
    return (f" ({ran}, not the {asked} asked: precision is not part of a run's identity; give another --out "
            f"for {asked} runs)")


def _other_kernels(sweep_plan: Plan) -> str:
    """What the plan line says of recorded runs that ran with other kernels than those asked (deterministic, or
    nondeterministic under --nondeterministic): skipped as the same runs, as `_other_precision`'s are."""
    if not sweep_plan.other_kernels:
        return ""
    asked = "deterministic" if sweep_plan.runs[0].deterministic else "nondeterministic"
    ran = ", ".join(f"{n} with {k} kernels" for k, n in sorted(sweep_plan.other_kernels.items()))
    return (f" ({ran}, not the {asked} asked: kernels are not part of a run's identity; give another --out "
            f"for {asked} runs)")


def _other_code(sweep_plan: Plan) -> str:
    """What the plan line says of recorded runs trained with other code of a model of your own: they are skipped as
    the same runs (the code is not part of a run's identity), and a sweep trains no recorded run again."""
    if not sweep_plan.other_code:
        return ""
    files = ", ".join(f"{path} {what}" for path, what in sweep_plan.code_changes.items())
    return (f" ({sweep_plan.other_code} trained with other code of a model of yours: {files} since; the code is not "
            f"part of a run's identity, so they are skipped: give another --out, or run.py --rerun in process, to "
            f"train them with the code as it is now)")


def plan_line(sweep_plan: Plan, retry_failed: bool) -> str:
    # A setting is all a run is but its seed: model, dataset, layout, data recipe, config, condition.
    n_settings = len({run.setting.cache_key() for run in sweep_plan.runs})
    held_up = set().union(*sweep_plan.missing.values())            # (setting key, seed) pairs
    held_settings = len({key for key, _ in held_up})
    missing = f" and {len(held_up)} more ({_count(held_settings, 'setting')}) whose data is missing" if held_up else ""
    head = (f"sweep: {_count(len(sweep_plan.runs), 'run')} ({_count(n_settings, 'setting')} of model, data and "
            f"config, x seeds){missing}: "
            f"{sweep_plan.done} already recorded{_other_precision(sweep_plan)}{_other_kernels(sweep_plan)}"
            f"{_other_code(sweep_plan)}, ")
    if retry_failed:
        return head + f"{sweep_plan.retried} failed before and retried, "
    return head + f"{sweep_plan.failed_skipped} failed before and skipped (--retry-failed reruns them), "
