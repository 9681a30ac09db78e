"""One registry for every model: name -> class, found by importing the model packages.

A model registers itself in its own file with `@register_model(name)` (or `register_variant`).
Importing `models.baselines` imports every module in it (`import_submodules`), and importing
`mmsa_atsuko.models.atsuko.model` registers Atsuko and its ablations (the package itself imports no torch);
`list_models` and `get_model_class` import those modules once, by name, so this module imports nothing of
the layers above it. A new baseline is one file in models/baselines/ plus its YAML in configs/.

Models of your own may live outside the checkout, in the folders of $MMSA_ATSUKO_MODELS (`--models
DIR`): `discover` imports their files after the packages (user_models/discovery.py), and a model registered there
reads its YAML from that folder (`model_yaml_path`).

Discovery imports module by module and keeps each failure: a baseline with a broken optional
dependency is listed as unavailable and cannot break the others (the fault of MMSA's eager
`AMIO.MODEL_MAP`).
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import sys
import traceback
from pathlib import Path

from .errors import UsageError, one_line
from .user_models.discovery import (MODELS_ENV, USER_PACKAGE, import_folders, loading, model_file, model_folders,
                                    model_origin)

MODEL_PACKAGES = ("mmsa_atsuko.models.baselines", "mmsa_atsuko.models.atsuko.model")
# datasets.yaml and each model's configs/<name>.yaml: `config` reads them from here, and an unknown
# model's error names the YAML that no model file registers.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

_REGISTRY: dict[str, type] = {}
# A model's name starts its run ids and run folders (`<model>-<dataset>-s<seed>-...`, results.RUN_ID): a name of a
# model file of your own holding '/' and '..' trained into a folder outside `<results>/runs`, then stopped in a
# FileNotFoundError traceback at its final rename. The letters of a dataset's name (config.DATASET_NAME).
MODEL_NAME = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
MAX_MODEL_NAME = 64
# module name -> ("ErrorType: message" in one line, what to do about it)
_IMPORT_ERRORS: dict[str, tuple[str, str]] = {}
_discovered = False


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
    if not isinstance(name, str):
        raise RuntimeError(f"model name {name!r} must be a string")
    if name != name.lower():     # lookups are case-insensitive by lowering the name asked for
        raise RuntimeError(f"model name {name!r} must be lowercase: register it as {name.lower()!r}")
    if len(name) > MAX_MODEL_NAME or not MODEL_NAME.fullmatch(name):
        shown = repr(name[:40]) + ("..." if len(name) > 40 else "")
        raise RuntimeError(f"model name {shown} is not a name: use letters, digits, '_' and '-' (at most "
                           f"{MAX_MODEL_NAME}), as its run folders and run ids are named by it")
    if name not in _REGISTRY:
        return
    file, origin = loading(), model_origin(name)
    if file is not None and origin != file:
        owner = "the toolkit already has" if origin is None else f"{origin} registers too"
        raise UsageError(f"{file} registers {name!r}, which {owner}: rename it")
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
        _keep_failure(module, e)


def _keep_failure(module: str, error: Exception, file: Path | None = None) -> None:
    """Remember why `module` (of a model package, or `file`, a model file of your own) failed to import."""
    _IMPORT_ERRORS[module] = (one_line(error), _fix_for(module, error, file))


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
    import_folders(_REGISTRY, _keep_failure)


def model_yaml_path(config_name: str, config_dir: Path | None = None) -> Path:
    """Where the YAML of model config `config_name` is: beside its model file for a model registered from
    a folder of $MMSA_ATSUKO_MODELS, else `config_dir` (default configs/) / <config_name>.yaml."""
    origin = model_origin(config_name)
    if origin is not None:
        return origin.parent / f"{config_name}.yaml"
    return (CONFIG_DIR if config_dir is None else Path(config_dir)) / f"{config_name}.yaml"


def _shown_yaml(config_name: str) -> str:
    """How a message names a model's YAML: configs/<name>.yaml, or the full path of one of your own."""
    own = model_origin(config_name) is not None
    return str(model_yaml_path(config_name)) if own else f"configs/{config_name}.yaml"


def list_models() -> list[str]:
    discover()
    return sorted(_REGISTRY)


def registry_now() -> dict[str, type]:
    """The models registered so far, without discovering any (`model_names` reads the others from their source)."""
    return dict(_REGISTRY)


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
    if not MODEL_NAME.fullmatch(key):     # no file or YAML to look for: 'a/../b' names none of a models folder
        raise UsageError(f"unknown model {name!r}: a model's name is letters, digits, '_' and '-', as it names run "
                         f"folders and run ids.{hint} Known models: {', '.join(list_models())}.{broken}")
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
            others = sorted(n for n in _REGISTRY if model_origin(n) == folder / f"{key}.py")
            also = f" (it registers {', '.join(others)})" if others else ""
            return f" {folder / key}.py exists but registers no model {key!r}{also}: {decorate}."
        if (folder / f"{key}.yaml").is_file():
            return (f" {folder / key}.yaml exists but no model file registers {key!r}: add {folder / key}.py and "
                    f"{decorate}.")
    if model_yaml_path(key).is_file():
        return (f" configs/{key}.yaml exists but no model file registers {key!r}: "
                f"add mmsa_atsuko/models/baselines/{key}.py and {decorate}.")
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
