"""One registry for every model: name -> class, found by importing the model packages.

A model registers itself in its own file with `@register_model(name)` (or `register_variant`).
Importing `baselines` imports every module in it (`import_submodules`), and importing
`mmsa_atsuko.models.atsuko` registers Atsuko and its ablations; `list_models` and
`get_model_class` import those packages once, by name, so this module imports nothing of
the layers above it. A new baseline is one file in baselines/ plus its YAML in configs/.

Models of your own may live outside the checkout: every `*.py` of the folders named in
$MMSA_ATSUKO_MODELS (`--models DIR` sets it, so sweep workers see the same) is imported after the
packages, as `mmsa_atsuko_user_models.<stem>`, and a model registered there reads its YAML from that
folder (`model_yaml_path`). A folder that is missing or holds no model file, and a name the toolkit
already has, are one line (UsageError); a file that fails to import is kept like a baseline's.
The folders are that package's path, so a file imports the one beside it as `from .mylayers import
Block`; `from mylayers import Block` gets the same module (`_SiblingFinder`) where Python finds no
other `mylayers`, and where it does (a file named like a module of the standard library, the toolkit or
an installed package), discovery says so in one line instead of handing the model the other module.

Discovery imports module by module and keeps each failure: a baseline with a broken optional
dependency is listed as unavailable and cannot break the others (the fault of MMSA's eager
`AMIO.MODEL_MAP`).
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
import traceback
import types
from pathlib import Path

from .errors import UsageError, one_line

MODEL_PACKAGES = ("baselines", "mmsa_atsuko.models.atsuko")
# datasets.yaml and each model's configs/<name>.yaml: `config` reads them from here, and an unknown
# model's error names the YAML that no model file registers.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

_REGISTRY: dict[str, type] = {}
# module name -> ("ErrorType: message" in one line, what to do about it)
_IMPORT_ERRORS: dict[str, tuple[str, str]] = {}
_discovered = False

# Folders of models of your own, os.pathsep-separated: `--models DIR` on the command line sets it, so
# that sweep workers (other processes) import the same files.
MODELS_ENV = "MMSA_ATSUKO_MODELS"
USER_PACKAGE = "mmsa_atsuko_user_models"     # what a user's model file is imported as: no real package's name
_USER_MODELS: dict[str, Path] = {}           # model name registered from a folder of $MMSA_ATSUKO_MODELS -> its file
_USER_FILES: dict[str, Path] = {}            # module name (mmsa_atsuko_user_models.<stem>) -> its file
_USER_DIGESTS: dict[Path, str] = {}          # a user's model file -> sha256 of what was imported (no git knows it)
_user_done: dict[str, str] = {}              # folder imported -> '' (or the one-line error it gave, raised again)
_loading: Path | None = None                 # the user's model file being imported now


def register_model(name: str, **meta):
    """Class decorator: `@register_model("tfn", tasks=("regression", "classification"))`.

    `meta` lands on the class as `registry_meta` (e.g. `tasks`, `config_name` when a variant
    shares another model's YAML, `defaults` for variant-specific switches).
    """

    def decorate(cls):
        _check_free(name, again=_REGISTRY.get(name) is cls)
        own = cls.__dict__.get("registry_meta")
        if own is not None and own["name"] != name:
            # The metadata lives on the class: a second name would overwrite the first's.
            raise RuntimeError(f"class {cls.__name__} is already registered as {own['name']!r}; "
                               f"use register_variant({name!r}, {cls.__name__}) for a second name")
        cls.registry_meta = {"name": name, **meta, **getattr(cls, "registry_meta_extra", {})}
        _REGISTRY[name] = cls
        return cls

    return decorate


def register_variant(name: str, base: type, **meta):
    """Register `name` as a configuration variant of an already registered class."""
    _check_free(name, again=name in _REGISTRY and _REGISTRY[name].__mro__[1] is base)
    # The variant belongs to the module that registers it (usually its base's), not to this one: messages
    # and `python run.py list` name a model's module.
    module = sys._getframe(1).f_globals.get("__name__", base.__module__)
    variant = type(base.__name__ + "_" + name, (base,), {"__module__": module})
    variant.registry_meta = {**base.registry_meta, "name": name, **meta}
    _REGISTRY[name] = variant
    return variant


def _check_free(name: str, again: bool) -> None:
    """Refuse to register `name` over another model (`again`: the same model registered anew, as a
    re-imported module does). While a model file of your own is imported, a name already taken is
    one line (UsageError, which discovery does not keep as an import error), never a silent override."""
    if name != name.lower():     # lookups are case-insensitive by lowering the name asked for
        raise RuntimeError(f"model name {name!r} must be lowercase: register it as {name.lower()!r}")
    if name not in _REGISTRY:
        return
    if _loading is not None and _USER_MODELS.get(name) != _loading:
        owner = "the toolkit already has" if name not in _USER_MODELS else f"{_USER_MODELS[name]} registers too"
        raise UsageError(f"{_loading} registers {name!r}, which {owner}: rename it")
    if not again:
        raise RuntimeError(f"model name {name!r} registered twice")


def import_submodules(package: str, path) -> None:
    """Import every module of `package` (its `__init__` calls this with `__name__, __path__`);
    a module that fails to import is remembered (`import_errors`) and the others still load."""
    for module in pkgutil.iter_modules(path):
        _import(f"{package}.{module.name}")


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as e:       # a broken optional dependency, or a bug in the file: its models are unavailable
        _IMPORT_ERRORS[module] = (one_line(e), _fix_for(module, e))


def _fix_for(module: str, error: Exception, file: Path | None = None) -> str:
    """What to do about `module`'s import error: install a package it names that is not ours, else fix the
    file where it was raised (the deepest line of `module`'s own file in the traceback; `file`, a model file
    of your own, is that file)."""
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    ours = {m.partition(".")[0] for m in (*MODEL_PACKAGES, __package__, USER_PACKAGE)}
    if missing and missing.partition(".")[0] not in ours:
        return "install or fix what it needs"
    frames = traceback.extract_tb(error.__traceback__)
    if file is not None:
        raised = [(str(file), frame.lineno) for frame in frames if Path(frame.filename).resolve() == file]
        files = (str(file),)
    else:
        files = (f"{module.replace('.', '/')}.py", f"{module.replace('.', '/')}/__init__.py")
        raised = [(file, frame.lineno) for frame in frames for file in files
                  if Path(frame.filename).as_posix().endswith("/" + file)]
    return f"fix {raised[-1][0]}, line {raised[-1][1]}" if raised else f"fix {files[0]}"


def discover() -> None:
    """Import the model packages, once per process, then the model files of the folders in
    $MMSA_ATSUKO_MODELS (each folder once; a bad folder raises its line on every call)."""
    global _discovered
    if not _discovered:
        _discovered = True
        for package in MODEL_PACKAGES:
            _import(package)
    folders = model_folders()
    if folders:
        _user_package(folders)
    for folder in folders:
        key = str(folder)
        if key not in _user_done:
            _user_done[key] = ""
            try:
                _import_folder(folder)
            except UsageError as e:
                _user_done[key] = str(e)
        if _user_done[key]:
            raise UsageError(_user_done[key])


def model_folders() -> list[Path]:
    """The folders of models of your own: $MMSA_ATSUKO_MODELS (`--models DIR`), in order."""
    folders = [Path(f).expanduser().resolve() for f in os.environ.get(MODELS_ENV, "").split(os.pathsep) if f]
    return list(dict.fromkeys(folders))


class _SiblingLoader(importlib.abc.Loader):
    """`import mylayers` -> the module mmsa_atsuko_user_models.mylayers itself: one module, one set of classes."""

    def create_module(self, spec):
        return importlib.import_module(f"{USER_PACKAGE}.{spec.name}")

    def exec_module(self, module):
        pass                                      # imported (run) once, under its package's name


class _SiblingFinder(importlib.abc.MetaPathFinder):
    """A top-level name no other finder knows that is a file of a models folder (`from mylayers import Block`).
    Last on sys.meta_path: a file of yours never shadows a module of the standard library, the toolkit or an
    installed package (`_check_sibling_imports` says when a file of yours is shadowed by one)."""

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or USER_PACKAGE not in sys.modules or importlib.util.find_spec(
                f"{USER_PACKAGE}.{fullname}") is None:
            return None
        return importlib.util.spec_from_loader(fullname, _SiblingLoader())


def _user_package(folders: list[Path]) -> None:
    """mmsa_atsuko_user_models, a package whose path is the models folders (relative imports between their
    files), and `_SiblingFinder` last on sys.meta_path (absolute ones); sweep workers get both from discover."""
    package = sys.modules.get(USER_PACKAGE)
    if package is None:
        package = sys.modules[USER_PACKAGE] = types.ModuleType(USER_PACKAGE, "models of your own (--models DIR)")
        package.__spec__ = importlib.machinery.ModuleSpec(USER_PACKAGE, None, is_package=True)
    package.__path__ = package.__spec__.submodule_search_locations = [str(f) for f in folders]
    if not any(isinstance(finder, _SiblingFinder) for finder in sys.meta_path):
        sys.meta_path.append(_SiblingFinder())


def _check_sibling_imports(folder: Path, files: list[Path]) -> None:
    """`import X` in a file of a models folder where X.py is beside it but Python finds another X first (the
    standard library's, the toolkit's, an installed one): the model would get that X without a word."""
    stems = {f.stem for f in files} | {d.name for d in folder.iterdir() if (d / "__init__.py").is_file()}
    for file in files:
        try:
            tree = ast.parse(file.read_bytes(), str(file))
        except SyntaxError:
            continue                   # its import says so, kept like a baseline's failure
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for top in {name.partition(".")[0] for name in names} & stems:
                found = sys.modules.get(top) or importlib.util.find_spec(top)
                spec = getattr(found, "__spec__", found)
                if spec is None or isinstance(spec.loader, _SiblingLoader) or spec.name.startswith(USER_PACKAGE):
                    continue
                other = spec.origin if os.path.isabs(spec.origin or "") else f"Python's own {top} ({spec.origin})"
                yours = folder / f"{top}.py" if (folder / f"{top}.py").is_file() else folder / top
                raise UsageError(f"{file}, line {node.lineno}: `import {top}` gets {other}, not {yours} beside it; "
                                 f"write `from .{top} import ...` for yours, or rename it")


def _import_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise UsageError(f"model folder {folder} does not exist (--models DIR or ${MODELS_ENV}: a folder of "
                         f"model files <name>.py, each with its <name>.yaml beside it)")
    files = sorted(folder.glob("*.py"))
    if not files:
        raise UsageError(f"model folder {folder} holds no .py file: put a model file <name>.py that registers "
                         f"its model with @register_model, and its <name>.yaml, in it")
    _check_sibling_imports(folder, files)
    for file in files:
        _import_file(file)


def _import_file(file: Path) -> None:
    """Import one model file of your own as mmsa_atsuko_user_models.<stem> (in sys.modules before it runs,
    so that dataclasses and pickling find it); a failure is kept as a baseline's is."""
    global _loading
    module = f"{USER_PACKAGE}.{file.stem}"
    if _USER_FILES.get(module, file) != file:
        raise UsageError(f"{file} and {_USER_FILES[module]}: two model files of one name; rename one")
    _USER_FILES[module] = file
    before = set(_REGISTRY)
    _loading = file
    try:
        _USER_DIGESTS[file] = hashlib.sha256(file.read_bytes()).hexdigest()
        if module in sys.modules:      # imported already by a file beside it (`from .mylayers import Block`)
            return
        spec = importlib.util.spec_from_file_location(module, file)
        sys.modules[module] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[module])
    except UsageError:                 # a name the toolkit has: one line, the command does not start
        sys.modules.pop(module, None)
        raise
    except Exception as e:             # as a baseline's: its models are unavailable, the others load
        sys.modules.pop(module, None)
        _IMPORT_ERRORS[module] = (one_line(e), _fix_for(module, e, file))
    finally:
        _loading = None
    for name in set(_REGISTRY) - before:   # a model of a file imported by this one is that file's
        _USER_MODELS[name] = Path(getattr(sys.modules.get(_REGISTRY[name].__module__), "__file__", None) or file)


def model_yaml_path(config_name: str, config_dir: Path | None = None) -> Path:
    """Where the YAML of model config `config_name` is: beside its model file for a model registered from
    a folder of $MMSA_ATSUKO_MODELS, else `config_dir` (default configs/) / <config_name>.yaml."""
    if config_name in _USER_MODELS:
        return _USER_MODELS[config_name].parent / f"{config_name}.yaml"
    return (CONFIG_DIR if config_dir is None else Path(config_dir)) / f"{config_name}.yaml"


def model_origin(name: str) -> Path | None:
    """The model file of your own that registered `name`, or None for the toolkit's models."""
    return _USER_MODELS.get(name)


def model_source(name: str) -> dict | None:
    """{'path', 'sha256'} of the model file of your own that registered `name` (as it was when imported),
    for its run records: the checkout's git commit says nothing of a file outside it. None for ours."""
    file = _USER_MODELS.get(name)
    return None if file is None else {"path": str(file), "sha256": _USER_DIGESTS.get(file)}


def model_file(module: str) -> str:
    """How a message names model module `module`: its dotted name, or the path of a model file of your own."""
    return str(_USER_FILES.get(module, module))


def _shown_yaml(config_name: str) -> str:
    """How a message names a model's YAML: configs/<name>.yaml, or the full path of one of your own."""
    return str(model_yaml_path(config_name)) if config_name in _USER_MODELS else f"configs/{config_name}.yaml"


def list_models() -> list[str]:
    discover()
    return sorted(_REGISTRY)


def import_errors() -> dict[str, str]:
    """Model modules that failed to import: module name -> "ErrorType: message"."""
    discover()
    return {module: error for module, (error, _) in _IMPORT_ERRORS.items()}


def canonical_model_name(name: str) -> str:
    """The registered name for `name`, in any letter case (`TFN` -> `tfn`); unknown names raise."""
    discover()
    key = str(name).lower()
    if key in _REGISTRY:
        return key
    for module, (error, fix) in _IMPORT_ERRORS.items():
        if module.rpartition(".")[2] == key:     # one file per model, named after it
            raise UsageError(f"model {name!r} is unavailable: {model_file(module)} failed to import "
                             f"({error}); {fix}")
    close = difflib.get_close_matches(key, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    broken = (f" Failed to import: {', '.join(map(model_file, _IMPORT_ERRORS))} (python run.py list)."
              if _IMPORT_ERRORS else "")
    own = "" if model_folders() else (" A model of your own: pass --models DIR, the folder of its file (from Python, "
                                         f"os.environ[{MODELS_ENV!r}] = DIR).")
    raise UsageError(f"unknown model {name!r}.{_unregistered(key)}{hint} Known models: "
                     f"{', '.join(list_models())}.{broken}{own}")


def _unregistered(key: str) -> str:
    """A sentence for a model file or YAML named `key` that registers no model `key` (the decorator was
    forgotten, or names another model), else ''."""
    decorate = f'decorate its class with @register_model("{key}")'
    for package in MODEL_PACKAGES:
        for folder in getattr(sys.modules.get(package), "__path__", ()):
            if (Path(folder) / f"{key}.py").is_file():
                module = f"{package}.{key}"
                others = sorted(n for n, cls in _REGISTRY.items() if cls.__module__ == module)
                also = f" (it registers {', '.join(others)})" if others else ""
                return f" {module.replace('.', '/')}.py exists but registers no model {key!r}{also}: {decorate}."
    for folder in model_folders():
        if (folder / f"{key}.py").is_file():
            others = sorted(n for n, file in _USER_MODELS.items() if file == folder / f"{key}.py")
            also = f" (it registers {', '.join(others)})" if others else ""
            return f" {folder / key}.py exists but registers no model {key!r}{also}: {decorate}."
        if (folder / f"{key}.yaml").is_file():
            return (f" {folder / key}.yaml exists but no model file registers {key!r}: add {folder / key}.py and "
                    f"{decorate}.")
    if model_yaml_path(key).is_file():
        return (f" configs/{key}.yaml exists but no model file registers {key!r}: add baselines/{key}.py and "
                f"{decorate}.")
    return ""


def get_model_class(name: str) -> type:
    return _REGISTRY[canonical_model_name(name)]


def build_model(name: str, config, spec):
    """Build a registered model from its resolved config and the dataset's `DatasetSpec`."""
    cls = get_model_class(name)
    tasks = cls.registry_meta.get("tasks", ("regression",))
    if spec.task not in tasks:
        raise UsageError(
            f"model {name!r} supports {' and '.join(tasks)} only; dataset {spec.name!r} is "
            f"{spec.task}. Pick a model that supports {spec.task} (python run.py list)."
        )
    try:
        return cls(config, spec)
    except AttributeError as e:
        if e.obj is not config:          # not a key the config lacks: a bug, with its traceback
            raise
        # The original error stays chained (__cause__) for a caller in Python; the command line prints this line.
        meta = cls.registry_meta
        close = difflib.get_close_matches(e.name, [k for k in config if isinstance(k, str)], n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"{meta['name']}: building the model failed: AttributeError: config has no key "
                         f"{e.name!r}{guess}; declare it in {_shown_yaml(meta.get('config_name', meta['name']))}"
                         ) from e
