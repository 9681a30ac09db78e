"""What a sweep runs: a sweep file or -m/-d/-s lists -> settings -> planned runs, less the recorded.

Planning resolves every (model, dataset) pair with `api.prepare_job`, the same code a plain
run uses, so the config hash and data id are known before anything trains, and any error in
the request (unknown name, bad override, missing file) stops the sweep before it starts. It
goes on past a data file that is not there, so that one error names every missing file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import api
from ..config import config_hash, datasets_table, parse_override, read_yaml
from ..data.synthetic_stress import check_recipe
from ..errors import DataError, MissingDataError, UsageError
from ..results import latest_by_identity, read_records, run_identity
from ..training.seed import DEFAULT_SEEDS, check_seeds

TOP_KEYS = {"description", "seeds", "synthetic", "synthetic_size", "synthetic_recipe", "preset", "max_epochs",
            "config",
            "data_root", "experiments"}
EXPERIMENT_KEYS = {"name", "models", "datasets", "aligned", "seeds", "preset", "max_epochs", "config",
                   "synthetic_recipe"}


@dataclass
class Setting:
    """Everything `api.prepare_job` needs for one (model, dataset, aligned flag), seeds aside."""
    model: str
    dataset: str
    aligned: bool
    preset: str | None = None
    overrides: tuple = ()            # ((key, value), ...), applied after the model's YAML
    max_epochs: int | None = None
    synthetic: bool = False
    synthetic_size: str = "small"
    data_root: str | None = None
    synthetic_recipe: str = "standard"    # last, so positional Settings keep their meaning
    feature_path: str | None = None

    def data_key(self) -> tuple:
        """Settings with the same data key read the same data file."""
        return (self.dataset, self.aligned, self.synthetic, self.synthetic_size, self.synthetic_recipe,
                self.data_root, self.feature_path)

    def cache_key(self) -> str:
        return json.dumps([self.model, self.dataset, self.aligned, self.preset, list(self.overrides),
                           self.max_epochs, self.synthetic, self.synthetic_size, self.synthetic_recipe,
                           self.data_root, self.feature_path], default=str)


@dataclass
class PlannedRun:
    setting: Setting
    seed: int
    config_hash: str
    data: str                        # data id: 'sha256:...' or 'synthetic:<recipe>'
    config: dict = field(repr=False, default_factory=dict)
    experiment: str = ""
    checkpoint: str = "best"         # what the run leaves in its folder; not part of its identity

    @property
    def identity(self) -> tuple:
        s = self.setting
        return run_identity(s.model, s.dataset, s.aligned, self.seed, self.config_hash, self.data)

    def describe(self) -> str:
        s = self.setting
        return f"{s.model} {s.dataset}{' aligned' if s.aligned else ''} seed {self.seed}"


# --------------------------------------------------------------------------------------
# Sweep files and command-line lists -> settings
# --------------------------------------------------------------------------------------

def _as_list(value, what: str, where: str) -> list:
    if isinstance(value, (str, int, bool)):
        return [value]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: {what} must be a name or a non-empty list, got {value!r}")
    return value


def _check_keys(mapping, allowed: set, where: str) -> None:
    if not isinstance(mapping, dict):
        raise UsageError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                         f"allowed: {', '.join(sorted(allowed))}")


def _overrides(mapping, where: str) -> list[tuple]:
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        raise UsageError(f"{where}: config must be a mapping of key: value")
    return list(mapping.items())


def _seeds(value, where: str) -> list[int]:
    seeds = _as_list(value, "seeds", where)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UsageError(f"{where}: seeds must be integers, got {seeds!r}")
    return check_seeds(seeds, where)


def expand(file=None, *, models=None, datasets=None, seeds=None, aligned=False, synthetic=False,
           synthetic_size=None, preset=None, max_epochs=None, config=(), data_root=None,
           feature_path=None, synthetic_recipe=None) -> list[tuple[str, Setting, list[int]]]:
    """(experiment name, setting, seeds) for a sweep file and/or command-line lists.

    Without a file, `models` x `datasets` at one aligned flag. With a file, its experiments;
    `models`/`datasets` then keep only those names and `aligned=True` only aligned runs.
    Command-line values win over an experiment's, which win over the file's top level.
    """
    cli_overrides = [o if isinstance(o, tuple) else parse_override(o) for o in config]
    models = [m.lower() for m in models] if models else models
    datasets = [d.lower() for d in datasets] if datasets else datasets
    if feature_path is not None and synthetic:
        raise UsageError("--synthetic generates its own data files; drop --feature-path, or drop --synthetic "
                         "to train on that file")
    if file is None:
        if not models or not datasets:
            raise UsageError("give a sweep file or both -m/--model and -d/--dataset")
        top = {"experiments": [{"name": "command line", "models": list(models), "datasets": list(datasets),
                                "aligned": [bool(aligned)]}]}
        where_file = "command line"
    else:
        top = read_yaml(Path(file))
        where_file = str(file)
    _check_keys(top, TOP_KEYS, where_file)
    experiments = top.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        raise UsageError(f"{where_file}: 'experiments' must be a non-empty list")
    table = datasets_table()

    out = []
    names_seen = {"models": set(), "datasets": set()}
    for i, exp in enumerate(experiments):
        where = f"{where_file} experiment {i + 1}"
        _check_keys(exp, EXPERIMENT_KEYS, where)
        name = str(exp.get("name", f"#{i + 1}"))
        where = f"{where_file} experiment {name!r}"
        exp_models = [str(m).lower() for m in _as_list(exp.get("models"), "models", where)]   # any case
        exp_datasets = [str(d).lower() for d in _as_list(exp.get("datasets"), "datasets", where)]
        flags = _as_list(exp.get("aligned", False), "aligned", where)
        if not all(isinstance(f, bool) for f in flags):
            raise UsageError(f"{where}: aligned must be true, false or a list of them, got {flags!r}")
        names_seen["models"].update(exp_models)
        names_seen["datasets"].update(exp_datasets)
        if file is not None:
            exp_models = [m for m in exp_models if not models or m in models]
            exp_datasets = [d for d in exp_datasets if not datasets or d in datasets]
            flags = [f for f in flags if f or not aligned]
        exp_seeds = check_seeds(seeds, "command line") if seeds else _seeds(exp.get("seeds", top.get("seeds", list(DEFAULT_SEEDS))), where)
        exp_overrides = tuple(_overrides(top.get("config"), where_file) + _overrides(exp.get("config"), where)
                              + cli_overrides)
        for dataset in exp_datasets:
            if dataset not in table:
                raise UsageError(f"{where}: unknown dataset {dataset!r}; known: {', '.join(table)}")
            for flag in flags:
                if ("aligned" if flag else "unaligned") not in table[dataset]["files"]:
                    raise UsageError(f"{where}: {dataset} has no {'aligned' if flag else 'unaligned'} setting")
                for model in exp_models:
                    out.append((name, Setting(
                        model=model, dataset=dataset, aligned=flag,
                        preset=preset or exp.get("preset", top.get("preset")),
                        overrides=exp_overrides,
                        max_epochs=max_epochs if max_epochs is not None else exp.get("max_epochs", top.get("max_epochs")),
                        synthetic=bool(synthetic or top.get("synthetic", False)),
                        synthetic_size=synthetic_size or top.get("synthetic_size", "small"),
                        synthetic_recipe=check_recipe(
                            synthetic_recipe or exp.get("synthetic_recipe", top.get("synthetic_recipe", "standard"))),
                        data_root=data_root or top.get("data_root"),
                        feature_path=feature_path), exp_seeds))
    if file is not None:
        for what, asked in (("models", models), ("datasets", datasets)):
            missing = sorted(set(asked or ()) - names_seen[what])
            if missing:
                raise UsageError(f"{where_file} has no {what} {', '.join(missing)}; it has "
                                 f"{', '.join(sorted(names_seen[what]))}")
    if not out:
        raise UsageError(f"{where_file}: nothing to run after filtering")
    if feature_path is not None and len({s.dataset for _, s, _ in out}) > 1:
        raise UsageError("--feature-path names one file, so give exactly one dataset")
    if any(s.synthetic_recipe != "standard" and not s.synthetic for _, s, _ in out):
        raise UsageError(f"{where_file}: a synthetic recipe other than standard needs synthetic data: add --synthetic "
                         f"(or synthetic: true)")
    if feature_path is not None and any(s.synthetic for _, s, _ in out):
        raise UsageError(f"{where_file} asks for synthetic data, which brings its own files; drop --feature-path")
    return out


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


# Prepared jobs, grouped by data file. A process leaving one data file for another drops the
# one it leaves (MOSEI alone is several GB); planning for the in-process backend keeps them
# all, as `api.run` does, so that running does not load every file a second time.
_CACHE: dict = {"current": None, "groups": {}}


def prepare(setting: Setting, *, keep_others: bool = False) -> api.Job:
    """`api.prepare_job` for one setting, cached per process (see `_CACHE`)."""
    key = setting.data_key()
    if _CACHE["current"] != key:
        if not keep_others:
            _CACHE["groups"].pop(_CACHE["current"], None)
        _CACHE["current"] = key
    group = _CACHE["groups"].setdefault(key, {"loaded": {}, "jobs": {}})
    job_key = setting.cache_key()
    if job_key not in group["jobs"]:
        group["jobs"][job_key] = api.prepare_job(
            setting.model, setting.dataset, aligned=setting.aligned, data_root=setting.data_root,
            feature_path=setting.feature_path, synthetic=setting.synthetic,
            synthetic_size=setting.synthetic_size, synthetic_recipe=setting.synthetic_recipe, preset=setting.preset,
            overrides=list(setting.overrides),
            max_epochs=setting.max_epochs, loaded=group["loaded"])
    return group["jobs"][job_key]


def release() -> None:
    _CACHE.update(current=None, groups={})


def plan(expanded, out, *, retry_failed=False, keep_data=False, checkpoint="best") -> Plan:
    """Resolve each setting (one data file at a time) and split its runs into done and to-do.

    `keep_data` keeps every prepared job in this process for running them here next."""
    if not expanded:
        raise UsageError("nothing to run")
    order = {key: i for i, key in enumerate(dict.fromkeys(s.data_key() for _, s, _ in expanded))}
    runs, seen, missing = [], set(), {}
    for name, setting, seeds in sorted(expanded, key=lambda e: order[e[1].data_key()]):
        try:
            job = prepare(setting, keep_others=keep_data)
        except MissingDataError as error:
            # Go on, so that one report names every file the sweep needs and lacks.
            missing.setdefault((error.what, error.path), set()).update((setting.cache_key(), s) for s in seeds)
            continue
        chash, data = config_hash(job.config), job.data.spec.source
        for seed in seeds:
            run = PlannedRun(setting, seed, chash, data, dict(job.config), name, checkpoint)
            if run.identity not in seen:            # e.g. Table 1's Atsuko row is Table 4's full row
                seen.add(run.identity)
                runs.append(run)
    if keep_data:
        _CACHE["current"] = None       # running starts on the first file and drops none yet
    else:
        release()
    recorded = latest_by_identity(read_records(Path(out)))
    todo, done, failed_skipped, retried = [], 0, 0, 0
    for run in runs:
        status = recorded.get(run.identity, {}).get("status")
        if status == "ok":
            done += 1
        elif status is not None and not retry_failed:
            failed_skipped += 1
        else:
            retried += status is not None
            todo.append(run)
    return Plan(runs, todo, done, failed_skipped, retried, missing)


def missing_data_error(sweep_plan: Plan) -> DataError:
    files = ", ".join(f"{what} at {path} ({len(runs)} runs)" for (what, path), runs in sweep_plan.missing.items())
    return DataError(f"nothing ran: {len(sweep_plan.missing)} data file(s) this sweep needs are not there: {files}. "
                     f"`python run.py download --check` shows what the data root holds and `python run.py "
                     f"download NAME [--aligned]` fetches a file; or set --data-root, or run with --synthetic")
