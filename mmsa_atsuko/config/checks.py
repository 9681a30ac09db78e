"""What a config value must be: its declared default's type, and a check on what it means.

A value must have the declared default's type (an int may stand for a float, and a float for the
int default of a real-valued key, see Check.real; null only where the default is null), and no
float may be NaN or infinite. A key that is null by default gets its type from a `nullable:` block
of the YAML that declares it (datasets.yaml for trainer keys, the model's YAML for its own).

A value must also mean something (`check_meaning`): a list has as many values as its declared
default, and every key has a check: the one a `checks:` block of the YAML that declares it names,
else the first of DEFAULT_CHECKS whose name pattern matches. A check is an interval such as
"[0, 1)" or "[1, inf)" (numbers only; each value of a list must lie in it), a list of the allowed strings,
`increasing` (a list whose values rise: a low and a high end), or `any` (checked where it is used,
or free). A bool needs none. `load_config` refuses a key without one, in one line naming the line
to add; tests/test_hostile.py keeps every shipped YAML so.

Here too: applying one layer of key: value pairs to a config (`_apply`: unknown keys, types,
checks), and a command line's overrides, each key once (`parse_overrides`).
"""
from __future__ import annotations

import difflib
import fnmatch
import math
import re

import yaml

from ..errors import UsageError
from .yaml_files import _SafeLoader, parse_override


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _a_type_name(value) -> str:
    """'an int', 'a float', 'a list', 'null'."""
    name = _type_name(value)
    return name if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


class _Nullable:
    """The declared default of a key that is null by default but has a type when set (a YAML
    `nullable:` block names it): without one, `grad_clip=1` and `grad_clip=1.0` would be two
    configs with two hashes, and a sweep would run the same run twice."""

    EXAMPLES = {"float": 0.0, "int": 0, "bool": False, "str": ""}

    def __init__(self, type_name: str, where: str):
        if type_name not in self.EXAMPLES:
            raise UsageError(f"{where}: nullable types are {', '.join(self.EXAMPLES)}, got {type_name!r}")
        self.example = self.EXAMPLES[type_name]


def _declare_nullable(declared: dict, block, where: str) -> None:
    for key, type_name in (block or {}).items():
        if key not in declared or declared[key] is not None:
            raise UsageError(f"{where}: nullable key {key!r} must be declared with a null default")
        declared[key] = _Nullable(type_name, where)


# The check of a key whose YAML names none, by the key's name; first match wins.
DEFAULT_CHECKS = (
    ("learning_rate*", "(0, inf)"),
    ("*dropout*", "[0, 1)"),             # a probability of dropping; 1 would drop everything
    ("*_rate", "[0, 1)"),
    ("*temperature*", "(0, inf)"),        # divides logits
    ("weight_decay*", "[0.0, inf)"),     # 0.0: a real number (Check.real), so `lambda_x: 0` takes 0.5 too
    ("lambda_*", "[0.0, inf)"),          # loss weights: 0 switches a term off, a negative one rewards it
    ("loss_weight_*", "[0.0, inf)"),
    ("*_weight", "[0.0, inf)"),
    ("*dim*", "[1, inf)"),               # widths, sizes, counts
    ("*size*", "[1, inf)"),
    ("*_out", "[1, inf)"),
    ("*_layers", "[1, inf)"),
    ("num_*", "[1, inf)"),
)
_INTERVAL = re.compile(r"([\[(])\s*(-?inf|[-+0-9.e]+)\s*,\s*(-?inf|[-+0-9.e]+)\s*([\])])")


class Check:
    """One key's check, parsed from its YAML spelling (see the module docstring)."""

    def __init__(self, spec, where: str):
        self.spec, self.choices, self.interval, self.real = spec, None, None, False
        if isinstance(spec, list) and spec and all(isinstance(c, str) for c in spec):
            self.choices = tuple(spec)
        elif spec not in ("any", "increasing"):
            match = _INTERVAL.fullmatch(str(spec).strip())
            if not match:
                raise UsageError(f"{where}: check {spec!r} is not an interval like \"[0, 1)\", a list of "
                                 f"choices, increasing or any")
            left, lo, hi, right = match.groups()
            self.interval = (float(lo), float(hi), left == "[", right == "]")
            self.words = {"[0, inf)": "0 or more", "[0.0, inf)": "0 or more", "(0, inf)": "positive",
                          "(0, 1)": "between 0 and 1"}.get(
                f"{left}{lo}, {hi}{right}", f"at least {lo}" if (left, hi) == ("[", "inf") else f"in {spec}")
            # Real-valued: a finite end that is open ("[0, 1)", "(0, inf)") or not spelled as an
            # integer ("[0.0, inf)"); "[1, inf)" is a count. An int default there takes a float too.
            self.real = any(bound.lstrip("-") != "inf" and (not closed or not re.fullmatch(r"-?\d+", bound))
                            for bound, closed in ((lo, left == "["), (hi, right == "]")))

    def problem(self, value) -> str | None:
        """What `value` should be, or None when it passes."""
        if self.spec == "increasing":
            if any(not b > a for a, b in zip(value, value[1:])):
                return "increasing (each value above the one before: low, high)"
            return None
        if self.choices is not None:
            return None if value in self.choices else f"one of {', '.join(self.choices)}"
        if self.interval is not None:
            lo, hi, closed_lo, closed_hi = self.interval
            inside = ((value >= lo if closed_lo else value > lo) and (value <= hi if closed_hi else value < hi))
            return None if inside else self.words
        return None


def _checks(declared: dict, *blocks: tuple[dict | None, str]) -> dict:
    """key -> Check: the `checks:` blocks (later wins), then DEFAULT_CHECKS by name."""
    checks = {}
    for block, where in blocks:
        for key, spec in (block or {}).items():
            if key not in declared:
                raise UsageError(f"{where}: check for unknown key {key!r}")
            checks[key] = Check(spec, where)
    for key in declared:
        if key not in checks:
            spec = next((spec for pattern, spec in DEFAULT_CHECKS if fnmatch.fnmatchcase(key, pattern)), None)
            if spec is not None:
                checks[key] = Check(spec, "DEFAULT_CHECKS")
    return checks


_YAML11_EXPONENT = re.compile(r"([-+]?)(\d*\.?\d*)[eE]([-+]?)(\d+)")


def number_hint(value) -> str:
    """What to write instead of a string that spells a number ('' for any other value): PyYAML
    reads YAML 1.1, where `1e-3` and `5e-5` are strings (a float needs a dot and a signed exponent)."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return ""
    match = _YAML11_EXPONENT.fullmatch(text)
    if match and math.isfinite(number):
        sign, mantissa, exp_sign, exponent = match.groups()
        spelled = f"{sign}{mantissa if '.' in mantissa else mantissa + '.0'}e{exp_sign or '+'}{exponent}"
        if yaml.load(spelled, Loader=_SafeLoader) == number:
            return f"; write {spelled} (YAML 1.1 reads {text} as a string)"
    return "; write it without quotes" if math.isfinite(number) else ""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _no_check(key: str, default, home: str, block: str) -> str:
    """The one line for a declared key that has no check: which line to add, and where."""
    example = default.example if isinstance(default, _Nullable) else default
    items = example if isinstance(example, (list, tuple)) and example else [example]
    tail = number_hint(example)
    if tail or all(_is_number(v) for v in items):
        real = tail or any(isinstance(v, float) for v in items)
        line, what = f'{key}: "{"[0.0, inf)" if real else "[1, inf)"}"', "an interval"
    elif isinstance(example, str):
        line, what = f"{key}: [{example or 'word'}, ...]", "the allowed words"
    else:
        return (f"{home} {block}: {key} has no check; add `{key}: any` (checked where it is used), an interval "
                f"or the allowed words to the checks: block of {home} (README, Configs)")
    return (f"{home} {block}: {key} has no check; add a line to the checks: block of {home}, e.g. "
            f"`{line}` ({what}), or `{key}: any` if every value is fine (README, Configs){tail}")


def check_meaning(key: str, value, declared, check: Check | None, where: str) -> None:
    """UsageError (naming the key) unless `value`, of the right type already, means something:
    a list as long as its default, and the key's check on the value or each of its values. An
    interval or `increasing` check takes numbers only: a string there (`hidden_dim: "64"` declares
    a string) is refused in one line, never compared with a bound. `where` "" leaves the line unprefixed, for a
    caller that prefixes it (a model.json's checks)."""
    at = f"{where}: " if where else ""
    if value is None or isinstance(value, bool):
        return
    example = declared.example if isinstance(declared, _Nullable) else declared
    numeric = check is not None and (check.interval is not None or check.spec == "increasing")
    if isinstance(value, (list, tuple)):
        if isinstance(example, (list, tuple)) and len(value) != len(example):
            raise UsageError(f"{at}{key} must have {len(example)} values (like {list(example)!r}), got {value!r}")
        for i, item in enumerate(value):
            if numeric and not _is_number(item):
                raise UsageError(f"{at}{key}[{i}] must be a number, got {item!r} "
                                 f"(in {value!r}){number_hint(item)}")
        if check is not None and check.spec == "increasing":
            what = check.problem(value)
            if what:
                raise UsageError(f"{at}{key} must be {what}, got {value!r}")
            return
        for i, item in enumerate(value):
            what = check.problem(item) if check is not None and isinstance(item, (int, float, str)) else None
            if what:
                raise UsageError(f"{at}{key}[{i}] must be {what}, got {item!r} (in {value!r})")
        return
    if check is not None and check.spec == "increasing":
        raise UsageError(f"{at}{key} must be a list of numbers, each above the one before (low, high), "
                         f"got {value!r}")
    if numeric and not _is_number(value):
        raise UsageError(f"{at}{key} must be a number, got {value!r}{number_hint(value)}")
    what = check.problem(value) if check is not None else None
    if what:
        null = "null or " if isinstance(declared, _Nullable) else ""
        raise UsageError(f"{at}{key} must be {null}{what}, got {value!r}")


def _coerce(key: str, value, declared, where: str, real: bool = False):
    """Check `value` against the declared default's type; return the value to store. `real`: the
    key's check is real-valued (Check.real), so an int default takes a float too."""
    if isinstance(value, float) and not math.isfinite(value):     # -c lr=1e999 reads as inf
        raise UsageError(f"{where}: {key} must be a finite number, got {value!r}")
    if isinstance(declared, _Nullable):
        if value is None:
            return None
        declared = declared.example               # then checked (and an int made a float) as below
    elif declared is None:
        return value
    if value is None:
        raise UsageError(f"{where}: {key} cannot be null (it is {_a_type_name(declared)}, e.g. {declared!r})")
    if isinstance(declared, bool) or isinstance(value, bool):
        ok = isinstance(declared, bool) and isinstance(value, bool)
    elif isinstance(declared, float):
        if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            # YAML reads `-c lr=nan` as the word (only .nan is the number): say what is wrong with it.
            raise UsageError(f"{where}: {key} must be a finite number, got {value!r}")
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    elif isinstance(declared, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(declared, int) and real:
        # `fusion_dropout: 0` declared an int, and a preset's 0.1 was refused ("must be an int"): a
        # real-valued check (a dropout's [0, 1), a temperature's (0, inf)) takes a float too. The value
        # is stored as written, an int staying an int: converting it would change the config hash of
        # every recorded run whose YAML holds such an int, while a float here was refused before, so
        # no recorded run holds one. The cost: 0 and 0.0 are two configs; declare 0.0 to have one.
        ok = _is_number(value)
    else:
        ok = isinstance(value, type(declared))
    if not ok:
        what = "a number" if isinstance(declared, int) and real else _a_type_name(declared)
        raise UsageError(f"{where}: {key} must be {what} like {declared!r}, got {value!r}"
                         f"{number_hint(value) if _is_number(declared) else ''}")
    return value


def _apply(config: dict, layer: dict, declared: dict, where: str, checks: dict, origins: dict, keys_in="") -> None:
    """One layer; `keys_in`: where the keys are declared, for a key close to none (`-c lr=0.1` named nothing)."""
    if not isinstance(layer, dict):
        raise UsageError(f"{where} must be a mapping of key: value, got {_type_name(layer)}")
    for key, value in layer.items():
        if key not in declared:
            close = difflib.get_close_matches(str(key), declared, n=3, cutoff=0.5)
            hint = f"; closest known: {', '.join(close)}" if close else f"; {keys_in}" if keys_in else ""
            raise UsageError(f"{where}: unknown config key {key!r}{hint}")
        config[key] = _coerce(key, value, declared[key], where, real=getattr(checks.get(key), "real", False))
        check_meaning(key, config[key], declared[key], checks.get(key), where)
        origins[key] = where


def parse_overrides(items) -> list[tuple]:
    """The command line's `-c` list ('key=value' strings or (key, value) pairs) parsed, each key at most
    once: with two values for one key the last won without a word (a seed given twice is refused too)."""
    parsed, seen = [], {}
    for item in items:
        key, value, *where = item if isinstance(item, tuple) else parse_override(item)
        if key in seen:
            raise UsageError(f"-c {key} is given twice ({seen[key]!r} and {value!r}); give it once")
        seen[key] = value
        parsed.append((key, value, *where))
    return parsed
