"""One registry for every model: name -> class, imported lazily.

`MODEL_MODULES` says which module defines each model, so listing models or building one never
imports the others: a baseline with a broken optional dependency cannot break Atsuko (the
fault of MMSA's eager `AMIO.MODEL_MAP`). The module registers its class with
`@register_model(name)` when it is imported.
"""
from __future__ import annotations

import difflib
import importlib

from .errors import UsageError

# name -> module that registers it. Keep in sync with the @register_model decorators;
# tests/test_registry.py checks that every entry imports and registers its name.
MODEL_MODULES: dict[str, str] = {
    "tfn": "baselines.tfn",
    "lmf": "baselines.lmf",
    "mult": "baselines.mult",
    "emoe": "baselines.emoe",
    "misa": "baselines.misa",
    "self_mm": "baselines.self_mm",
    "atsuko": "mmsa_atsuko.models.atsuko.model",
    "atsuko_base": "mmsa_atsuko.models.atsuko.model",
    "atsuko_sbn": "mmsa_atsuko.models.atsuko.model",
    "atsuko_mcm": "mmsa_atsuko.models.atsuko.model",
}

_REGISTRY: dict[str, type] = {}


def register_model(name: str, **meta):
    """Class decorator: `@register_model("tfn", tasks=("regression", "classification"))`.

    `meta` lands on the class as `registry_meta` (e.g. `tasks`, `config_name` when a variant
    shares another model's YAML, `defaults` for variant-specific switches).
    """

    def decorate(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise RuntimeError(f"model name {name!r} registered twice")
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
    if name in _REGISTRY and _REGISTRY[name].__mro__[1] is not base:    # taken by another model
        raise RuntimeError(f"model name {name!r} registered twice")
    variant = type(base.__name__ + "_" + name, (base,), {})
    variant.registry_meta = {**base.registry_meta, "name": name, **meta}
    _REGISTRY[name] = variant
    return variant


def list_models() -> list[str]:
    return sorted(MODEL_MODULES)


def get_model_class(name: str) -> type:
    if name not in MODEL_MODULES:
        close = difflib.get_close_matches(name, MODEL_MODULES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    if name not in _REGISTRY:
        importlib.import_module(MODEL_MODULES[name])
    if name not in _REGISTRY:
        raise RuntimeError(f"{MODEL_MODULES[name]} did not register model {name!r}")
    return _REGISTRY[name]


def build_model(name: str, config, spec):
    """Build a registered model from its resolved config and the dataset's `DatasetSpec`."""
    cls = get_model_class(name)
    tasks = cls.registry_meta.get("tasks", ("regression",))
    if spec.task not in tasks:
        raise UsageError(
            f"model {name!r} supports {' and '.join(tasks)} only; dataset {spec.name!r} is "
            f"{spec.task}. Pick a model that supports {spec.task} (python run.py list)."
        )
    return cls(config, spec)
