"""What a sweep runs: a sweep file or -m/-d/-s lists -> settings -> planned runs, less the recorded.

Planning resolves every (model, dataset) pair with `api.jobs.prepare_job`, the same code a plain
run uses, so the config hash and data id are known before anything trains, and any error in
the request (unknown name, bad override, missing file) stops the sweep before it starts. It
goes on past a data file that is not there, so that one error names every missing file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import config_hash
from ..data.conditions import label_suffix
from ..errors import DataError, MissingDataError, UsageError
from ..results import apart_from_request, latest_by_identity, read_records, recorded_ok, run_identity, run_phrase
from .sweep_file import Setting

if TYPE_CHECKING:
    from ..api.jobs import Job


@dataclass
class PlannedRun:
    setting: Setting
    seed: int
    config_hash: str
    data_id: str                     # 'sha256:...' or 'synthetic:<recipe>' (a record's `data`)
    config: dict = field(repr=False, default_factory=dict)
    experiment: str = ""
    checkpoint: str = "best"         # what the run leaves in its folder; not part of its identity
    precision: str = "fp32"          # how it runs (recorded, as the device is; not part of its identity)
    deterministic: bool = True
    # Continue a dead run's .partial folder of this identity (`sweep`'s resume); "stop": so does run.py --jobs N
    # --resume, where a folder it may not continue fails the run (run.py stops) instead of training it afresh.
    resume: bool | str | None = None
    # Whether the command that planned it runs failed runs again (sweep --retry-failed; run.py --jobs always): what
    # the line of a run whose worker died under --resume tells the user to type to continue its kept folder.
    reruns_failed: bool = False
    label: str | None = None         # stored in its record (a tune's study name); not part of its identity
    tune_trial: int | None = None    # stored with it: the number of the study's trial whose config this is
    trial: dict | None = None        # a tuning trial (sweep/tune.py): storage, study, trial id and number
    # The MMSA CSV its row goes to where run.py --jobs trains it (`api.jobs.job_mmsa_csv`), checked before any run
    mmsa_csv: Path | None = field(default=None, repr=False)

    @property
    def identity(self) -> tuple:
        s = self.setting
        return run_identity(s.model, s.dataset, s.aligned, self.seed, self.config_hash, self.data_id, s.condition.key())

    def describe(self) -> str:
        s = self.setting
        return run_phrase(s.model, s.dataset, s.aligned, s.condition.key(), self.seed)


# --------------------------------------------------------------------------------------
# Sweep files and command-line lists -> settings
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Planning: resolve every pair, compare with the store
# --------------------------------------------------------------------------------------

@dataclass
class Plan:
    runs: list[PlannedRun]            # every distinct run of the sweep, in order
    todo: list[PlannedRun]            # the ones to run now
    done: int                         # already recorded ok
    failed_skipped: int               # failed before and not retried
    retried: int                      # failed before and run again
    missing: dict[tuple, set] = field(default_factory=dict)   # (what, path) -> runs it holds up
    # Of `done`, those recorded at another precision than the one asked: precision -> count
    # (`results.ran_at_other_precision`: not part of a run's identity, so skipped all the same).
    other_precision: dict[str, int] = field(default_factory=dict)
    # Of `done`, those recorded with other kernels than those asked: kernels -> count (`results.ran_with_other_kernels`,
    # the rule api.run's skip line and --rerun follow: kernels are not part of a run's identity either).
    other_kernels: dict[str, int] = field(default_factory=dict)
    # Of `done`, those trained with other code of a model of your own (`results.Apart.files`: the code is not part of
    # a run's identity either): how many, and each file changed, new or gone since -> which of the three.
    other_code: int = 0
    code_changes: dict[str, str] = field(default_factory=dict)
    # Settings that cannot train (`prepare_job`'s UsageError: a last batch of one, an accumulation that never steps):
    # (experiment, setting, why), each once. Planning goes on past them, so a dry run lists every one.
    unfit: list[tuple[str, Setting, str]] = field(default_factory=list)


# Prepared jobs, grouped by data file. A process leaving one data file for another drops the
# one it leaves (MOSEI alone is several GB); planning for the in-process backend keeps them
# all, as `api.run` does, so that running does not load every file a second time.
_CACHE: dict = {"current": None, "groups": {}}


def prepare(setting: Setting, *, keep_others: bool = False) -> Job:
    """`api.jobs.prepare_job` for one setting, cached per process (see `_CACHE`)."""
    from ..api.jobs import prepare_job    # here: api imports torch, and the sweep's planning line comes before it
    key = setting.data_key()
    if _CACHE["current"] != key:
        if not keep_others:
            _CACHE["groups"].pop(_CACHE["current"], None)
        _CACHE["current"] = key
    group = _CACHE["groups"].setdefault(key, {"loaded": {}, "jobs": {}})
    job_key = setting.cache_key()
    if job_key not in group["jobs"]:
        group["jobs"][job_key] = prepare_job(
            setting.model, setting.dataset, aligned=setting.aligned, data_root=setting.data_root,
            feature_path=setting.feature_path, synthetic=setting.synthetic,
            synthetic_size=setting.synthetic_size, synthetic_recipe=setting.synthetic_recipe, preset=setting.preset,
            overrides=list(setting.overrides), max_epochs=setting.max_epochs, loaded=group["loaded"],
            condition=setting.condition)
    return group["jobs"][job_key]


def data_to_read(settings) -> str:
    """What a planning line says of the data it reads: each file once, and of generated data `(cached)` where the
    cache holds all of it (the line said it was generated on its first use when it was cached too)."""
    from ..cache import synthetic_cache_dir
    from ..data.synthetic import synthetic_cached
    cached: dict[str, bool] = {}            # name -> whether none of its data is generated now (real data: True)
    for s in settings:
        name = f"{s.dataset}{' aligned' if s.aligned else ''}{' synthetic' if s.synthetic else ''}"
        held = not s.synthetic or bool(synthetic_cached(s.dataset, synthetic_cache_dir(), size=s.synthetic_size,
                                                        aligned=s.aligned, recipe=s.synthetic_recipe))
        cached[name] = cached.get(name, True) and held
    return ", ".join(name + ("" if not name.endswith(" synthetic") else " (cached)" if held
                             else " (generated on its first use in a cache folder)")
                     for name, held in cached.items())


def release() -> None:
    _CACHE.update(current=None, groups={})


def plan(expanded, out, *, retry_failed=False, keep_data=False, checkpoint="best", precision="fp32",
         deterministic=True) -> Plan:
    """Resolve each setting (one data file at a time) and split its runs into done and to-do.

    `keep_data` keeps every prepared job in this process for running them here next."""
    if not expanded:
        raise UsageError("nothing to run")
    order = {key: i for i, key in enumerate(dict.fromkeys(s.data_key() for _, s, _ in expanded))}
    runs, seen, missing, unfit = [], set(), {}, {}
    for name, setting, seeds in sorted(expanded, key=lambda e: order[e[1].data_key()]):
        try:
            job = prepare(setting, keep_others=keep_data)
        except MissingDataError as error:
            # Go on, so that one report names every file the sweep needs and lacks.
            missing.setdefault((error.what, error.path), set()).update((setting.cache_key(), s) for s in seeds)
            continue
        except UsageError as error:
            unfit.setdefault(setting.cache_key(), (name, setting, str(error)))
            continue
        chash, data_id = config_hash(job.config), job.data.spec.source
        from ..api.jobs import job_mmsa_csv      # loaded already by `prepare`
        for seed in seeds:
            run = PlannedRun(setting, seed, chash, data_id, dict(job.config), name, checkpoint, precision,
                             deterministic, mmsa_csv=job_mmsa_csv(job, out))
            if run.identity not in seen:            # e.g. Table 1's Atsuko row is Table 4's full row
                seen.add(run.identity)
                runs.append(run)
    if keep_data:
        _CACHE["current"] = None       # running starts on the first file and drops none yet
    else:
        release()
    recorded = latest_by_identity(read_records(Path(out)))
    todo, done, failed_skipped, retried, other_code, code_changes = [], 0, 0, 0, 0, {}
    other_precision, other_kernels = {}, {}
    for run in runs:
        ok = recorded_ok(recorded, run.identity)        # skipped, as api.run skips it: `results.skip_rule`
        status = recorded.get(run.identity, {}).get("status")
        if ok is not None:
            done += 1
            apart = apart_from_request(ok, run.setting.model, precision, deterministic)
            if apart.precision:
                other_precision[apart.precision] = other_precision.get(apart.precision, 0) + 1
            if apart.kernels:
                other_kernels[apart.kernels] = other_kernels.get(apart.kernels, 0) + 1
            other_code += bool(apart.files)
            for path, old, new in apart.files:
                code_changes[str(path)] = "new" if old is None else "gone" if new is None else "changed"
        elif status is not None and not retry_failed:
            failed_skipped += 1
        else:
            retried += status is not None
            todo.append(run)
    return Plan(runs, todo, done, failed_skipped, retried, missing, other_precision, other_kernels, other_code,
                code_changes, list(unfit.values()))


def check_runnable(sweep_plan: Plan, before_runs=None) -> None:
    """Stop a sweep (not a dry run) whose plan has a setting that cannot train or data it lacks, or that
    `before_runs(todo)` (a caller's own check, e.g. run.py --jobs's MMSA CSVs) refuses, before any run starts."""
    if sweep_plan.unfit or sweep_plan.missing:     # a setting that cannot train is the command's to fix
        raise unfit_error(sweep_plan) if sweep_plan.unfit else missing_data_error(sweep_plan)
    if before_runs is not None:
        before_runs(sweep_plan.todo)


def missing_data(sweep_plan: Plan) -> str:
    """The data files the plan found missing, each with its runs, and how to get them: one line."""
    files = ", ".join(f"{what} at {path} ({len(runs)} runs)" for (what, path), runs in sweep_plan.missing.items())
    return (f"{len(sweep_plan.missing)} data file(s) this sweep needs are not there: {files}. "
            f"`python run.py download --check` shows what the data root holds and `python run.py "
            f"download NAME [--aligned]` fetches a file; or set --data-root, or run with --synthetic")


def missing_data_error(sweep_plan: Plan) -> DataError:
    """What stops a sweep (not a dry run) that misses data, before any run starts."""
    return DataError(f"nothing ran: {missing_data(sweep_plan)}")


def dry_run_notes(sweep_plan: Plan) -> list[str]:
    """What a dry run says after its runs: the missing data, which would stop the sweep, and every setting that cannot
    train (`unfit_lines`), after a line that says how many."""
    lines = [f"the sweep would stop before its first run: {missing_data(sweep_plan)}"] if sweep_plan.missing else []
    if sweep_plan.unfit:
        lines.append(f"{len(sweep_plan.unfit)} setting(s) cannot train, so the sweep would run nothing:")
    return lines + unfit_lines(sweep_plan)


def unfit_lines(sweep_plan: Plan) -> list[str]:
    """One line per setting of the plan that cannot train: its model, data and experiment, and why."""
    lines = []
    for experiment, s, why in sweep_plan.unfit:
        # check_accumulation's line begins with the model on the dataset, which the line has named already
        why = why.removeprefix(f"{s.model} on {s.dataset}: ")
        lines.append(f"  {s.model} {s.dataset}{' aligned' if s.aligned else ''}{label_suffix(s.condition.key())} "
                     f"[{experiment}]: {why}")
    return lines


def unfit_error(sweep_plan: Plan, shown: int = 3, listed: bool = False) -> UsageError:
    """What stops a sweep with settings that cannot train, before any run starts: one setting's own line, as
    `run.py` says it in process; of several, how many and the first `shown`. A dry run has `listed` them all."""
    n = len(sweep_plan.unfit)
    if listed:
        return UsageError(f"{n} setting(s) of this sweep cannot train (listed above); nothing would run")
    if n == 1:
        return UsageError(sweep_plan.unfit[0][2])
    first = "; ".join(line.strip() for line in unfit_lines(sweep_plan)[:shown])
    more = f"; and {n - shown} more (run.py sweep ... --dry-run lists every one)" if n > shown else ""
    return UsageError(f"nothing ran: {n} settings of this sweep cannot train: {first}{more}")
