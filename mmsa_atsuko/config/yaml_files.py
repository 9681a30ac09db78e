"""Reading a YAML file: parsed once per file version (the cache's key holds the file's mtime), and
a fresh copy to every caller."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from ..errors import UsageError, one_line


# libyaml's loader where PyYAML was built with it: the pure-Python one takes ~60 ms for
# datasets.yaml, more than validating a feature file.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict:
    """The YAML file as a dict (a fresh copy: callers may change it)."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise UsageError(f"config file {path} not found") from None
    if path.is_dir():           # open() would raise IsADirectoryError, a traceback (`run.py sweep configs/sweeps`)
        raise UsageError(f"config file {path} is a folder; give a YAML file in it")
    return copy.deepcopy(_parse_yaml(str(path), stamp))


@functools.lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int) -> dict:
    """Parsed once per file version (the mtime is part of the key, so an edited file is re-read)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_SafeLoader)
    except yaml.YAMLError as e:
        raise UsageError(f"config file {path} is not valid YAML: {one_line(e)}") from None
    except UnicodeDecodeError:               # a binary file given where a YAML file goes
        raise UsageError(f"config file {path} is not UTF-8 text; give a YAML file") from None
    except PermissionError:
        raise UsageError(f"config file {path} cannot be read by this user; fix its permissions") from None
    return data or {}
