"""`run.py tune`: an Optuna search scored on the validation split only, then the best config's runs.

- Before the study starts, every value the space can propose must pass the checks a `-c` override
  passes (`_check_space`): a bad space is one line and leaves no storage file.
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
  already recorded), its records labelled with the study's name (`label`).

Search spaces: `configs/tune/<model>.yaml`, one entry per config key:
`{low, high[, log]}` (float, or int when both bounds are integers: it must be the key's type) or
`{choices: [...]}`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from .. import api
from ..config import CONFIG_DIR, config_hash, declared_type, load_config, read_yaml
from ..data.conditions import check_model_allows
from ..errors import ToolkitError, UsageError
from ..metrics import lower_is_better
from ..registry import canonical_model_name, get_model_class
from ..results import check_output_folder
from ..training.hardware import check_precision
from ..training.seed import DEFAULT_SEEDS, check_seeds
from .driver import SweepLock, sweep
from .execute import optuna_module
from .local import LocalBackend
from .plan import PlannedRun
from .sweep_file import Setting, expand

log = logging.getLogger("mmsa_atsuko")
TUNE_DIR = "tune"
# A call whose first 5 trials all fail stops. A setup error fails every trial, the first already; a
# space of which half fails gets past TPE's first 5 draws (random, independent) 97% of the time
# (0.5**5 = 3%). 5 trials of a search of 20-100 is what finding out may cost; more only burns the
# night slower, fewer stops good spaces with a bad corner.
STOP_AFTER_FAILURES = 5
INTERRUPTED = "interrupted"          # user attr of a trial marked failed because its process died


def space_name(model: str, path=None) -> str:
    """What a message calls the search space file: as given, else the project's configs/tune/<model>.yaml."""
    return str(path) if path else f"configs/tune/{model}.yaml"


def read_space(model: str, path=None) -> dict:
    """The search space of `model` (configs/tune/<model>.yaml, or `path`), its format checked
    (its values against the model's config: `_check_space`)."""
    path = Path(path) if path else CONFIG_DIR / "tune" / f"{model}.yaml"
    if not path.is_file():
        raise UsageError(f"no search space for {model}: {path} does not exist; write one or pass --space FILE")
    space = read_yaml(path)
    if not isinstance(space, dict) or not space:
        raise UsageError(f"{path}: a search space is a mapping of config key -> {{low, high[, log]}} or {{choices}}")
    for key, spec in space.items():
        ok = isinstance(spec, dict) and (set(spec) == {"choices"} and isinstance(spec["choices"], list)
                                         and spec["choices"] or {"low", "high"} <= set(spec) <= {"low", "high", "log"})
        if not ok:
            raise UsageError(f"{path}: {key} must be {{low, high[, log]}} or {{choices: [...]}}, got {spec!r}")
    return space


def suggest(trial, space: dict) -> dict:
    params = {}
    for key, spec in space.items():
        if "choices" in spec:
            params[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def _bound(spec: dict, end: str, key: str, where: str) -> float:
    """A range's `low` or `high` as a number (a string as `suggest` reads it: YAML 1.1 reads 1e-4 as one)."""
    value = spec[end]
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise UsageError(f"{where}: {key}: {end} must be a finite number, got {value!r}")
    return number


def _like_int(spec: dict) -> str:
    """' (8, not 8.0)' for a range whose float bound is a whole number, the case a YAML reader misses."""
    bound = next((v for v in (spec["low"], spec["high"]) if not isinstance(v, int)), None)
    whole = isinstance(bound, float) and bound.is_integer()
    return f" ({int(bound)}, not {bound!r})" if whole else ""


def _check_space(model: str, base: Setting, space: dict, where: str) -> None:
    """One UsageError line naming `where` (the space file) and the key, unless every value the sampler
    can propose passes what a `-c` override must: the key's type and check (`load_config`, blamed on
    the space file) and the trainer's checks (`api.resolve_config`).

    A choice list: each choice is checked. A range: its kind (int when both bounds are integers, as
    `suggest` decides) must be the key's type, and both bounds are checked. The bounds stand for the
    whole range because every check a number can meet is an interval (config.py's `[a, b)` checks,
    check_trainer_config's `>= 1`, `> 0`, `(0, 1)`): an interval holding both ends holds all between.
    The other kinds refuse nothing (`any`) or take no number (`increasing` is for lists, a list of
    choices for strings; the type check refuses a range for such a key). A check that is not an
    interval (a set with holes, like "a power of 2") would need a choice list instead of a range:
    add a kind like that to config.py and this function must refuse ranges for its keys."""
    for key, spec in space.items():
        if "choices" in spec:
            values = [(value, f"a choice of {key}", "drop it from the choices") for value in spec["choices"]]
        else:
            low, high = _bound(spec, "low", key, where), _bound(spec, "high", key, where)
            ints = isinstance(spec["low"], int) and isinstance(spec["high"], int)     # as `suggest` decides
            if low > high:
                raise UsageError(f"{where}: {key}: low {spec['low']!r} is above high {spec['high']!r}; swap them")
            if spec.get("log") and low <= 0:
                raise UsageError(f"{where}: {key}: a log range needs low > 0, got {spec['low']!r}")
            kind = declared_type(model, key)
            if kind is int and not ints:
                raise UsageError(f"{where}: {key} is an int, but its bounds {spec['low']!r}, {spec['high']!r} are "
                                 f"not both integers, so the search would propose fractions: write both as "
                                 f"integers{_like_int(spec)}")
            if kind is float and ints:
                raise UsageError(f"{where}: {key} is a float, but integer bounds {spec['low']!r}, {spec['high']!r} "
                                 f"search whole numbers only: write them as floats ({low!r}, {high!r})")
            if kind in (bool, str, list):
                raise UsageError(f"{where}: {key} is a {kind.__name__}, which a {{low, high}} range cannot "
                                 f"search: use {{choices: [...]}}")
            values = [(spec[end] if ints else number, f"the {end} bound of {key}'s range", "narrow the range")
                      for end, number in (("low", low), ("high", high))]
        for value, role, advice in values:
            try:
                load_config(model, base.dataset, preset=base.preset, overrides=[(key, value)], overrides_from=where)
                api.resolve_config(model, base.dataset, preset=base.preset, max_epochs=base.max_epochs,
                                   overrides=[*base.overrides, (key, value)])
            except UsageError as error:
                text = str(error) if str(error).startswith(f"{where}:") else f"{where}: {error}"
                raise UsageError(f"{text} ({role}): {advice}") from None


def _storage(out: Path, study: str) -> str:
    return f"sqlite:///{(out / TUNE_DIR / f'{study}.db').resolve()}"


def _ended(study, optuna) -> list:
    """The trials that count toward `trials`: every one that ended (Optuna's n_trials counts failed
    ones too), except those marked failed because their process died: their parameters run again."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False) if t.state in states and not t.user_attrs.get(INTERRUPTED)]


def tune(model: str, dataset: str, *, trials: int, out="results", space_file=None, study_name=None,
         seed: int = 0, seeds=DEFAULT_SEEDS, backend=None, echo=print, final_runs: bool = True,
         precision: str = "fp32", deterministic: bool = True, save_checkpoint: str = "best", **lists):
    """Search `trials` configurations of `model` on `dataset` (see the module docstring), then run the
    best one on every seed in `seeds`. `lists`: what `sweep_file.expand` takes besides models, datasets
    and seeds (aligned, synthetic, synthetic_recipe, preset, max_epochs, config, data_root, the protocol
    axes, ...), applied to every trial; they must name one setting. Returns the study."""
    optuna = optuna_module()
    if trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}")
    api.check_save_checkpoint(save_checkpoint)
    check_precision(precision)
    model = canonical_model_name(model)
    seeds = check_seeds(seeds)
    settings = expand(models=[model], datasets=[dataset], seeds=seeds, **lists)
    if len(settings) != 1:
        raise UsageError(f"a tune searches one setting, and these options name {len(settings)}: give one "
                         f"--missing-rate, --drop-modality and --modalities value (one study each)")
    base = settings[0][1]
    space = read_space(model, space_file)
    where = space_name(model, space_file)
    study_name = study_name or default_study_name(base)
    out = check_output_folder(out)
    backend = backend or LocalBackend()
    config = api.resolve_config(model, base.dataset, preset=base.preset, overrides=base.overrides,
                                max_epochs=base.max_epochs)
    check_model_allows(model, get_model_class(model), base.condition)
    unknown = sorted(set(space) - set(config))
    if unknown:
        raise UsageError(f"search space keys {', '.join(unknown)} are not config keys of {model}")
    _check_space(model, base, space, where)          # before the study: a bad space leaves no storage file
    minimize = config.key_eval == "Loss" or lower_is_better(config.key_eval)
    (out / TUNE_DIR).mkdir(parents=True, exist_ok=True)
    with SweepLock(out):
        storage = _storage(out, study_name)
        study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                    direction="minimize" if minimize else "maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        facts = _search_facts(base, config, seeds[0], space, precision=precision, deterministic=deterministic)
        _check_same_search(study, facts, storage, echo)
        stored = study.get_trials(deepcopy=False)
        for dead in [t for t in stored if t.state == optuna.trial.TrialState.RUNNING]:
            # We hold the folder's lock: no live process runs it. Retry its parameters as a new trial;
            # marked, so that it does not count toward `trials` (its retry does).
            study._storage.set_trial_user_attr(dead._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(dead._trial_id, optuna.trial.TrialState.FAIL)
            study.enqueue_trial(dead.params)
            echo(f"[{study_name}] trial {dead.number} was running when an earlier tune stopped: its "
                 f"parameters run again as a new trial")
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(stored))
        done = len(_ended(study, optuna))
        echo(f"[{study_name}] {done}/{trials} trials done before this call; storage {storage}; "
             f"selecting on valid {config.key_eval} ({'min' if minimize else 'max'}), seed {seeds[0]}")
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
                errors.append(" ".join(str(result["error"]).split()))
            outcomes.append(result.get("state") if result.get("state") in ("complete", "pruned") else "fail")
            state = {"complete": optuna.trial.TrialState.COMPLETE,
                     "pruned": optuna.trial.TrialState.PRUNED}.get(result.get("state"), optuna.trial.TrialState.FAIL)
            study.tell(number, result.get("value") if state == optuna.trial.TrialState.COMPLETE else None, state=state)
            echo(_progress_line(study, study_name, number, result, len(_ended(study, optuna)), trials,
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
            echo(f"[{study_name}] best: trial {best.number}, valid {config.key_eval} {best.value:.4f}, {best.params}")
        except BaseException:
            backend.close()
            raise
    if final_runs:        # the same backend: its workers are started already (sweep closes it)
        sweep(out=out, backend=backend, echo=echo, models=[model], datasets=[dataset], seeds=seeds,
              label=study_name, precision=precision, deterministic=deterministic, save_checkpoint=save_checkpoint,
              **{**lists, "config": list(base.overrides) + list(best.params.items())})
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


def _search_facts(setting: Setting, config, trial_seed: int, space: dict, *, precision: str,
                  deterministic: bool) -> dict:
    """What a study's trials were scored on: a study resumed with other facts would mix two searches.
    (Torch threads per trial are not among them: they change a float sum's last bits, not the search.)"""
    return {"model": setting.model, "dataset": setting.dataset, "aligned": setting.aligned,
            "synthetic": setting.synthetic and f"{setting.synthetic_size}/{setting.synthetic_recipe}",
            "feature_path": setting.feature_path, "data_root": setting.data_root,
            "condition": setting.condition.key(), "config_hash": config_hash(config), "trial_seed": trial_seed,
            "space": space, "precision": precision, "deterministic": deterministic}


def _check_same_search(study, facts: dict, storage: str, echo) -> None:
    stored = study.user_attrs.get("search", {})
    differ = [key for key in facts if key in stored and stored[key] != facts[key]]
    if differ:
        raise UsageError(f"study {study.study_name} in {storage} searched with other {', '.join(differ)} "
                         f"({', '.join(f'{k}: {stored[k]!r}' for k in differ)[:300]}); give the same options "
                         f"to resume it, or --study NAME for a new study")
    unknown = [key for key in facts if key not in stored]
    if unknown and study.get_trials(deepcopy=False):
        # A study begun by a tune that stored fewer of its options: nothing to check its trials against.
        echo(f"warning: study {study.study_name} has {len(study.trials)} trial(s) but no record of their "
             f"{', '.join(unknown)}; they count as searched with these")
    if unknown:
        study.set_user_attr("search", {**stored, **{key: facts[key] for key in unknown}})


def _best(study, name: str):
    try:
        return study.best_trial
    except ValueError:
        raise UsageError(f"[{name}] no trial finished with a value; nothing to run (failed trials count "
                         f"toward --trials: give more to search on)") from None


def _progress_line(study, name: str, number: int, result: dict, done: int, trials: int, key: str) -> str:
    what = {"complete": f"valid {key} {result.get('value', math.nan):.4f}", "pruned": result.get("error", "pruned"),
            }.get(result.get("state"), f"FAILED: {result.get('error', '?')}")
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no best yet"
    return (f"[{name}] trial {number}: {what} ({result.get('seconds', 0):.1f}s) | {done}/{trials} trials done, "
            f"{best}")
