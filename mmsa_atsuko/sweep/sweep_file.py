"""Sweep files and -m/-d/-s lists -> settings: what a sweep asks for, before anything is planned.

A sweep file (configs/sweeps/*.yaml) holds `experiments` of `models`, `datasets`, `aligned`, `seeds`,
`config` overrides, `preset`, `max_epochs`, the protocol axes and the synthetic recipe; unknown keys
and names are one-line errors. Command-line values win over an experiment's, which win over the file's
top level.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import dataset_facts, load_config, parse_overrides, read_yaml
from ..data.conditions import OPTIONS, PLAIN, Condition, check_model_allows, conditions
from ..data.synthetic_stress import check_data_options, check_recipe
from ..errors import ToolkitError, UsageError
from ..training.seed import DEFAULT_SEEDS, check_seeds
from ..training.trainer_config import check_trainer_config, resolve_config

CONDITION_KEYS = {"missing_rate", "drop_modality", "modalities"}    # protocol axes (data.conditions)
TOP_KEYS = {"description", "seeds", "synthetic", "synthetic_size", "synthetic_recipe", "preset", "max_epochs", "config",
            "data_root", "experiments"} | CONDITION_KEYS
EXPERIMENT_KEYS = {"name", "models", "datasets", "aligned", "seeds", "preset", "max_epochs",
                   "config", "synthetic_recipe"} | CONDITION_KEYS


@dataclass
class Setting:
    """Everything `api.jobs.prepare_job` needs for one (model, dataset, aligned flag), seeds aside."""
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
    condition: Condition = PLAIN

    def data_key(self) -> tuple:
        """Settings with the same data key read the same data file."""
        return (self.dataset, self.aligned, self.synthetic, self.synthetic_size, self.synthetic_recipe,
                self.data_root, self.feature_path)

    def cache_key(self) -> str:
        return json.dumps([self.model, self.dataset, self.aligned, self.preset, list(self.overrides),
                           self.max_epochs, self.synthetic, self.synthetic_size, self.synthetic_recipe,
                           self.data_root, self.feature_path, self.condition.key()], default=str)


def _as_list(value, what: str, where: str) -> list:
    """A value (a name, a number, a flag; `missing_rate: 0.3` is a float) as a list of one, or a non-empty list."""
    if isinstance(value, (str, int, float, bool)):
        return [value]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: {what} must be a value or a non-empty list, got {value!r}")
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
           feature_path=None, missing_rates=None, drop_modality=None, modalities=None,
           synthetic_recipe=None) -> list[tuple[str, Setting, list[int]]]:
    """(experiment name, setting, seeds) for a sweep file and/or command-line lists.

    Without a file, `models` x `datasets` at one aligned flag. With a file, its experiments;
    `models`/`datasets` then keep only those names and `aligned=True` only aligned runs.
    Command-line values win over an experiment's, which win over the file's top level; so do the
    protocol axes (`missing_rates`, `drop_modality`, `modalities`; in a file `missing_rate`,
    `drop_modality`, `modalities`, each a value or a list), whose combinations multiply the runs.
    """
    cli_overrides = parse_overrides(config)
    models = [m.lower() for m in models] if models else models
    datasets = [d.lower() for d in datasets] if datasets else datasets
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
    root = top.get("data_root")
    # A path read from the file: a number or a list stopped in a TypeError traceback when the data was looked for,
    # a NUL byte in a ValueError one.
    if root is not None and not (isinstance(root, str) and root and "\0" not in root):
        raise UsageError(f"{where_file}: data_root must be the path of a folder (a non-empty string without a NUL "
                         f"byte), got {str(root)[:80]!r}")
    # Where the data comes from: the command line's options over the file's top-level keys (no experiment sets
    # them). --synthetic-size without synthetic data, or --data-root with it, was ignored without a word.
    cli = {"synthetic": synthetic, "synthetic_size": synthetic_size, "data_root": data_root}
    from_file = {key for key, value in cli.items() if not value and top.get(key) not in (None, False)}
    check_data_options(bool(synthetic or top.get("synthetic")), synthetic_size or top.get("synthetic_size"),
                       data_root or top.get("data_root"), feature_path, where=where_file if from_file else "",
                       from_file=from_file)
    experiments = top.get("experiments")
    if not isinstance(experiments, list) or not experiments:
        raise UsageError(f"{where_file}: 'experiments' must be a non-empty list")
    out = []
    names_seen = {"models": set(), "datasets": set()}
    for i, exp in enumerate(experiments):
        where = f"{where_file} experiment {i + 1}"
        _check_keys(exp, EXPERIMENT_KEYS, where)
        name = str(exp.get("name", f"#{i + 1}"))
        if "name" in exp:          # else it stays "experiment 3", as the file's errors above call it
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
        exp_seeds = (check_seeds(seeds, "command line") if seeds
                     else _seeds(exp.get("seeds", top.get("seeds", list(DEFAULT_SEEDS))), where))
        top_overrides, own_overrides = _overrides(top.get("config"), where_file), _overrides(exp.get("config"), where)
        exp_overrides = tuple(top_overrides + own_overrides + cli_overrides)
        exp_preset = preset or exp.get("preset", top.get("preset"))
        exp_conditions = _conditions(exp, top, where, missing_rates, drop_modality, modalities)
        for dataset in exp_datasets:
            try:
                files = dataset_facts(dataset)["files"]
            except UsageError as e:
                raise UsageError(f"{where}: {e}") from None
            # The file's own config keys and max_epochs are checked now, each value blamed on where it is
            # written, the trainer's checks included (the command line's -c and --max-epochs are checked
            # when a run resolves its config).
            written = [(key, value, f"{where_file}: config") for key, value in top_overrides]
            written += [(key, value, f"{where}: config") for key, value in own_overrides]
            file_max = []
            if max_epochs is None and exp.get("max_epochs", top.get("max_epochs")) is not None:
                file_max = [("max_epochs", *((exp["max_epochs"], where) if "max_epochs" in exp
                                             else (top["max_epochs"], where_file)))]
            for model in exp_models if written or file_max else ():
                origins = {}
                config = load_config(model, dataset, preset=exp_preset, origins=origins, overrides=[
                    *((key, value, f"{label}, for {model}") for key, value, label in written), *file_max])
                check_trainer_config(config, dataset, origins)
            for flag in flags:
                if ("aligned" if flag else "unaligned") not in files:
                    raise UsageError(f"{where}: {dataset} has no {'aligned' if flag else 'unaligned'} setting")
                for model, condition in ((m, c) for c in exp_conditions for m in exp_models):
                    out.append((name, Setting(
                        model=model, dataset=dataset, aligned=flag, preset=exp_preset,
                        overrides=exp_overrides,
                        max_epochs=(max_epochs if max_epochs is not None
                                    else exp.get("max_epochs", top.get("max_epochs"))),
                        synthetic=bool(synthetic or top.get("synthetic", False)),
                        synthetic_size=synthetic_size or top.get("synthetic_size", "small"),
                        synthetic_recipe=check_recipe(
                            synthetic_recipe or exp.get("synthetic_recipe", top.get("synthetic_recipe", "standard"))),
                        data_root=data_root or top.get("data_root"),
                        feature_path=feature_path, condition=condition), exp_seeds))
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
    return out


def _conditions(exp: dict, top: dict, where: str, missing_rates, drop_modality, modalities) -> list[Condition]:
    """The protocol conditions of one experiment: command line, else experiment, else top level."""
    names = dict(OPTIONS)          # a bad value is named where it came from: an option, or this file's key

    def axis(cli, key):
        if cli:
            return cli
        value = exp.get(key, top.get(key))
        if value is None:
            return None
        names[key] = key
        return _as_list(value, key, where)
    drops = axis([drop_modality] if isinstance(drop_modality, str) else drop_modality, "drop_modality")
    rates, subsets = axis(missing_rates, "missing_rate"), axis(modalities, "modalities")
    try:
        return conditions(rates, drops, subsets, names)
    except UsageError as e:
        raise UsageError(f"{where}: {e}" if names != OPTIONS else str(e)) from None


def check_settings(expanded, cli_config) -> None:
    """Every setting's config (`resolve_config`) and protocol condition, checked before the planning line and
    without torch: the first bad one is one UsageError line; a `-c` key that only some of the sweep's models have
    says where such a key goes."""
    for _, setting, _ in expanded:
        try:
            resolve_config(setting.model, setting.dataset, preset=setting.preset, overrides=setting.overrides,
                           max_epochs=setting.max_epochs)
        except UsageError as e:
            raise UsageError(f"{e}{_some_models_key_hint(setting, expanded, cli_config)}") from None
        check_model_allows(setting.model, setting.condition)


def _declares(model: str, dataset: str, preset, key: str) -> bool:
    """Whether `key` is a config key of `model` (its resolved config holds every key it declares)."""
    try:
        return key in load_config(model, dataset, preset=preset)
    except ToolkitError:
        return False


def _some_models_key_hint(setting, expanded, cli_config) -> str:
    """What the refusal of a `-c` key that `setting`'s model lacks adds where other models of the sweep have it
    (`-m tfn atsuko -c use_sbn=false`): -c sets every model, so such a key goes in a sweep file's per-experiment
    `config:`; "" for a key no model of the sweep has (a typo, whose closest keys the refusal names)."""
    for key, *_ in parse_overrides(cli_config or ()):
        if _declares(setting.model, setting.dataset, setting.preset, key):
            continue
        others = sorted({s.model for _, s, _ in expanded if s.model != setting.model
                         and _declares(s.model, s.dataset, s.preset, key)})
        if others:
            return (f"; -c sets a key for every model of the sweep, and {key} is a key of {', '.join(others)} only: "
                    f"a key for some models goes in a sweep file's per-experiment config: (an experiment of models: "
                    f"[{', '.join(others)}] with config: {{{key}: ...}}; docs/sweeps.md)")
    return ""
