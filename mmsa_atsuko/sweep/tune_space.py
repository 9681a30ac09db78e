"""`run.py tune`'s search spaces: read, checked against the model's config, sampled.

A space is `configs/tune/<model>.yaml` (or `--space FILE`), one entry per config key:
`{low, high[, log]}` (float, or int when both bounds are integers: it must be the key's type) or
`{choices: [...]}`. `check_space` runs before a study starts, so a value the model's checks refuse
is one line naming the file and the key, and no trial or storage file exists yet.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..atomic import not_a_file
from ..config import CONFIG_DIR, declared_type, number_hint, read_yaml
from ..errors import UsageError
from ..training.trainer_config import resolve_config
from ..user_models.discovery import model_origin
from .sweep_file import Setting


def space_name(model: str, path=None) -> str:
    """What a message calls the search space file: as given, else the project's configs/tune/<model>.yaml."""
    return str(path) if path else f"configs/tune/{model}.yaml"


def read_space(model: str, path=None) -> dict:
    """The search space of `model` (configs/tune/<model>.yaml, or `path`), its format checked
    (its values against the model's config: `check_space`)."""
    form = "config key -> {low, high[, log]} or {choices: [...]}, one line each (README, Tuning)"
    what = not_a_file(path) if path else None       # a named pipe or a device "does not exist", it said
    if what:
        raise UsageError(f"--space {path} {'does not exist' if what == 'not found' else what}: give a YAML file of "
                         f"{form}")
    if not path and model_origin(model) is not None:
        # A model of your own lives outside the checkout: writing configs/tune/<model>.yaml into it is no advice
        raise UsageError(f"no search space for {model}, a model of your own ({model_origin(model)}): pass "
                         f"--space FILE, a YAML file of {form}")
    path = Path(path) if path else CONFIG_DIR / "tune" / f"{model}.yaml"
    if not path.is_file():
        raise UsageError(f"no search space for {model}: {path} does not exist; write it or pass --space FILE, "
                         f"a YAML file of {form}")
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


def outside(space: dict, params: dict, complete: bool, where: str) -> str | None:
    """What of a stored trial's `params` `suggest` could not have given from `space` (a key it does not
    search, a value off its choices or past its range; for a `complete` trial, a key it lacks), or None."""
    for key, value in params.items():
        spec = space.get(key)
        if spec is None:
            fits = False
        elif "choices" in spec:
            fits = any(type(value) is type(choice) and value == choice for choice in spec["choices"])
        else:
            ints = isinstance(spec["low"], int) and isinstance(spec["high"], int)
            fits = (type(value) is int if ints else type(value) is float) and \
                float(spec["low"]) <= value <= float(spec["high"])
        if not fits:
            return f"{key} {str(value)[:40]}, which {where} cannot propose"
    missing = sorted(set(space) - set(params)) if complete else []
    return f"no {missing[0]}, which {where} searches" if missing else None


def _bound(spec: dict, end: str, key: str, where: str) -> float:
    """A range's `low` or `high` as a number. A string is none, even one that spells a number: YAML 1.1 reads
    `1e-4` as a string, and a space file, a YAML file as a sweep file is, is held to a YAML file's spelling
    (`check_space` gives the sweep file's line for it); the study stored the string as its bound."""
    value = spec[end]
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number):
        raise UsageError(f"{where}: {key}: {end} must be a finite number, got {value!r}")
    return number


def _like_int(spec: dict) -> str:
    """' (8, not 8.0)' for a range whose float bound is a whole number, the case a YAML reader misses."""
    bound = next((v for v in (spec["low"], spec["high"]) if not isinstance(v, int)), None)
    whole = isinstance(bound, float) and bound.is_integer()
    return f" ({int(bound)}, not {bound!r})" if whole else ""


def check_space(model: str, base: Setting, space: dict, where: str) -> None:
    """One UsageError line naming `where` (the space file) and the key, unless every value the sampler
    can propose passes what a `-c` override must: the key's type and check and the trainer's checks
    (`resolve_config`, which blames the space file for the value it gives).

    A choice list: each choice is checked. A range: its kind (int when both bounds are integers, as
    `suggest` decides) must be the key's type, and both bounds are checked. The bounds stand for the
    whole range because every check a number can meet is an interval (config/checks.py's `[a, b)` checks,
    check_trainer_config's `>= 1`, `> 0`, `(0, 1)`): an interval holding both ends holds all between.
    The other kinds refuse nothing (`any`) or take no number (`increasing` is for lists, a list of
    choices for strings; the type check refuses a range for such a key). A check that is not an
    interval (a set with holes, like "a power of 2") would need a choice list instead of a range:
    add a kind like that to config/checks.py and this function must refuse ranges for its keys."""
    for key, spec in space.items():
        if "choices" in spec:
            values = [(value, f"a choice of {key}", "drop it from the choices") for value in spec["choices"]]
        else:
            for end in ("low", "high"):
                if number_hint(spec[end]):      # `1e-4`, `"8"`: the key's check gives the sweep file's line for it
                    _check_value(model, base, key, spec[end], where, f"the {end} bound of {key}'s range", "")
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
            _check_value(model, base, key, value, where, role, advice)


def check_space_keys(model: str, base: Setting, space: dict, config, where: str) -> None:
    """One UsageError line for the first key of `space` that is no config key of `model` (`config`: its resolved
    config), worded as `-c` words one: the space file, the key and the closest known keys, from the same code."""
    unknown = [key for key in space if key not in config]
    if unknown:
        resolve_config(model, base.dataset, preset=base.preset, max_epochs=base.max_epochs,
                       overrides=[*base.overrides, (unknown[0], None, where)])     # raises: the key is unknown
        raise UsageError(f"{where}: unknown config key {unknown[0]!r} of {model}")    # not reached


def check_objective_keys(space: dict, config, where: str) -> None:
    """One UsageError line if the space searches what a trial's score is, not how it is reached: the metric
    (`key_eval`), the rule that makes valid's Loss (`valid_loss`), or, when that score is MMSA's Loss (a mean of
    batch means), the valid batch size (`eval_batch_size`). Trials scored on different metrics, or on Losses made
    two ways, are not comparable: a minimising study took a Corr of 0.32 for better than a Loss of 1.26. `config`:
    the study's config, whose values of these keys every trial keeps."""
    fixed = "set it for the whole study with -c instead (now {}), or tune one study per value"
    if "key_eval" in space:
        raise UsageError(f"{where}: key_eval cannot be searched: it is the valid metric every trial is scored on, "
                         f"and scores of different metrics cannot be compared; "
                         f"{fixed.format(f'key_eval={config.key_eval}')}")
    if "valid_loss" in space:
        raise UsageError(f"{where}: valid_loss cannot be searched: it is how valid's Loss is computed, which "
                         f"the trials are scored on with key_eval Loss (and the plateau scheduler steps on), not a "
                         f"setting of the model; {fixed.format(f'valid_loss={config.valid_loss}')}")
    if "eval_batch_size" in space and config.key_eval == "Loss" and config.valid_loss == "mmsa":
        raise UsageError(f"{where}: eval_batch_size cannot be searched with valid_loss mmsa and key_eval Loss: "
                         f"MMSA's Loss is a mean of batch means, so the valid batch size changes the score a trial "
                         f"gets, not the model; drop it from the space, or search with -c valid_loss=exact")


def _check_value(model: str, base: Setting, key: str, value, where: str, role: str, advice: str) -> None:
    """One UsageError line unless `value` of `key` passes as a `-c` override would, blamed on `where`; `role` says
    which value of the space it is, `advice` what to do (none for a number spelled as a string: the line says how
    to write it)."""
    try:
        resolve_config(model, base.dataset, preset=base.preset, max_epochs=base.max_epochs,
                       overrides=[*base.overrides, (key, value, where)])
    except UsageError as error:
        text = str(error) if str(error).startswith(f"{where}:") else f"{where}: {error}"
        advice = "" if isinstance(value, str) and number_hint(value) else advice
        raise UsageError(f"{text} ({role}){': ' + advice if advice else ''}") from None
