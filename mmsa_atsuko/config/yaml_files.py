"""Reading a YAML file: parsed once per file version (the cache's key holds the file's mtime), and
a fresh copy to every caller.

A YAML file may come from anyone (a sweep file, a `--datasets FILE`, a model's YAML beside a
`--models DIR` file), so what it may cost is bounded before anything is built from it: a regular file
(a named pipe would block the read forever) of at most MAX_BYTES, at most MAX_VALUES values and
MAX_DEPTH levels once its aliases are expanded (an alias "bomb" of nine anchors nine times over is
43 million values in a file of 800 bytes), no alias that holds itself, and no integer of more than
MAX_DIGITS digits (Python refuses to read one of over 4300). A key given twice in one mapping is
refused too: PyYAML keeps the last without a word, so `hidden_dim: 32` above a forgotten
`hidden_dim: 64` ran 64. `parse_value` holds a `-c key=value`'s value to the same bounds, and
`parse_override` reads one as the user meant it."""
from __future__ import annotations

import copy
import functools
import io
from pathlib import Path

import yaml

from ..atomic import not_a_file
from ..errors import UsageError, one_line


# libyaml's loader where PyYAML was built with it: the pure-Python one takes ~60 ms for
# datasets.yaml, more than validating a feature file.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 1 << 20       # the shipped YAMLs are under 10 KB each
MAX_VALUES = 100_000      # the shipped YAMLs hold under 2,000 each
MAX_DEPTH = 64            # they nest 4 deep
MAX_DIGITS = 100          # a seed or a size: under 20 digits
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(path: Path) -> dict:
    """The YAML file as a dict (a fresh copy: callers may change it); an empty file is {}, a file that
    holds no mapping (a list, a string) is one line."""
    path = Path(path)
    # open() of a folder raised IsADirectoryError, a traceback (`run.py sweep configs/sweeps`); a named pipe blocks
    # open() until someone writes to it. What stands there is said as every other file's message says it.
    what = not_a_file(path)
    if what == "not found":
        raise UsageError(f"config file {path} not found")
    if what:
        raise UsageError(f"config file {path} {what}; give a YAML file" + (" in it" if path.is_dir() else ""))
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:                      # gone since the look above
        raise UsageError(f"config file {path} not found") from None
    data = _parse_yaml(str(path), mtime_ns)
    if not isinstance(data, dict):       # every caller reads keys: a list was an AttributeError (--datasets FILE)
        raise UsageError(f"config file {path} must be a mapping of key: value, got a {type(data).__name__}")
    return copy.deepcopy(data)


def parse_value(text: str, where: str):
    """A command-line value as YAML (`-c key=value`'s value), held to a file's bounds; yaml.YAMLError
    where it is no YAML, a UsageError starting with `where` where it is beyond them."""
    return _load(text, where)


@functools.lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int) -> dict:
    """Parsed once per file version (the mtime is part of the key, so an edited file is re-read)."""
    where = f"config file {path}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise UsageError(f"{where} is over {MAX_BYTES >> 20} MiB, far more than a YAML file of settings holds; "
                             "give the file meant")
        text = io.StringIO(raw.decode("utf-8"))
        text.name = path                     # what libyaml's messages call it
        data = _load(text, where)
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML: {one_line(e)}") from None
    except UnicodeDecodeError:               # a binary file given where a YAML file goes
        raise UsageError(f"{where} is not UTF-8 text; give a YAML file") from None
    except PermissionError:
        raise UsageError(f"{where} cannot be read by this user; fix its permissions") from None
    return data or {}


def _load(text, where: str):
    """`text` as YAML, its node graph measured (`_check_nodes`) before a value is built from it."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_nodes(root, where: str) -> None:
    """Refuse a document beyond the bounds of the module's docstring, walking its node graph once (an
    alias is a node reached twice: its values and depth are counted where it is used, computed once)."""
    measured: dict[int, tuple[int, int]] = {}       # id(node) -> (values, depth) below and with it
    open_nodes: set[int] = set()                    # nodes whose children are being measured
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if children_done:
            kids = [measured[id(kid)] for kid in _children(node)]
            values, depth = 1 + sum(v for v, _ in kids), 1 + max((d for _, d in kids), default=0)
            if values > MAX_VALUES:
                raise UsageError(f"{where} holds over {MAX_VALUES:,} values once its aliases are expanded (the "
                                 f"value at line {line}); a file of settings holds far fewer: write its values out")
            if depth > MAX_DEPTH:
                raise UsageError(f"{where} nests over {MAX_DEPTH} levels deep (the value at line {line}); "
                                 "settings nest a few levels at most")
            measured[key] = (values, depth)
            open_nodes.discard(key)
            continue
        if key in measured:
            continue
        if key in open_nodes:
            raise UsageError(f"{where}: the alias at line {line} names a value that holds it (a loop); "
                             "write the value out")
        if node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
            raise UsageError(f"{where}: line {line} holds an integer of {len(node.value)} characters; "
                             "no setting takes one that long")
        if isinstance(node, yaml.MappingNode):
            _check_keys_once(node, where)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node))


def _check_keys_once(mapping, where: str) -> None:
    """Refuse a key given twice in one mapping. Keys are compared as written with their resolved type (`1`
    and `'1'` are two keys); a merge key `<<` given twice merges both, so nothing is lost and it is left be."""
    first: dict[tuple[str, str], object] = {}
    for key_node, _ in mapping.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        again, seen = key_node.start_mark, first.setdefault((key_node.tag, key_node.value), key_node.start_mark)
        if seen is not again:
            here, there = f"line {again.line + 1}", f"line {seen.line + 1}"
            if again.line == seen.line:          # a flow mapping on one line (a -c value): the columns tell them apart
                here, there = f"{here}, column {again.column + 1}", f"{there}, column {seen.column + 1}"
            raise UsageError(f"{where}: {here} gives {key_node.value!r} again (first at {there}); give it once")


YAML11_BOOL_WORDS = {"on", "off", "yes", "no", "y", "n"}


def parse_override(text: str) -> tuple[str, object]:
    """'lr=1e-3' -> ('lr', 0.001); values are parsed as YAML (numbers, bools, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"override {text!r} must look like key=value")
    if raw.strip().lower() in YAML11_BOOL_WORDS:
        # YAML 1.1 reads on/off/yes/no as booleans; `-c distill_form=off` means the word (YAML 1.2 agrees).
        return key.strip(), raw.strip()
    try:
        # held to a YAML file's bounds: 100,000 '[' were a RecursionError in PyYAML's pure-Python parser
        value = parse_value(raw, f"-c {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '1e-3' as a string; accept it as the number the user meant.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key.strip(), value
