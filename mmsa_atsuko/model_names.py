"""The names the model files register, read from their source (ast) without importing them.

The registry knows a model once its file is imported (`registry.discover`), and the model files import torch (2-4 s
of a cold start). A sweep or tune checks its model names before its planning line, which comes before torch
(bench/README.md, "Start-up of the long commands"): a name is looked up here, and only a name not found here is
asked of the registry, whose `canonical_model_name` says why it is unknown (the one home of that line). So this
list may miss a name (the registry then finds it, later), never add one the registry lacks but for a file that
fails to import, which the registry names when the run is prepared.

A name counts when it is the first argument, a string, of a `register_model(...)` decorator or a
`register_variant(...)` call in a file the registry imports: the modules of `registry.MODEL_PACKAGES` and the
`*.py` of the folders of $MMSA_ATSUKO_MODELS (`--models DIR`). tests/test_registry.py holds the list equal to the
registry's.

`model_meta` gives a model's `registry_meta` (its YAML's name, a variant's switches, its tasks) the same way, so the
config loader checks a sweep's and a tune's configs and search space before torch: read from the call's literal
keywords (a variant's over those of its base, a class the same file registers) where every one is a literal and no
class of the file sets `registry_meta_extra`; else, and for the models of a --models folder (whose YAML is found
through the registry's import of their files), the registry's. tests/test_registry.py holds it equal too.
"""
from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path

from .registry import MODEL_PACKAGES, canonical_model_name, get_model_class, registry_now
from .user_models.discovery import model_folders, parse_source

REGISTERING = ("register_model", "register_variant")


def registered_names() -> set[str] | None:
    """Every model name the model files register, or None where a folder of $MMSA_ATSUKO_MODELS is missing or
    holds no model file (the registry says so in its line)."""
    files = [file for package in MODEL_PACKAGES for file in _package_files(package)]
    for folder in model_folders():
        found = sorted(folder.glob("*.py")) if folder.is_dir() else []
        if not found:
            return None
        files += found
    return {name for file in files for name in _registrations(file)}


def check_model_names(names) -> None:
    """A name that no model file registers is the registry's one line (`canonical_model_name`), before torch where
    every name is found in the files' source; names in any letter case, as the registry takes them."""
    known = registered_names()
    for name in dict.fromkeys(names):
        if known is None or str(name).lower() not in known:
            canonical_model_name(name)            # imports the model files: raises, or finds what the scan missed


def _package_files(package: str) -> list[Path]:
    """The source files of `package` (a module, or a package and the modules in it, as `import_submodules`
    imports them), found without importing it; none for one that is not there (discovery keeps its error)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations is None:
        return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []
    files = []
    for folder in spec.submodule_search_locations:
        for module in pkgutil.iter_modules([folder]):
            path = Path(folder) / module.name
            files.append(path / "__init__.py" if module.ispkg else path.with_suffix(".py"))
    return [file for file in files if file.is_file()]


_SCANNED: dict[tuple, dict] = {}          # (file, mtime, size) -> its registrations, parsed once


def _registrations(file: Path) -> dict[str, dict | None]:
    """name -> the registry_meta `file` registers it with, None where the source alone does not say."""
    try:
        info = file.stat()
        key = (str(file), info.st_mtime_ns, info.st_size)
        if key not in _SCANNED:
            tree = parse_source(file)
            _SCANNED[key] = {} if tree is None else _scan(tree)     # the registry keeps its import error
        return _SCANNED[key]
    except OSError:
        return {}


def _scan(tree: ast.Module) -> dict[str, dict | None]:
    extra = any(isinstance(node, ast.Name) and node.id == "registry_meta_extra" for node in ast.walk(tree))
    found, of_class = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and _called(decorator.func) == "register_model":
                    of_class[node.name] = _literal_meta(decorator, 1)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _called(node.func) in REGISTERING and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        name, meta = node.args[0].value, _literal_meta(node, 2 if _called(node.func) == "register_variant" else 1)
        if _called(node.func) == "register_variant":
            base = node.args[1] if len(node.args) > 1 else None
            base_meta = of_class.get(base.id) if isinstance(base, ast.Name) else None
            meta = None if meta is None or base_meta is None else {**base_meta, "name": name, **meta}
        else:
            meta = None if meta is None else {"name": name, **meta}
        found[name] = None if extra else meta
    return found


def _literal_meta(call: ast.Call, positional: int) -> dict | None:
    """The keywords of a registering call as a dict, None unless each is a literal (and no more positionals)."""
    if len(call.args) != positional or any(k.arg is None for k in call.keywords):
        return None
    try:
        return {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError:
        return None


def model_meta(name: str) -> dict:
    """`registry_meta` of model `name`, in any letter case (see the module docstring); an unknown name is the
    registry's line."""
    key = str(name).lower()
    if key in registry_now() or model_folders():
        return get_model_class(name).registry_meta
    for package in MODEL_PACKAGES:
        for file in _package_files(package):
            meta = _registrations(file).get(key)
            if meta is not None:
                return meta
    return get_model_class(name).registry_meta


def _called(func: ast.expr) -> str | None:
    """The name a call is made by: `register_model(...)` or `registry.register_model(...)`."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
