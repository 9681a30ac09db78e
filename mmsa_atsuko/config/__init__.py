"""Strict YAML config layering -> EasyDict.

Layers, later wins:
  1. configs/datasets.yaml `defaults` (trainer keys every run has)
  2. configs/datasets.yaml `datasets.<dataset>.config`
  3. configs/<model>.yaml `common` (declares every model key, with its default; a model of your own's
     YAML is beside its model file: registry.model_yaml_path)
  4. configs/<model>.yaml `<dataset>`
  5. the registry's variant overrides (e.g. atsuko_base switches SBN and MCM off)
  6. configs/<model>.yaml `presets.<preset>` (--preset small)
  7. command-line overrides `key=value` (-c)

A key is known only if layer 1 or 3 declares it. Any other key, in any layer, is an error
naming the closest known keys: MMSA's EasyDict merge silently ignores a misspelled key, so
a typo there changes nothing and nobody notices. A key that is null by default gets its type from
a `nullable:` block of the YAML that declares it. What a value must be (the declared default's
type, and the key's check, which every key but a bool has) is checks.py's.

The package, bottom to top:
  yaml_files.py  read_yaml: a YAML file, parsed once per file version
  datasets.py    the datasets table (configs/datasets.yaml, --datasets FILE) and each dataset's facts
  checks.py      what a value must be: its type, its check (DEFAULT_CHECKS, `checks:` blocks), and
                 one layer applied to a config; parse_override for `-c key=value`
  __init__.py    resolving a run's config (load_config), checking one written elsewhere (check_config,
                 a model.json), its hash, saving it
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml
from easydict import EasyDict

from ..atomic import open_new
from ..errors import UsageError
from ..model_names import model_meta
from ..registry import CONFIG_DIR, model_yaml_path
from ..user_models.discovery import model_origin
from .checks import (DEFAULT_CHECKS, Check, _apply, _checks, _declare_nullable, _no_check, _Nullable, _type_name,
                     number_hint, parse_overrides)
from .datasets import (DATASETS_ENV, METRIC_KEYS, dataset_facts, dataset_names, datasets_table, declared_in,
                       own_dataset, published_sha256, real_layout, real_sizes_mismatch)
from .yaml_files import parse_override, read_yaml

__all__ = ["ADDED_KEYS", "CONFIG_DIR", "DATASETS_ENV", "DEFAULT_CHECKS", "METRIC_KEYS", "Check", "check_config",
           "config_hash", "config_identity", "dataset_facts",
           "own_dataset", "published_sha256", "real_layout", "real_sizes_mismatch",
           "dataset_names", "datasets_table", "declared_type", "load_config", "model_config_name", "number_hint",
           "parse_override", "parse_overrides",
           "read_yaml", "save_config", "trainer_checks", "trainer_keys_apart"]


# Trainer keys added after runs were stored, each with the value every run before it had. A stored config without
# one (a model.json, a runs.jsonl record) is read with that value, and at that value the key stays out of the
# config hash: the runs stored before it keep their identity, and a sweep does not train them again. A model's YAML
# cannot give a trainer key a check or meaning of its own (`_declarations`), so the value means the same for every
# model.
ADDED_KEYS = {"valid_loss": "exact", "grad_accum_rule": "sum"}
# What a preset may be named: a run record stores it (`preset`), and the store's reader skips a record whose preset
# is no such name (results.store_lines.not_a_run), one that was written to print a line of its own into a table.
PRESET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def model_config_name(model: str) -> tuple[str, dict]:
    meta = model_meta(model)        # any letter case: meta["name"] is the registered one; before torch where it can
    return meta.get("config_name", meta["name"]), dict(meta.get("overrides", {}))


def _yaml_label(model_path: Path, config_dir: Path) -> str:
    """What messages call a model's YAML: its name in configs/ (tfn.yaml), the full path of one of your own."""
    return model_path.name if model_path.parent == Path(config_dir) else str(model_path)


def _declarations(datasets_yaml: dict, model_yaml: dict, label: str) -> dict:
    """key -> declared default (a _Nullable for a key that is null by default but typed when set)."""
    for block in ("common", "presets", "nullable", "checks"):    # each read as key: value below and in _rules
        if not isinstance(model_yaml.get(block) or {}, dict):     # `common: [1]` was an AttributeError
            raise UsageError(f"{label}: its {block} block must be a mapping of key: value, "
                             f"got {_type_name(model_yaml[block])}")
    declared = dict(datasets_yaml["defaults"])
    for block in ("checks", "nullable"):
        # A trainer key is the trainer's: a model may set its value (common:, as batch_size), never its meaning.
        # Its own check let through values the trainer refuses, and a key of its own that a later version of
        # datasets.yaml adds (valid_loss) would be read by the trainer and, at its ADDED_KEYS value, leave the hash.
        for key in (model_yaml.get(block) or {}):
            if key in declared:
                raise UsageError(f"{label}: its {block} block names {key}, a trainer key (configs/datasets.yaml "
                                 f"defaults) whose check and type are datasets.yaml's; set its value in common: "
                                 f"only, or, if {key} is the model's own key, rename it in this YAML and the "
                                 f"model's code")
    for key, value in (model_yaml.get("common") or {}).items():
        declared[key] = value if key not in declared else declared[key]
    _declare_nullable(declared, datasets_yaml.get("nullable"), "configs/datasets.yaml nullable")
    _declare_nullable(declared, model_yaml.get("nullable"), f"{label} nullable")
    return declared


def declared_type(model: str, key: str, config_dir: Path = CONFIG_DIR) -> type | None:
    """The type a value of config key `key` of `model` must have (bool, int, float, str, list; a
    nullable key's type when set), or None for a key that takes any value. Unknown key: None (load_config
    names it)."""
    config_name, _ = model_config_name(model)
    model_path = model_yaml_path(config_name, config_dir)
    declared = _declarations(read_yaml(config_dir / "datasets.yaml"), read_yaml(model_path),
                             _yaml_label(model_path, config_dir))
    example = declared.get(key)
    example = example.example if isinstance(example, _Nullable) else example
    return None if example is None else list if isinstance(example, tuple) else type(example)


def trainer_checks(config_dir: Path = CONFIG_DIR) -> tuple[dict, dict]:
    """(declared, checks) of the trainer keys alone: configs/datasets.yaml's `defaults` (a null one typed by its
    `nullable:` block) and the check of each (its `checks:` block, else DEFAULT_CHECKS), the very checks
    `load_config` applies to them in every layer, for the trainer's own check of a finished config."""
    datasets_yaml = read_yaml(Path(config_dir) / "datasets.yaml")
    declared = dict(datasets_yaml["defaults"])
    _declare_nullable(declared, datasets_yaml.get("nullable"), "configs/datasets.yaml nullable")
    return declared, _checks(declared, (datasets_yaml.get("checks"), "configs/datasets.yaml checks"))


def _rules(model: str, config_dir: Path) -> tuple[dict, dict, dict, Path, dict]:
    """(declared, checks, datasets.yaml, the model's YAML path, its YAML) of `model`; a key without
    a check is refused here."""
    datasets_yaml = read_yaml(config_dir / "datasets.yaml")
    table = datasets_table(config_dir)
    config_name, _ = model_config_name(model)
    model_path = model_yaml_path(config_name, config_dir)
    label = _yaml_label(model_path, config_dir)
    if not model_path.exists():
        # read_yaml's "config file ... not found" says nothing of whose file it is or what goes in it
        origin = model_origin(config_name)
        beside = f"beside {origin}" if origin is not None else f"in {model_path.parent}"
        raise UsageError(f"model {config_name} has no config: {model_path} not found; put {config_name}.yaml "
                         f"{beside}, with a common: block declaring every key the model reads and a small "
                         f"preset (README, Adding a model)")
    model_yaml = read_yaml(model_path)
    unknown_blocks = set(model_yaml) - {"common", "presets", "nullable", "checks", *table}
    if unknown_blocks:
        raise UsageError(f"{model_path}: unknown top-level block(s) {sorted(unknown_blocks)}; "
                         f"expected common, presets, nullable, checks or a dataset name ({', '.join(table)})")

    declared = _declarations(datasets_yaml, model_yaml, label)
    checks = _checks(declared, (datasets_yaml.get("checks"), "configs/datasets.yaml checks"),
                     (model_yaml.get("checks"), f"{label} checks"))
    # A key without a check takes any value of its type (`-c pool=banana`): refused here, for every
    # model, as tests/test_hostile.py refuses it for the shipped YAMLs. A bool needs none.
    for key, default in declared.items():
        example = default.example if isinstance(default, _Nullable) else default
        if key not in checks and not isinstance(example, bool):
            raise UsageError(_no_check(key, default, *(("configs/datasets.yaml", "defaults")
                                                       if key in datasets_yaml["defaults"] else (label, "common"))))
    return declared, checks, datasets_yaml, model_path, model_yaml


def check_config(model: str, config, where: str, config_dir: Path = CONFIG_DIR) -> EasyDict:
    """A finished config written elsewhere (a run's model.json), held to the checks `load_config`
    applies to each of its layers: a mapping of every key `model` declares and no other, each value
    of its declared type and meaning. Returns it as `load_config` would (an int standing for a
    float made one); anything else is one UsageError line that starts with `where`."""
    if not isinstance(config, dict):
        raise UsageError(f"{where} must be a mapping of key: value, got {_type_name(config)}")
    declared, checks, _, _, _ = _rules(model, config_dir)
    config = {**{k: v for k, v in ADDED_KEYS.items() if k in declared}, **config}    # a run from before the key
    missing = [key for key in declared if key not in config]
    if missing:
        raise UsageError(f"{where} lacks the {model} key(s) {', '.join(missing[:5])}"
                         f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}")
    checked: dict = {}
    try:
        _apply(checked, config, declared, where, checks, {})
    except UsageError as e:          # a value written by anyone: its repr in the line may be long
        message = str(e)
        raise UsageError(message if len(message) <= 400 else message[:400] + "...") from None
    return EasyDict(checked)


def load_config(model: str, dataset: str, *, preset: str | None = None, overrides=(),
                config_dir: Path = CONFIG_DIR, overrides_from: str = "command-line override -c",
                origins: dict | None = None) -> EasyDict:
    """Resolve the full config of one (model, dataset) run; see the module docstring.
    `overrides` are 'key=value' strings, (key, value) pairs or (key, value, where) triples;
    `overrides_from` names where the others were written, for the error a bad one raises.
    `origins`, a dict when given, is filled with key -> where its value was set (the layer's name
    as the errors give it), so that a check made on the whole config later (the trainer's
    key_eval, which depends on the dataset) blames the layer that set the value."""
    origins = {} if origins is None else origins
    dataset = str(dataset).lower()
    facts = dataset_facts(dataset, config_dir)
    _, variant_overrides = model_config_name(model)
    declared, checks, datasets_yaml, model_path, model_yaml = _rules(model, config_dir)
    label = _yaml_label(model_path, config_dir)

    config: dict = {}
    _apply(config, datasets_yaml["defaults"], declared, "configs/datasets.yaml defaults", checks, origins)
    _apply(config, facts.get("config") or {}, declared, f"{declared_in(dataset)} {dataset}.config", checks, origins)
    _apply(config, model_yaml.get("common") or {}, declared, f"{label} common", checks, origins)
    _apply(config, model_yaml.get(dataset) or {}, declared, f"{label} {dataset}", checks, origins)
    _apply(config, variant_overrides, declared, f"model variant {model}", checks, origins)
    if preset is not None:
        presets = model_yaml.get("presets") or {}
        if preset not in presets:
            raise UsageError(f"unknown preset {preset!r} for {model}; {label} defines: "
                             f"{', '.join(map(str, presets)) or 'none'}")
        if not isinstance(preset, str) or not PRESET_NAME.fullmatch(preset):   # its runs' records would be skipped
            raise UsageError(f"preset {preset!r} of {label}: a preset's name is 1 to 64 letters, digits, _, . or -, "
                             f"as run records hold it; rename it")
        _apply(config, presets[preset], declared, f"{label} presets.{preset}", checks, origins)
    ours = Path(config_dir) == Path(CONFIG_DIR)
    shown = f"configs/{model_path.name}" if ours and model_path.parent == Path(CONFIG_DIR) else str(model_path)
    keys_in = (f"{model}'s keys are the common: block of {shown} and the defaults of "
               f"{'configs/datasets.yaml' if ours else Path(config_dir) / 'datasets.yaml'}")
    for item in overrides:
        key, value, *where = item if isinstance(item, tuple) else parse_override(item)
        _apply(config, {key: value}, declared, where[0] if where else overrides_from, checks, origins, keys_in)
    return EasyDict(config)


def trainer_keys_apart(config: dict, given: dict, config_dir: Path = CONFIG_DIR) -> dict[str, dict]:
    """The trainer keys (datasets.yaml `defaults`) whose value in `config`, a run's config at a `--preset`, is not
    the one `given` (the same model, dataset and preset without the run's overrides) has: {key: {"value": the run's,
    "preset": the preset's}}, in the defaults' order. `pretrained` is left out: `--synthetic` sets it. A run records
    it as it starts (its record's `trainer_overrides`), and the tables name these keys."""
    trainer_keys, _ = trainer_checks(config_dir)
    return {key: {"value": config[key], "preset": given[key]} for key in trainer_keys
            if key != "pretrained" and key in config and key in given and config[key] != given[key]}


def config_identity(config: dict) -> dict:
    """`config` as a run's identity sees it: without a key of ADDED_KEYS at the value runs had before it, nor
    `grad_accum_rule` where `grad_accum` is 1: a step after every batch trains alike under both rules, so
    paper.yaml's `mmsa` finds TFN's and LMF's runs of the default and trains no copy of them."""
    identity = {k: v for k, v in config.items() if k not in ADDED_KEYS or ADDED_KEYS[k] != v}
    if config.get("grad_accum") == 1:
        identity.pop("grad_accum_rule", None)
    return identity


def config_hash(config: dict) -> str:
    """Stable short hash of a resolved config (sorted-key JSON of its `config_identity`)."""
    blob = json.dumps(config_identity(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_config(config: dict, path: Path) -> None:
    with open_new(path, "w", encoding="utf-8") as f:        # a run folder's config.yaml: never through a link
        yaml.safe_dump(json.loads(json.dumps(config)), f, sort_keys=True)
