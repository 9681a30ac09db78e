"""The model registry: discovery from the model packages, a broken module, names in any case."""
import sys

import pytest

from mmsa_atsuko import registry
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.registry import get_model_class, list_models

# Shipped today; a new model file adds to these without a change here.
SHIPPED = {"tfn", "lmf", "mult", "misa", "self_mm", "emoe", "atsuko", "atsuko_base", "atsuko_sbn", "atsuko_mcm"}

GOOD = '''
from torch import nn
from mmsa_atsuko.registry import register_model

@register_model("probe_good", tasks=("classification",))
class ProbeGood(nn.Module):
    pass
'''


def test_every_shipped_model_is_discovered_under_its_own_name():
    assert set(list_models()) >= SHIPPED
    for name in list_models():
        assert get_model_class(name).registry_meta["name"] == name
    assert registry.import_errors() == {}


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A third model package `probe_models` with one good model file and one whose import fails,
    discovered afresh on a copy of the registry."""
    package = tmp_path / "probe_models"
    package.mkdir()
    (package / "__init__.py").write_text("from mmsa_atsuko.registry import import_submodules\n"
                                         "import_submodules(__name__, __path__)\n")
    (package / "good.py").write_text(GOOD)
    (package / "broken.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODEL_PACKAGES", (*registry.MODEL_PACKAGES, "probe_models"))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_IMPORT_ERRORS", {})
    monkeypatch.setattr(registry, "_discovered", False)
    yield
    for module in ("probe_models", "probe_models.good", "probe_models.broken"):
        sys.modules.pop(module, None)


def test_a_model_file_in_a_package_is_discovered_and_a_broken_one_hides_nothing(probe_package):
    assert set(list_models()) >= SHIPPED | {"probe_good"}
    assert get_model_class("probe_good").registry_meta == {"name": "probe_good", "tasks": ("classification",)}
    assert registry.import_errors() == {
        "probe_models.broken": "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'"}
    with pytest.raises(UsageError, match=r"model 'broken' is unavailable: probe_models.broken failed to import "
                                         r"\(ModuleNotFoundError: No module named"):
        get_model_class("broken")
    with pytest.raises(UsageError, match=r"unknown model 'nope'\..*Failed to import: probe_models.broken"):
        get_model_class("nope")


def test_list_shows_the_module_that_failed(probe_package, capsys):
    from mmsa_atsuko.cli import cmd_list
    assert cmd_list([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  probe_good     classification" in out
    assert ("  probe_models.broken unavailable: ModuleNotFoundError: "
            "No module named 'a_dependency_that_is_not_installed'") in out
    assert "  tfn            regression, classification" in out


def test_names_are_case_insensitive_and_unknown_ones_suggest():
    assert get_model_class("TFN") is get_model_class("tfn")
    assert registry.canonical_model_name("Self_MM") == "self_mm"
    with pytest.raises(UsageError, match=r"unknown model 'atsuko_sb'\. Did you mean atsuko_sbn") as err:
        get_model_class("atsuko_sb")
    assert "\n" not in str(err.value)


def test_config_and_records_use_the_registered_name():
    from mmsa_atsuko.config import load_config, model_config_name
    assert model_config_name("ATSUKO_BASE") == ("atsuko", {"use_sbn": False, "use_mcm": False})
    assert load_config("TFN", "mosi") == load_config("tfn", "mosi")


def test_a_name_or_a_class_cannot_be_registered_twice(monkeypatch):
    """register_variant replaced any model silently, and a class decorated under two names
    carried the second's metadata under the first."""
    from torch import nn

    from mmsa_atsuko.registry import register_model, register_variant

    atsuko, tfn = get_model_class("atsuko"), get_model_class("tfn")   # imported (and registered) first:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # then a copy takes the test's names
    with pytest.raises(RuntimeError, match="'tfn' registered twice"):
        register_variant("tfn", atsuko)
    with pytest.raises(RuntimeError, match="'atsuko_base' registered twice"):
        register_variant("atsuko_base", tfn)
    assert get_model_class("tfn") is tfn
    register_variant("atsuko_sbn", atsuko, config_name="atsuko", overrides={"use_sbn": True, "use_mcm": False})

    class Probe(nn.Module):
        pass

    register_model("probe_a", tasks=("regression",))(Probe)
    with pytest.raises(RuntimeError, match="already registered as 'probe_a'"):
        register_model("probe_b", tasks=("classification",))(Probe)
    assert Probe.registry_meta == {"name": "probe_a", "tasks": ("regression",)}
    with pytest.raises(RuntimeError, match="'Probe_C' must be lowercase"):
        register_variant("Probe_C", Probe)
