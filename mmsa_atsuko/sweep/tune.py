"""`run.py tune`: an Optuna search scored on the validation split only, then the best config's runs.

- Before the study starts, every value the space can propose must pass the checks a `-c` override
  passes (`tune_space.check_space`): a bad space is one line and leaves no storage file.
- `trials` counts every trial that ended, failed ones included (Optuna's `n_trials`), so failing
  trials cannot keep a tune going. If the first STOP_AFTER_FAILURES trials of a call (or all of them,
  when it runs fewer) fail, the tune stops with one line: a setup that fails every trial is found
  after a few, not after a night.
- The study lives in SQLite inside the results folder (`<out>/tune/<study>.db`), so a killed
  tune started again goes on with every ended trial kept (a stored failure counts as one, as it
  did when it ended): a trial that was running when the process died is marked failed and
  `interrupted`, does not count, and its parameters are queued again, so no trial is lost and no
  trial number is reused.
- Sampler: TPE seeded with `seed` plus the number of trials already stored (a resumed study
  does not draw its first proposals again).
- A trial trains one seed (the first of `seeds`) without a run folder or record, reports the
  valid key metric after every epoch and is pruned by a median pruner; `fit(test=False)` never
  evaluates the test split, so nothing of the test set reaches the choice.
- Trials run on the sweep's backends (local: in process or `--jobs N` workers; Ray: one task per
  trial), with Optuna's ask/tell and no scheduler of its own: a backend asks for the next trial
  only when it has a free slot, after every result so far was told, so TPE proposes from them.
- A study remembers what it searched (setting, config hash, trial seed, space): resuming it with
  other options is an error, not a silent mix of two searches.
- The best configuration then runs on every seed as a normal sweep (recorded, skipped when
  already recorded, a failed one run again as run.py runs it: tune offers no --retry-failed; one failing raises, as
  `run_packed` does, once all have ended), its records labelled
  with the study's name (`label`) and the best trial's number (`tune_trial`), as Optuna names a trial; the
  leaderboard names the row of their config so. With `resume`, a final run cut short continues from its last
  finished epoch, as `sweep --resume` continues one; a trial has no run folder and runs again as a new trial.

Search spaces (`configs/tune/<model>.yaml`) are read, checked and sampled in `tune_space`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ..data.conditions import check_model_allows
from ..data.stamp import is_synthetic
from ..errors import ToolkitError, UsageError
from ..metrics.names import lower_is_better
from ..model_names import check_model_names, model_meta
from ..results import STORE_ENTRIES, check_output_folder, show
from ..run_folders import check_save_checkpoint
from ..training.hardware import check_precision
from ..training.seed import DEFAULT_SEEDS, check_seeds
from ..training.trainer_config import resolve_config
from .driver import SweepLock, sweep
from .local import LocalBackend
from .packed import failed_runs_error
from .plan import PlannedRun, prepare, release
from .study_file import (check_optuna, check_same_search, check_study_file, optuna_module, search_facts,
                         stop_if_locked, study_storage)
from .sweep_file import Setting, expand
from .tune_lines import done_before, interrupted_line, planning_line, progress_line
from .tune_space import check_objective_keys, check_space, check_space_keys, outside, read_space, space_name, suggest

log = logging.getLogger("mmsa_atsuko")
TUNE_DIR = "tune"
# A call whose first 5 trials all fail stops. A setup error fails every trial, the first already; a
# space of which half fails gets past TPE's first 5 draws (random, independent) 97% of the time
# (0.5**5 = 3%). 5 trials of a search of 20-100 is what finding out may cost; more only burns the
# night slower, fewer stops good spaces with a bad corner.
STOP_AFTER_FAILURES = 5
# A study's name is its file's (<out>/tune/<name>.db) and its final runs' label, shown in tables: `--study a/b`
# was sqlite's traceback, `../x` a database outside the results folder.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
INTERRUPTED = "interrupted"          # user attr of a trial marked failed because its process died


def _storage(out: Path, study: str) -> str:
    return f"sqlite:///{(out / TUNE_DIR / f'{study}.db').resolve()}"


def _ended(study, optuna) -> list:
    """The trials that count toward `trials`: every one that ended (Optuna's n_trials counts failed
    ones too), except those marked failed because their process died: their parameters run again."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False) if t.state in states and not t.user_attrs.get(INTERRUPTED)]


def tune(model: str, dataset: str, *, trials: int, out="results", space_file=None, study_name=None,
         seed: int = 0, seeds=DEFAULT_SEEDS, backend=None, echo=print, final_runs: bool = True,
         precision: str = "fp32", deterministic: bool = True, save_checkpoint: str = "best", resume: bool = False,
         **lists):
    """Search `trials` configurations of `model` on `dataset` (see the module docstring), then run the
    best one on every seed in `seeds`. `lists`: what `sweep_file.expand` takes besides models, datasets
    and seeds (aligned, synthetic, synthetic_recipe, preset, max_epochs, config, data_root, the protocol
    axes, ...), applied to every trial; they must name one setting. `resume`: for the final runs (the module
    docstring). `backend`: a backend, or a function that makes one, called after the planning line (the command
    line's: choosing devices imports torch); None: `LocalBackend()`. Returns the study; a final run that failed
    raises once every final run has ended (as `run_packed`: records kept, the same call runs it again)."""
    if trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}")
    # Every check that needs no torch comes before the planning line, as a sweep's do (tests/test_lazy_imports.py).
    check_save_checkpoint(save_checkpoint)
    check_precision(precision)
    check_model_names([model])               # from the model files' source: an unknown name is one line now
    seeds = check_seeds(seeds)
    (seed,) = check_seeds([seed], "--tune-seed")      # numpy's traceback, after the study file was made
    settings = expand(models=[model], datasets=[dataset], seeds=seeds, **lists)     # the model's name lowercased
    if len(settings) != 1:
        raise UsageError(f"a tune searches one setting, and these options name {len(settings)}: give one "
                         f"--missing-rate, --drop-modality and --modalities value (one study each)")
    base = settings[0][1]
    model, where = base.model, space_name(base.model, space_file)
    model_meta(model)          # a --models folder's model: imported now (torch), so that its space is found beside it
    space = read_space(model, space_file)
    if not study_name and not STUDY_NAME.fullmatch(default_study_name(base)):
        # Only a long name can fail (the model's and dataset's names are checked): 64 letters of a --datasets name
        # made the default over 100, and the line blamed a --study never given.
        raise UsageError(f"the study's default name {default_study_name(base)[:60]}... is longer than 100 "
                         f"characters: give it a shorter one with --study NAME")
    study_name = study_name or default_study_name(base)
    if not STUDY_NAME.fullmatch(study_name):
        raise UsageError(f"--study {show(study_name)} is no study name: give one of letters, digits, '_', '.' and '-' "
                         f"(at most 100, the first a letter or digit)")
    out = check_output_folder(out, entries=(*STORE_ENTRIES, f"{TUNE_DIR}/"))   # a tune/ link took the study elsewhere
    config = resolve_config(model, base.dataset, preset=base.preset, overrides=base.overrides,
                            max_epochs=base.max_epochs)
    check_model_allows(model, base.condition)
    check_space_keys(model, base, space, config, where)
    check_objective_keys(space, config, where)      # what a trial scores must be one thing for all
    check_space(model, base, space, where)          # before the study: a bad space leaves no storage file
    minimize = config.key_eval == "Loss" or lower_is_better(config.key_eval)
    check_optuna()
    echo(planning_line(study_name, base, where))
    optuna = optuna_module()
    backend = backend() if callable(backend) else backend or LocalBackend()     # its maker may import torch
    data_id = _data_id(base, backend)               # before the study too: missing data leaves no storage file
    (out / TUNE_DIR).mkdir(parents=True, exist_ok=True)
    with SweepLock(out), stop_if_locked(out / TUNE_DIR / f"{study_name}.db"):
        check_study_file(out / TUNE_DIR / f"{study_name}.db")     # under the lock: no tune of ours writes it now
        storage = _storage(out, study_name)
        study = optuna.create_study(study_name=study_name, storage=study_storage(optuna, storage), load_if_exists=True,
                                    direction="minimize" if minimize else "maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        facts = search_facts(base, config, seeds[0], space, precision=precision, deterministic=deterministic,
                              data_id=data_id)
        check_same_search(study, facts, storage, echo)
        stored = study.get_trials(deepcopy=False)
        for t in stored:       # the best trial's params become the final runs' config: only the space's may
            why = outside(space, t.params, t.state == optuna.trial.TrialState.COMPLETE, where)
            if why:
                raise UsageError(f"study {study_name} in {storage} holds trial {t.number} with {why}: it is not a "
                                 f"trial of this search; give --study NAME for a new study")
        done = len(_ended(study, optuna))          # a running trial is not among them, marked or not
        # Queued parameters are asked first, in order: those queued before (an earlier call's retries), then these.
        ahead = sum(t.state == optuna.trial.TrialState.WAITING for t in stored)
        for dead in [t for t in stored if t.state == optuna.trial.TrialState.RUNNING]:
            # We hold the folder's lock: no live process runs it. Retry its parameters as a new trial;
            # marked, so that it does not count toward `trials` (its retry does).
            study._storage.set_trial_user_attr(dead._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(dead._trial_id, optuna.trial.TrialState.FAIL)
            study.enqueue_trial(dead.params)
            echo(interrupted_line(study_name, dead.number, done + ahead, trials))
            ahead += 1
        # Wrapped into numpy's range: --tune-seed 2**32 - 1 resumed was its traceback.
        study.sampler = optuna.samplers.TPESampler(seed=(seed + len(stored)) % 2 ** 32)
        on_data = " of synthetic data" if is_synthetic(data_id) else ""    # as every table labels it
        echo(f"[{study_name}] {done_before(done, trials)}; storage {storage}; "
             f"selecting on valid {config.key_eval}{on_data} ({'min' if minimize else 'max'}), seed {seeds[0]}")
        running: dict[int, PlannedRun] = {}
        errors: list[str] = []
        outcomes: list[str] = []            # this call's, in the order they were told
        stop_after = min(STOP_AFTER_FAILURES, trials - done)

        def broken() -> bool:
            return len(outcomes) >= stop_after > 0 and all(o == "fail" for o in outcomes[:stop_after])

        def asked():
            # Pulled by the backend whenever a worker is free, after every result so far was told. Ended
            # trials of any state count: counting finished ones only, a failing trial freed its slot
            # for another without bringing the end nearer, and a tune whose every trial fails never ended.
            while not broken() and len(_ended(study, optuna)) + len(running) < trials:
                trial = study.ask()
                params = suggest(trial, space)
                s = Setting(**{**base.__dict__, "overrides": tuple(base.overrides) + tuple(params.items())})
                run = PlannedRun(s, seeds[0], "", "", experiment=study_name, precision=precision,
                                 deterministic=deterministic)
                run.trial = {"storage": storage, "study": study_name, "trial_id": trial._trial_id,
                             "number": trial.number, "params": params, "space": where}
                running[trial.number] = run
                yield run, f"{study_name}-trial{trial.number}"

        def told(result: dict) -> None:
            # run_trial's outcome, or execute.failure's for a trial whose worker died
            number = result["number"]
            running.pop(number, None)
            if result.get("error") and result.get("state") != "pruned":
                errors.append(str(result["error"]))        # quoted by a ToolkitError: one line there
            outcomes.append(result.get("state") if result.get("state") in ("complete", "pruned") else "fail")
            state = {"complete": optuna.trial.TrialState.COMPLETE,
                     "pruned": optuna.trial.TrialState.PRUNED}.get(result.get("state"), optuna.trial.TrialState.FAIL)
            study.tell(number, result.get("value") if state == optuna.trial.TrialState.COMPLETE else None, state=state)
            echo(progress_line(study, study_name, number, result, len(_ended(study, optuna)), trials,
                               config.key_eval))

        backend.start(trials - done)
        try:
            # One round: every asked trial is told and counts, so it ends after `trials - done` trials
            # (or once broken(): trials still running then are waited for and told).
            backend.run(asked(), out, told, expected=trials - done)
            if broken():
                first = (f"all {stop_after} trials of this call" if stop_after < STOP_AFTER_FAILURES
                         else f"the first {stop_after} trials of this call all")
                left = trials - len(_ended(study, optuna))
                then = (f"run the same command to go on ({left} trials left)" if left > 0 else
                        f"run it again with more than --trials {trials} (failed trials count toward it)")
                raise ToolkitError(f"[{study_name}] {first} failed, so the tune stops (a setup or config error "
                                   f"fails every trial): fix it, then {then}; the last error: "
                                   f"{errors[-1] if errors else '?'}")
            failed = outcomes.count("fail")
            if failed:
                echo(f"[{study_name}] {failed} of this call's {len(outcomes)} trials failed (each counts toward "
                     f"--trials; see their lines above)")
            best = _best(study, study_name)
            echo(f"[{study_name}] best: trial {best.number}, valid {config.key_eval}{on_data} {best.value:.4f}, "
                 f"{best.params}")
        except BaseException:
            backend.close()
            raise
    if final_runs:        # the same backend: its workers are started already (sweep closes it)
        summary = sweep(out=out, backend=backend, echo=echo, models=[model], datasets=[dataset], seeds=seeds,
                        label=study_name, tune_trial=best.number, precision=precision, deterministic=deterministic,
                        save_checkpoint=save_checkpoint, retry_failed=True, resume=resume,
                        **{**lists, "config": list(base.overrides) + list(best.params.items())})
        if summary.failed:        # as run.py of several seeds: exit 1 once every final run has ended
            raise failed_runs_error(summary, out, f"[{study_name}] final runs of the best config: ")
    else:
        backend.close()
    return study


def default_study_name(setting: Setting) -> str:
    """tune-<model>-<dataset>, plus what sets this search apart from the plain one."""
    parts = [setting.model, setting.dataset] + ["aligned"] * setting.aligned
    if setting.synthetic_recipe != "standard":
        parts.append(setting.synthetic_recipe)
    if not setting.condition.plain:
        parts.append(setting.condition.key().replace("=", "").replace(",", "-"))
    return "tune-" + "-".join(parts)


def _data_id(setting: Setting, backend) -> str:
    """The data id (the file's sha256, or the synthetic recipe) the trials will read. The paths in the facts do
    not name the data: another file at the same path, or $MMSA_DATA_ROOT pointing elsewhere, resumed the study
    and chose its best among trials scored on two files. Read as a sweep plans: the in-process backend keeps it."""
    in_process = getattr(backend, "in_process", False)
    release()      # read afresh: this process may hold what an earlier tune read at the same path
    data_id = prepare(setting, keep_others=in_process).data.spec.source
    if not in_process:
        release()                  # the workers read it; the driver need not hold it (MOSEI is several GB)
    return data_id


def _best(study, name: str):
    try:
        return study.best_trial
    except ValueError:
        raise UsageError(f"[{name}] no trial finished with a value; nothing to run (failed trials count "
                         f"toward --trials: give more to search on)") from None
