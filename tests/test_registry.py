"""The model registry: discovery from the model packages, a broken module, names in any case."""
import importlib
import os
import sys
from pathlib import Path

import pytest

from mmsa_atsuko import registry
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.registry import get_model_class, list_models
from mmsa_atsuko.user_models import discovery
from mmsa_atsuko.user_models.source import model_source, source_changes

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


def probe_models(tmp_path, monkeypatch, files: dict):
    """A third model package `probe_models` holding `files` (name -> source), discovered afresh on a copy
    of the registry; the caller's teardown is `forget_probe_models`."""
    package = tmp_path / "probe_models"
    package.mkdir()
    (package / "__init__.py").write_text("from mmsa_atsuko.registry import import_submodules\n"
                                         "import_submodules(__name__, __path__)\n")
    for name, source in files.items():
        (package / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODEL_PACKAGES", (*registry.MODEL_PACKAGES, "probe_models"))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_IMPORT_ERRORS", {})
    monkeypatch.setattr(registry, "_discovered", False)


def forget_probe_models():
    for module in [m for m in sys.modules if m == "probe_models" or m.startswith("probe_models.")]:
        sys.modules.pop(module)


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """`probe_models` with one good model file and one whose import fails."""
    probe_models(tmp_path, monkeypatch, {"good.py": GOOD, "broken.py": "import a_dependency_that_is_not_installed\n"})
    yield
    forget_probe_models()


def test_a_model_file_in_a_package_is_discovered_and_a_broken_one_hides_nothing(probe_package):
    assert set(list_models()) >= SHIPPED | {"probe_good"}
    assert get_model_class("probe_good").registry_meta == {"name": "probe_good", "tasks": ("classification",)}
    assert registry.import_errors() == {
        "probe_models.broken": "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'"}
    with pytest.raises(UsageError, match=r"model 'broken' is unavailable: probe_models.broken failed to import "
                                         r"\(ModuleNotFoundError: No module named 'a_dependency_that_is_not_"
                                         r"installed'\); install or fix what it needs$"):
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
    for not_a_name in ("a/b", "../probe", "probe-", "probe.v2", "p" * 65):     # each starts a run folder's name
        with pytest.raises(RuntimeError, match="is not a name: use letters, digits"):
            register_variant(not_a_name, Probe)



def test_a_variant_belongs_to_the_module_that_registers_it():
    """Variants were classes of mmsa_atsuko.registry, where type() made them: a message naming a model's
    module, and `_unregistered`'s list of what a model file registers, missed them."""
    for name in ("atsuko_base", "atsuko_sbn", "atsuko_mcm"):
        assert get_model_class(name).__module__ == "mmsa_atsuko.models.atsuko.model"
    assert get_model_class("atsuko_sbn").__mro__[1] is get_model_class("atsuko")


def test_one_line_quotes_an_error_short_and_on_one_line():
    from mmsa_atsuko.errors import one_line

    assert one_line(ValueError("bad\n  value\tat  line 3")) == "ValueError: bad value at line 3"
    assert one_line(KeyError()) == "KeyError"
    long = one_line(OSError("x " * 5000), limit=10)
    assert long == "OSError: x x x x x "[:len("OSError: ") + 10]

def test_a_toolkit_errors_message_is_one_line_whatever_it_quotes():
    """A message quotes paths, keys and cells that may hold a line break; the CLI prints it as one line. Each break
    Python splits lines at is a space, the rest is kept."""
    from mmsa_atsuko.errors import DataError, MissingDataError, ResumeRefused, ToolkitError, UsageError

    breaks = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
    assert all(len(f"a{c}b".splitlines()) == 2 for c in breaks)
    for kind in (ToolkitError, UsageError, DataError, ResumeRefused):
        message = str(kind("x" + "".join(f"{c}y" for c in breaks) + "\r\nz\t  w"))
        assert message == "x" + " y" * len(breaks) + "  z\t  w"
    missing = MissingDataError("no file at /d\nx", what="mosi features", path="/d\nx")
    assert str(missing) == "no file at /d x" and missing.path == "/d\nx"


MISTAKES = {
    # raised while importing, by the file itself: nothing to install
    "upper.py": "from torch import nn\nfrom mmsa_atsuko.registry import register_model\n\n\n"
                "@register_model('Upper')\nclass Upper(nn.Module):\n    pass\n",
    "typo.py": "from torch import nn\nfrom mmsa_atsuko.models.common.task import taskloss\n",
    "ours.py": "import mmsa_atsuko.models.common.no_such_module\n",
    # imported fine, registers nothing of its name
    "forgot.py": "from torch import nn\n\n\nclass Forgot(nn.Module):\n    pass\n",
    "renamed.py": "from torch import nn\nfrom mmsa_atsuko.registry import register_model\n\n\n"
                  "@register_model('renamed_model')\nclass Renamed(nn.Module):\n    pass\n",
}


@pytest.fixture
def mistakes(tmp_path, monkeypatch):
    probe_models(tmp_path, monkeypatch, MISTAKES)
    monkeypatch.setattr(registry, "CONFIG_DIR", tmp_path / "configs")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "yamlonly.yaml").write_text("common: {}\n")
    yield
    forget_probe_models()


@pytest.mark.parametrize("name,message", [
    ("upper", "model 'upper' is unavailable: probe_models.upper failed to import (RuntimeError: model name 'Upper' "
              "must be lowercase: register it as 'upper'); fix probe_models/upper.py, line 5"),
    ("typo", "model 'typo' is unavailable: probe_models.typo failed to import (ImportError: cannot import name "
             "'taskloss' from 'mmsa_atsuko.models.common.task'"),
    ("ours", "model 'ours' is unavailable: probe_models.ours failed to import (ModuleNotFoundError: No module named "
             "'mmsa_atsuko.models.common.no_such_module'); fix probe_models/ours.py, line 1"),
    ("forgot", "unknown model 'forgot'. probe_models/forgot.py exists but registers no model 'forgot': decorate its "
               "class with @register_model(\"forgot\"). Known models: "),
    ("renamed", "unknown model 'renamed'. probe_models/renamed.py exists but registers no model 'renamed' (it "
                "registers renamed_model): decorate its class with @register_model(\"renamed\"). Did you mean "
                "renamed_model? Known models: "),
    ("yamlonly", "unknown model 'yamlonly'. configs/yamlonly.yaml exists but no model file registers 'yamlonly': "
                 "add mmsa_atsuko/models/baselines/yamlonly.py and decorate its class with @register_model(\"yamlonly\"). Known "
                 "models: "),
])
def test_a_model_file_of_ones_own_that_fails_or_registers_nothing_says_how_to_fix_it(mistakes, name, message):
    with pytest.raises(UsageError) as err:
        get_model_class(name)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value) and "install" not in str(err.value)
    if name == "typo":
        assert str(err.value).endswith("; fix probe_models/typo.py, line 2")


class ReadsItsConfig:
    registry_meta = {"name": "reads_config", "tasks": ("regression",)}

    def __init__(self, config, spec):
        self.width = config.hidden_dimm          # a key the YAML declares as hidden_dim


class HasABug:
    registry_meta = {"name": "has_a_bug", "tasks": ("regression",)}

    def __init__(self, config, spec):
        self.width = spec.widht                  # not the config: a bug, with its traceback


def test_a_key_the_constructor_reads_that_the_config_lacks_is_one_line_and_a_bug_stays_a_traceback(monkeypatch):
    from easydict import EasyDict

    from conftest import make_dataset
    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY, "reads_config": ReadsItsConfig,
                                                "has_a_bug": HasABug})
    spec, config = make_dataset().spec, EasyDict(hidden_dim=8, batch_size=16)
    with pytest.raises(UsageError) as err:
        registry.build_model("reads_config", config, spec)
    assert str(err.value) == ("reads_config: building the model failed: AttributeError: config has no key "
                              "'hidden_dimm' (did you mean 'hidden_dim'?); declare it in configs/reads_config.yaml")
    assert isinstance(err.value.__cause__, AttributeError)     # the original, for a caller in Python
    with pytest.raises(AttributeError, match="widht"):
        registry.build_model("has_a_bug", config, spec)


# Models of your own outside the checkout: `--models DIR` / $MMSA_ATSUKO_MODELS.

@pytest.fixture
def own_models(tmp_path, forgetful_registry):
    """The fixture user model (tests/fixtures/latefuse.*) copied into a folder of its own (not a checkout), and
    a registry that forgets the folders it imports: -> (folder, forget), `forget()` undoing this test's imports."""
    import shutil

    from conftest import FIXTURES
    folder = tmp_path / "my_models"
    folder.mkdir()
    for suffix in (".py", ".yaml"):
        shutil.copy(FIXTURES / f"latefuse{suffix}", folder)
    return folder, forgetful_registry


def train_args(out, *extra, seeds=("1111",)):
    return ["-m", "latefuse", "-d", "mosi", "--synthetic", "--preset", "small", "-s", *seeds, "--max-epochs", "1",
            "--quiet", "--out", str(out), *extra]


def test_a_models_folder_trains_lists_and_predicts_its_model(own_models, tmp_path, capsys):
    import hashlib
    import json

    from mmsa_atsuko.cli import main
    folder, forget = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder))) == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert (record["model"], record["status"]) == ("latefuse", "ok")
    # The checkout's git commit says nothing of a file outside it: the record names the file and its digest.
    digest = hashlib.sha256((folder / "latefuse.py").read_bytes()).hexdigest()
    assert record["model_source"] == {"path": str(folder / "latefuse.py"), "sha256": digest,
                                      "files": {"latefuse.py": digest}}
    assert "latefuse" not in [p.stem for p in (registry.CONFIG_DIR.parent / "mmsa_atsuko/models/baselines").glob("*.py")]
    capsys.readouterr()
    assert main(["list", "--models", str(folder)]) == 0
    assert f"  latefuse       regression, classification  (yours: {folder / 'latefuse.py'})" in \
        capsys.readouterr().out.splitlines()

    predict = ["predict", "--run", record["run_id"], "--results", str(out), "--features", record["data_path"]]
    assert main([*predict, "--out", str(tmp_path / "pred"), "--models", str(folder)]) == 0, capsys.readouterr().err
    assert (tmp_path / "pred" / "predictions.csv").is_file()
    forget()                                       # a later command that forgot --models
    capsys.readouterr()
    assert main([*predict, "--out", str(tmp_path / "pred2")]) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "unknown model 'latefuse'" in line and "pass --models DIR" in line, line


def test_the_tables_name_the_trainer_keys_a_run_set_apart_from_its_preset_as_it_ran(own_models, tmp_path, capsys):
    """The note on keys set apart from the preset held each record's config against the preset as the YAML read
    when the table was made: a preset edited after the run made it name a key the run never set apart
    (learning_rate) and drop the one it did (max_epochs). The run now records them as it starts. A record from before
    that field is held against today's YAML, and says so."""
    import json

    from mmsa_atsuko.cli import main
    from mmsa_atsuko.leaderboard import leaderboard
    folder, _ = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder))) == 0, capsys.readouterr().err     # --max-epochs 1
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    # tests/fixtures/latefuse.yaml: presets.small.max_epochs 4, common.learning_rate 1.0e-3 (the preset keeps it)
    assert record["trainer_overrides"] == {"max_epochs": {"value": 1, "preset": 4}}
    note = "- trainer keys set apart from the preset: max_epochs=1 (--preset small: 4) in every row"

    def notes(fmt="md"):
        text = leaderboard(out, fmt=fmt)
        return [line for line in text.splitlines() if line.startswith("- trainer keys")] if fmt == "md" else text

    assert notes() == [note]
    yaml_file = folder / "latefuse.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("    max_epochs: 4\n", "    max_epochs: 1\n"
                                                                                "    learning_rate: 5.0e-4\n"))
    assert notes() == [note]                           # before: learning_rate=0.001 (--preset small: 0.0005)
    assert "max_epochs=1 (--preset small: 4)" in notes("csv")
    del record["trainer_overrides"]                    # a record from before the field
    (out / "runs.jsonl").write_text(json.dumps(record) + "\n")
    assert notes() == ["- trainer keys set apart from the preset: learning_rate=0.001 (today's --preset small: "
                       "0.0005) in every row"]


def test_an_unknown_model_says_how_python_names_a_models_folder_and_that_way_works(own_models):
    """mmsa_atsuko.run has no --models: the line said only `pass --models DIR`. What it now says, done, works."""
    import os
    folder, _ = own_models
    with pytest.raises(UsageError) as err:
        get_model_class("latefuse")
    assert str(err.value).endswith("A model of your own: pass --models DIR, the folder of its file (from Python, "
                                   "os.environ['MMSA_ATSUKO_MODELS'] = DIR).")
    os.environ["MMSA_ATSUKO_MODELS"] = str(folder)      # as the line says; the fixture's monkeypatch restores it
    assert get_model_class("latefuse").registry_meta["name"] == "latefuse"
    assert discovery.model_origin("latefuse") == folder / "latefuse.py"


def test_sweep_workers_import_the_models_folder(own_models, tmp_path, capsys):
    """--jobs 2: each run in a spawned worker process, which finds the folder in $MMSA_ATSUKO_MODELS."""
    import json

    from mmsa_atsuko.cli import main
    folder, _ = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder), "--jobs", "2", seeds=("1111", "1112"))) == 0, \
        capsys.readouterr().err
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["seed"], r["status"]) for r in records) == [("latefuse", 1111, "ok"),
                                                                              ("latefuse", 1112, "ok")]
    # the worker records the keys set apart from the preset: --max-epochs 1 over the small preset's 4
    assert [r["trainer_overrides"] for r in records] == [{"max_epochs": {"value": 1, "preset": 4}}] * 2


def test_the_environment_variable_alone_names_the_folder(own_models, tmp_path):
    """A fresh process with $MMSA_ATSUKO_MODELS and no --models: it lists and trains the model."""
    import json
    import os
    import subprocess

    from conftest import ROOT
    folder, _ = own_models
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), discovery.MODELS_ENV: str(folder)}
    run = lambda *args: subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True,  # noqa: E731
                                       text=True, env=env, cwd=tmp_path, timeout=600)
    listed = run("list")
    assert listed.returncode == 0 and f"(yours: {folder / 'latefuse.py'})" in listed.stdout, listed.stderr
    trained = run(*train_args(tmp_path / "results"))
    assert trained.returncode == 0, trained.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "results" / "runs.jsonl").read_text().splitlines()]
    assert (record["model"], record["status"]) == ("latefuse", "ok")


@pytest.mark.parametrize("case,message", [
    ("taken", "{folder}/latefuse.py registers 'tfn', which the toolkit already has: rename it"),
    ("missing", "model folder {folder} does not exist (--models DIR or $MMSA_ATSUKO_MODELS: "),
    ("empty", "model folder {folder} holds no .py file: "),
])
def test_a_bad_models_folder_is_one_line_before_the_command(own_models, tmp_path, capsys, case, message):
    from mmsa_atsuko.cli import main
    folder, _ = own_models
    if case == "taken":           # the user's model named like a shipped one: never a silent override
        path = folder / "latefuse.py"
        path.write_text(path.read_text().replace('@register_model("latefuse"', '@register_model("tfn"'))
    elif case == "missing":
        folder = tmp_path / "nowhere"
    else:
        for path in folder.glob("*.py"):
            path.unlink()
    out = tmp_path / "results"
    assert main([*train_args(out), "--models", str(folder)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: " + message.format(folder=folder)), line
    assert not out.exists()
    assert registry._REGISTRY["tfn"].__module__ == "mmsa_atsuko.models.baselines.tfn"     # not replaced


def test_a_models_folder_model_without_its_yaml_says_where_the_yaml_goes(own_models, tmp_path, capsys):
    """It said only `config file DIR/latefuse.yaml not found`: not whose file it is nor what goes in it."""
    from mmsa_atsuko.cli import main
    folder, _ = own_models
    (folder / "latefuse.yaml").rename(folder / "latefuse.yml")       # a near miss: the toolkit reads .yaml only
    out = tmp_path / "results"
    assert main([*train_args(out), "--models", str(folder)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: model latefuse has no config: {folder / 'latefuse.yaml'} not found; put latefuse.yaml "
                    f"beside {folder / 'latefuse.py'}, with a common: block declaring every key the model reads "
                    f"and a small preset (README, Adding a model)")
    assert not out.exists()


def test_a_model_name_that_is_no_file_name_is_one_line_before_any_folder(own_models, tmp_path, capsys):
    """A model file of your own registering 'zz/../../esc' trained into `<results>/esc-mosi-s1111-...partial`,
    outside `<results>/runs` (more '..', outside the results folder), then stopped in a FileNotFoundError
    traceback at the folder's final rename."""
    import shutil

    from mmsa_atsuko.cli import main
    folder, _ = own_models
    name = "zz/../../esc"
    source = (folder / "latefuse.py").read_text()
    (folder / "latefuse.py").write_text(source.replace('@register_model("latefuse"', f'@register_model("{name}"'))
    (folder / "zz").mkdir()
    shutil.copy(folder / "latefuse.yaml", tmp_path / "esc.yaml")     # where the name's YAML is looked up
    out = tmp_path / "box" / "results"
    out.parent.mkdir()
    assert main(["-m", name, *train_args(out)[2:], "--models", str(folder)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: unknown model 'zz/../../esc': a model's name is letters, digits, '_' and '-'")
    assert line.endswith(f"Failed to import: {folder / 'latefuse.py'} (python run.py list).")
    assert main(["list", "--models", str(folder)]) == 0        # where the reason is
    assert "model name 'zz/../../esc' is not a name: use letters, digits, '_' and '-'" in capsys.readouterr().out
    assert not any(out.parent.iterdir())


def test_a_models_folder_model_reads_its_yaml_from_that_folder(own_models, tmp_path, capsys):
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import declared_type, load_config
    folder, _ = own_models
    yaml_path = folder / "latefuse.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("    hidden_dim: 16\n", "    hidden_dim: 0\n"))
    assert main([*train_args(tmp_path / "results"), "--models", str(folder)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {yaml_path} presets.small: hidden_dim"), line
    assert registry.model_yaml_path("latefuse") == yaml_path
    assert registry.model_yaml_path("tfn", tmp_path) == tmp_path / "tfn.yaml"    # config_dir: the toolkit's own
    assert load_config("latefuse", "mosi").hidden_dim == 64 and declared_type("latefuse", "hidden_dim") is int


@pytest.mark.parametrize("block, entry", [("checks", "valid_loss: [exact, approx]"), ("nullable", "grad_clip: float")])
def test_a_models_folder_yaml_may_not_check_a_trainer_key_as_its_own(own_models, tmp_path, capsys, block, entry):
    """A model whose YAML declared `valid_loss` with its own check before the trainer had one: it trained, its
    check let through `approx` (which the trainer refuses), and its `valid_loss: exact` left the config hash
    (ADDED_KEYS), so its stored runs lost their identity. Now one line before any work, naming file, block and key."""
    from mmsa_atsuko.cli import main
    folder, _ = own_models
    yaml_path = folder / "latefuse.yaml"
    key = entry.split(":")[0]
    text = yaml_path.read_text().replace("  early_stop: 8\n", "  early_stop: 8\n  valid_loss: exact\n")
    yaml_path.write_text(text + f"{block}:\n  {entry}\n" if block == "nullable"
                         else text.replace("checks:\n", f"checks:\n  {entry}\n"))
    out = tmp_path / "results"
    assert main([*train_args(out), "--models", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {yaml_path}: its {block} block names {key}, a trainer key (configs/datasets.yaml defaults) whose "
        f"check and type are datasets.yaml's; set its value in common: only, or, if {key} is the model's own key, "
        f"rename it in this YAML and the model's code")
    assert not out.exists()


def test_a_models_folder_yaml_sets_a_trainer_key_in_common_under_the_trainers_check(own_models, monkeypatch):
    """Setting a trainer key's value is what common: is for (batch_size, learning_rate): valid_loss too, and a
    value other than ADDED_KEYS' stays in the identity; the trainer's check holds for -c."""
    from mmsa_atsuko.config import config_identity, load_config
    folder, _ = own_models
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder))
    yaml_path = folder / "latefuse.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("  early_stop: 8\n", "  early_stop: 8\n  valid_loss: mmsa\n"))
    config = load_config("latefuse", "mosi")
    assert (config.valid_loss, config_identity(config)["valid_loss"]) == ("mmsa", "mmsa")
    with pytest.raises(UsageError, match=r"valid_loss must be one of exact, mmsa, got 'approx'"):
        load_config("latefuse", "mosi", overrides=["valid_loss=approx"])


def test_a_key_given_twice_in_a_models_folder_yaml_is_one_line(own_models, tmp_path, capsys):
    """`hidden_dim: 32` below `hidden_dim: 64` trained with 32, the last one, without a word."""
    from mmsa_atsuko.cli import main
    folder, _ = own_models
    yaml_path = folder / "latefuse.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("  hidden_dim: 64\n", "  hidden_dim: 64\n  hidden_dim: 32\n"))
    assert yaml_path.read_text().splitlines()[2:4] == ["  hidden_dim: 64", "  hidden_dim: 32"]
    assert main([*train_args(tmp_path / "results"), "--models", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: config file {yaml_path}: line 4 gives 'hidden_dim' again (first at line 3); give it once")
    assert not (tmp_path / "results").exists()


def test_a_model_file_of_a_models_folder_that_fails_is_kept_like_a_baselines(own_models, capsys):
    from mmsa_atsuko.cli import main
    folder, _ = own_models
    (folder / "broken.py").write_text("import torch\n\nfrom mmsa_atsuko.models.common.task import taskloss\n")
    (folder / "forgot.py").write_text("from torch import nn\n")
    assert main(["list", "--models", str(folder)]) == 0          # latefuse still loads
    out = capsys.readouterr().out.splitlines()
    assert f"  {folder / 'broken.py'} unavailable: ImportError: cannot import name 'taskloss' from " \
           "'mmsa_atsuko.models.common.task'" in " ".join(out)
    assert any(line.startswith("  latefuse ") for line in out)
    with pytest.raises(UsageError) as err:
        get_model_class("broken")
    assert str(err.value).startswith(f"model 'broken' is unavailable: {folder / 'broken.py'} failed to import "
                                     "(ImportError: cannot import name 'taskloss'")
    assert str(err.value).endswith(f"; fix {folder / 'broken.py'}, line 3")
    with pytest.raises(UsageError, match=f"unknown model 'forgot'. {folder / 'forgot.py'} exists but registers no "
                                         f"model 'forgot'.* Failed to import: {folder / 'broken.py'} "):
        get_model_class("forgot")


SIBLING = "def masked_mean(x, mask):\n    w = mask.to(x.dtype).unsqueeze(-1)\n    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)\n"


def import_a_sibling(folder, statement: str, sibling: str = "zlayers") -> None:
    """latefuse.py with its masked_mean moved to `sibling`.py beside it (zlayers sorts after latefuse: the
    model file imports it before discovery reaches it), imported by `statement`."""
    model = folder / "latefuse.py"
    source = model.read_text()
    start, end = source.index("def masked_mean"), source.index("@register_model")
    model.write_text(source[:start] + statement.format(sibling) + "\n\n\n" + source[end:])
    (folder / f"{sibling}.py").write_text(SIBLING)


@pytest.mark.parametrize("statement, jobs", [("from .{} import masked_mean", "1"), ("from {} import masked_mean", "2")])
def test_a_model_file_imports_a_file_beside_it(own_models, tmp_path, capsys, monkeypatch, statement, jobs):
    """Both were ModuleNotFoundError, the model unavailable: `No module named 'mmsa_atsuko_user_models'` for the
    relative import, `No module named 'zlayers'` for the absolute one. --jobs 2: in worker processes too."""
    import json

    from mmsa_atsuko.cli import main
    folder, _ = own_models
    import_a_sibling(folder, statement)
    monkeypatch.delitem(sys.modules, "zlayers", raising=False)     # the absolute import's name, gone afterwards
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder), "--jobs", jobs, seeds=("1111", "1112"))) == 0, \
        capsys.readouterr().err
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["status"]) for r in records] == [("latefuse", "ok")] * 2
    assert {r["model_source"]["path"] for r in records} == {str(folder / "latefuse.py")}
    helper = sys.modules[f"{discovery.USER_PACKAGE}.zlayers"]        # imported once, whichever way it was named
    assert Path(helper.__file__) == folder / "zlayers.py"
    assert sys.modules[f"{discovery.USER_PACKAGE}.latefuse"].masked_mean is helper.masked_mean
    if not statement.startswith("from ."):
        assert sys.modules["zlayers"] is helper


def test_a_file_beside_a_model_is_found_only_by_the_models_folders_files(own_models, tmp_path, monkeypatch):
    """The finder of `from zlayers import ...` answered any top-level import that no other finder knew: a library's
    optional `try: import zlayers` anywhere in the process got the models folder's zlayers.py, which it would not
    without --models. Only the folders' own files get it now."""
    folder, _ = own_models
    import_a_sibling(folder, "from {} import masked_mean")
    library = tmp_path / "site"                      # an installed package that probes for an optional module
    library.mkdir()
    (library / "optlib.py").write_text("try:\n    import zlayers\nexcept ImportError:\n    zlayers = None\n")
    monkeypatch.syspath_prepend(str(library))
    for name in ("zlayers", "optlib"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder))
    get_model_class("latefuse")                      # the model file's own `from zlayers import` still works
    helper = sys.modules[f"{discovery.USER_PACKAGE}.zlayers"]
    assert sys.modules[f"{discovery.USER_PACKAGE}.latefuse"].masked_mean is helper.masked_mean
    monkeypatch.delitem(sys.modules, "zlayers", raising=False)     # as in a process where the library comes first
    import optlib
    assert optlib.zlayers is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("zlayers")


def test_a_helper_beside_the_model_is_in_its_record_and_predict_warns_when_it_changed(own_models, tmp_path, capsys):
    """model_source named the model file alone: an edit to zlayers.py, which the model imports, changed the
    model and not its record, and predict ran the edited code for a run trained with the old one, silently."""
    import hashlib
    import json

    from mmsa_atsuko.cli import main
    folder, forget = own_models
    import_a_sibling(folder, "from .{} import masked_mean")
    digest = lambda name: hashlib.sha256((folder / name).read_bytes()).hexdigest()  # noqa: E731
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder))) == 0, capsys.readouterr().err
    before = digest("zlayers.py")
    (folder / "zlayers.py").write_text(SIBLING.replace("clamp(min=1.0)", "clamp(min=2.0)"))
    forget()                                       # a later process, which imports the folder as it is now
    assert main(train_args(out, "--models", str(folder), seeds=("1112",))) == 0, capsys.readouterr().err
    old, new = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert old["model_source"] == {"path": str(folder / "latefuse.py"), "sha256": digest("latefuse.py"),
                                   "files": {"latefuse.py": digest("latefuse.py"), "zlayers.py": before}}
    # The two records differ in the helper's digest and in nothing else of the code they name.
    assert new["model_source"] == {**old["model_source"], "files": {**old["model_source"]["files"],
                                                                    "zlayers.py": digest("zlayers.py")}}
    card = json.loads((out / new["run_dir"] / "model.json").read_text())
    assert card["model_source"] == new["model_source"]

    forget()
    (folder / "zextra.py").write_text("SCALE = 2\n")       # a file the runs never imported
    capsys.readouterr()

    def predict(record, name):
        assert main(["predict", "--run", record["run_id"], "--results", str(out), "--features", record["data_path"],
                     "--out", str(tmp_path / name), "--models", str(folder)]) == 0
        captured = capsys.readouterr()
        assert captured.out.splitlines()[-1].startswith(f"wrote {tmp_path / name / 'predictions.csv'} (")
        return captured.err.splitlines()

    new_file = f"warning: {folder / 'zextra.py'} is new since the run was trained: predicting with it as it is now"
    predict_lines_of_old = [
        new_file,
        f"warning: {folder / 'zlayers.py'} changed since the run was trained (sha256 {before[:12]} then, "
        f"{digest('zlayers.py')[:12]} now): predicting with it as it is now"]
    assert predict(old, "old") == predict_lines_of_old
    assert predict(new, "new") == [new_file]
    # robustness rebuilds the run's model too (analysis.load_run), and says the same
    assert main(["robustness", "--run", old["run_id"], "--results", str(out), "--out", str(tmp_path / "rob"),
                 "--models", str(folder)]) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")] == [
        line.replace("predicting with", "testing with") for line in predict_lines_of_old]
    (folder / "zextra.py").unlink()
    forget()
    assert predict(new, "again") == []               # the code the run was trained with: nothing to say


def test_a_package_beside_the_model_that_it_imports_is_in_its_source(own_models, monkeypatch):
    """Discovery imports the folder's *.py; a package beside them (zpkg/__init__.py) runs only when imported."""
    import hashlib
    folder, _ = own_models
    import_a_sibling(folder, "from .{} import masked_mean", sibling="zpkg")
    (folder / "zpkg").mkdir()
    (folder / "zpkg.py").rename(folder / "zpkg" / "__init__.py")
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder))
    get_model_class("latefuse")
    digest = lambda name: hashlib.sha256((folder / name).read_bytes()).hexdigest()  # noqa: E731
    assert model_source("latefuse")["files"] == {"latefuse.py": digest("latefuse.py"),
                                                 "zpkg/__init__.py": digest("zpkg/__init__.py")}


def test_a_file_beside_a_model_named_like_a_module_python_has_is_one_line(own_models, tmp_path, capsys, monkeypatch):
    """`from json import masked_mean` with json.py beside it: Python's json wins (the standard library is never
    shadowed), so the line says which json the model would get and how to name its own."""
    import json as stdlib_json

    from mmsa_atsuko.cli import main
    folder, _ = own_models
    import_a_sibling(folder, "from {} import masked_mean", sibling="json")
    out = tmp_path / "results"
    assert main([*train_args(out), "--models", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {folder / 'latefuse.py'}, line 15: `import json` gets {stdlib_json.__file__}, not {folder / 'json.py'} "
        "beside it; write `from .json import ...` for yours, or rename it")
    assert not out.exists() and sys.modules["json"] is stdlib_json
    model = folder / "latefuse.py"
    model.write_text(model.read_text().replace("from json import", "from .json import"))   # as the line says
    own_models[1]()                                # forget the folder's line: discovery runs again
    assert main([*train_args(out), "--models", str(folder)]) == 0, capsys.readouterr().err
    assert sys.modules["json"] is stdlib_json


def _seed_then_model_edited(own_models, tmp_path, capsys):
    """Seed 1111 of latefuse recorded, then latefuse.py edited: (folder, forget, out, record, sha256 before, after)."""
    import hashlib
    import json

    from mmsa_atsuko.cli import main
    folder, forget = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder))) == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    before = hashlib.sha256((folder / "latefuse.py").read_bytes()).hexdigest()
    (folder / "latefuse.py").write_text((folder / "latefuse.py").read_text() + "\nSCALE = 2\n")
    after = hashlib.sha256((folder / "latefuse.py").read_bytes()).hexdigest()
    return folder, forget, out, record, before, after


def test_a_seed_recorded_before_its_model_file_changed_is_skipped_saying_so(own_models, tmp_path, capsys):
    """The code is not part of a run's identity, so a seed recorded before an edit to one's own model is skipped;
    the skip line read as for an unchanged model, and the table showed the old code's numbers as today's."""
    from mmsa_atsuko.cli import main
    folder, forget, out, record, before, after = _seed_then_model_edited(own_models, tmp_path, capsys)
    forget()                                       # a later process, which imports the folder as it is now
    capsys.readouterr()
    assert main(train_args(out, "--models", str(folder))) == 0
    skips = [line for line in capsys.readouterr().out.splitlines() if line.startswith("skip")]
    assert skips == [f"skip latefuse mosi seed 1111: recorded as {record['run_id']}, but {folder / 'latefuse.py'} "
                     f"changed since the run was trained (sha256 {before[:12]} then, {after[:12]} now) (the code is "
                     f"not part of a run's identity: --rerun trains it with the code as it is now)"]
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1          # skipped all the same
    (folder / "latefuse.py").write_text((folder / "latefuse.py").read_text().replace("\nSCALE = 2\n", ""))
    forget()
    assert main(train_args(out, "--models", str(folder))) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("skip")] == [
        f"skip latefuse mosi seed 1111: recorded as {record['run_id']} (--rerun trains it again)"]


def test_a_skipped_seed_at_another_precision_and_of_changed_code_says_both(own_models, tmp_path, capsys):
    """A seed recorded at fp32 whose model file changed since, asked at bf16: the skip line named the precision
    alone, so the edit went unsaid (and --rerun's promise read as of precision only)."""
    from mmsa_atsuko.cli import main
    folder, forget, out, record, before, after = _seed_then_model_edited(own_models, tmp_path, capsys)
    forget()
    capsys.readouterr()
    assert main(train_args(out, "--models", str(folder), "--precision", "bf16")) == 0
    skips = [line for line in capsys.readouterr().out.splitlines() if line.startswith("skip")]
    assert skips == [f"skip latefuse mosi seed 1111: recorded as {record['run_id']}, which ran at fp32, not the bf16 "
                     f"asked, and {folder / 'latefuse.py'} changed since the run was trained (sha256 {before[:12]} "
                     f"then, {after[:12]} now) (neither precision nor the code is part of a run's identity: --rerun "
                     f"trains it at bf16 with the code as it is now, in its place, or give another --out)"]
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1          # skipped all the same


def test_a_skipped_seed_at_another_precision_kernels_and_code_says_all_three(own_models, tmp_path, capsys):
    """A seed recorded at fp32 with deterministic kernels, its model file changed since, asked at bf16 with
    --nondeterministic: the skip line named the precision and the code, not the kernels (which _serves checks)."""
    from mmsa_atsuko.cli import main
    folder, forget, out, record, before, after = _seed_then_model_edited(own_models, tmp_path, capsys)
    forget()
    capsys.readouterr()
    assert main(train_args(out, "--models", str(folder), "--precision", "bf16", "--nondeterministic")) == 0
    skips = [line for line in capsys.readouterr().out.splitlines() if line.startswith("skip")]
    assert skips == [f"skip latefuse mosi seed 1111: recorded as {record['run_id']}, which ran at fp32, not the bf16 "
                     f"asked, and with deterministic kernels, not the nondeterministic asked, and "
                     f"{folder / 'latefuse.py'} changed since the run was trained (sha256 {before[:12]} then, "
                     f"{after[:12]} now) (neither precision, kernels nor the code is part of a run's identity: --rerun "
                     f"trains it at bf16 with nondeterministic kernels and the code as it is now, in its place, or "
                     f"give another --out)"]
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1          # skipped all the same

def test_a_sweep_plan_says_how_many_recorded_seeds_ran_on_other_code_of_ones_own_model(own_models, tmp_path, capsys):
    """The sweep (and run.py --jobs N, which plans as it does) counted a seed recorded before an edit to one's own
    model as 'already recorded', as for unchanged code, and trained nothing: the table kept the old code's numbers."""
    from mmsa_atsuko.cli import main
    folder, forget = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder), seeds=("1111", "1112"))) == 0, capsys.readouterr().err
    (folder / "latefuse.py").write_text((folder / "latefuse.py").read_text() + "\nSCALE = 2\n")
    (folder / "latehelp.py").write_text("OFFSET = 0\n")          # a helper beside it, imported by discovery
    forget()
    capsys.readouterr()
    said = (f"2 already recorded (2 trained with other code of a model of yours: {folder / 'latefuse.py'} changed, "
            f"{folder / 'latehelp.py'} new since; the code is not part of a run's identity, so they are skipped: give "
            f"another --out, or run.py --rerun in process, to train them with the code as it is now), ")
    sweep = ["sweep", "-m", "latefuse", "-d", "mosi", "--synthetic", "--preset", "small", "-s", "1111", "1112",
             "--max-epochs", "1", "--models", str(folder), "--out", str(out)]
    assert main([*sweep, "--dry-run"]) == 0
    (plan_line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: ")]
    assert said in plan_line, plan_line
    forget()
    assert main(train_args(out, "--models", str(folder), "--jobs", "2", seeds=("1111", "1112"))) == 0
    (plan_line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: ")]
    assert said in plan_line, plan_line
    assert len((out / "runs.jsonl").read_text().splitlines()) == 2          # skipped all the same


UNREADABLE = "the run's model_source cannot be read (not the path, sha256 and files this toolkit records), so " \
             "what changed in its code since is unknown"


@pytest.mark.parametrize("recorded", [
    ["latefuse.py"],                                                     # not a dict
    {"path": "P", "sha256": "a" * 64, "files": ["latefuse.py"]},         # files a list: AttributeError before
    {"sha256": "a" * 64},                                                # no path: KeyError before
    {"path": 7, "sha256": "a" * 64},                                     # path not a str: TypeError before
    {"path": "P", "sha256": "a" * 64, "files": {"latefuse.py": 1}},      # a digest not a str
    {"path": "P", "sha256": "a" * 64, "files": {"latefuse.py": "abc"}},  # not 64 hex digits
    {"path": "P", "sha256": "a" * 64, "files": {"latefuse.py\x1b[2J": "a" * 64}},   # a terminal escape in a name
    {"path": "P", "sha256": "a" * 64, "files": {f"h{i}.py": "a" * 64 for i in range(100_000)}},   # huge
])
def test_a_malformed_recorded_model_source_reads_as_unreadable(own_models, monkeypatch, recorded):
    """A hand-edited or downloaded runs.jsonl or model.json: source_changes raised (AttributeError, KeyError,
    TypeError) out of run.py's skip line and predict's warning, or printed what the file held. Now the record is
    unreadable: one phrase saying so, and no code version of its own (`+model@digest`)."""
    from mmsa_atsuko.results.record import code_version, user_model_digest
    folder, _ = own_models
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder))
    get_model_class("latefuse")
    if isinstance(recorded, dict) and recorded.get("path") == "P":
        recorded = {**recorded, "path": str(folder / "latefuse.py")}
    assert source_changes(recorded, "latefuse") == [UNREADABLE]
    assert user_model_digest(recorded) is None
    assert code_version({"git_commit": "c" * 40, "model": "latefuse", "model_source": recorded}) == "c" * 10
    assert source_changes(recorded, "tfn") == []              # the toolkit's: git_commit covers it


def test_a_skip_line_over_a_malformed_model_source_says_it_cannot_be_read(own_models, tmp_path, capsys):
    """run.py's skip line crashed with AttributeError (`files` a list) where a store was hand-edited."""
    import json

    from mmsa_atsuko.cli import main
    folder, forget = own_models
    out = tmp_path / "results"
    assert main(train_args(out, "--models", str(folder))) == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    record["model_source"]["files"] = sorted(record["model_source"]["files"])
    (out / "runs.jsonl").write_text(json.dumps(record) + "\n")
    forget()
    capsys.readouterr()
    assert main(train_args(out, "--models", str(folder))) == 0
    captured = capsys.readouterr()
    assert [line for line in captured.out.splitlines() if line.startswith("skip")] == [
        f"skip latefuse mosi seed 1111: recorded as {record['run_id']}, but {UNREADABLE} (the code is not part of a "
        f"run's identity: --rerun trains it with the code as it is now)"]
    assert "Traceback" not in captured.err


def another_model(folder, name: str, base: bool = False) -> Path:
    """`name`.py in `folder`, registering model `name`: the fixture's latefuse renamed, or (base) a subclass of
    LateFuse importing it from the latefuse.py beside it."""
    from conftest import FIXTURES
    file = folder / f"{name}.py"
    file.write_text(f"from .latefuse import LateFuse\nfrom mmsa_atsuko.registry import register_model\n\n\n"
                    f"@register_model({name!r}, tasks=('regression', 'classification'))\n"
                    f"class Derived(LateFuse):\n    pass\n" if base else
                    (FIXTURES / "latefuse.py").read_text().replace('"latefuse"', repr(name)))
    return file


def test_a_models_source_is_its_own_file_and_helpers_not_other_models_or_folders(own_models, tmp_path, monkeypatch):
    """model_source's files held every .py of every --models folder: a notes file beside it was code of the model
    (by design: any helper may be imported), but so were another model's file in its folder and every file of
    another folder (by absolute path), so adding an unrelated model changed latefuse's code version, and run.py's
    skip line said the other folder's file 'is new since the run was trained'."""
    import hashlib
    import json

    from mmsa_atsuko.results.record import user_model_digest
    folder, _ = own_models
    (folder / "notes_helper.py").write_text("NOTE = 1\n")
    another_model(folder, "otherfuse")
    another_model(folder, "subfuse", base=True)            # a model built on latefuse: latefuse.py is its code
    elsewhere = tmp_path / "m2"
    elsewhere.mkdir()
    another_model(elsewhere, "farfuse")
    monkeypatch.setenv(discovery.MODELS_ENV, os.pathsep.join(map(str, (folder, elsewhere))))
    for name in ("latefuse", "otherfuse", "subfuse", "farfuse"):
        get_model_class(name)
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    own = {"latefuse.py": digest(folder / "latefuse.py"), "notes_helper.py": digest(folder / "notes_helper.py")}
    source = model_source("latefuse")
    assert source == {"path": str(folder / "latefuse.py"), "sha256": own["latefuse.py"], "files": own}
    assert model_source("subfuse")["files"] == {**own, "subfuse.py": digest(folder / "subfuse.py")}
    assert model_source("farfuse")["files"] == {"farfuse.py": digest(elsewhere / "farfuse.py")}
    assert user_model_digest(source) == hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()[:10]
    assert source_changes(source, "latefuse") == []

    # A record written before: every .py of both folders. Compared and digested as the files it names of the
    # model's own code: the other folder's (absolute) are dropped by both, another model file of its folder by the
    # skip line (which knows today's models); the digest cannot tell that file from a helper, so keeps it.
    older = {**source, "files": {**own, "otherfuse.py": digest(folder / "otherfuse.py"),
                                 "subfuse.py": digest(folder / "subfuse.py"),
                                 str(elsewhere / "farfuse.py"): digest(elsewhere / "farfuse.py")}}
    assert source_changes(older, "latefuse") == []
    assert source_changes({**older, "files": {**older["files"], "notes_helper.py": "0" * 64}},
                          "latefuse") == [
        f"{folder / 'notes_helper.py'} changed since the run was trained (sha256 {'0' * 12} then, "
        f"{own['notes_helper.py'][:12]} now)"]
    alone = {"latefuse.py": own["latefuse.py"]}
    assert user_model_digest({**source, "files": {**alone, str(elsewhere / "farfuse.py"): "1" * 64}}) \
        == own["latefuse.py"][:10] == user_model_digest({**source, "files": alone})


def test_the_names_read_from_the_model_files_source_are_the_registrys(own_models, monkeypatch):
    """A sweep or tune checks its model names before torch (model_names, an ast scan of the files the registry
    imports); the scan must name what discovery registers, a models folder's model included."""
    from mmsa_atsuko.model_names import check_model_names, registered_names
    folder, _ = own_models
    assert registered_names() == set(list_models()) >= SHIPPED
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder))
    assert registered_names() == set(list_models()) == set(registry._REGISTRY) >= SHIPPED | {"latefuse"}
    check_model_names(["TFN", "latefuse", "atsuko_mcm"])          # any letter case, as the registry takes them
    with pytest.raises(UsageError, match="unknown model 'nosuch'.* Known models: atsuko, "):
        check_model_names(["tfn", "nosuch"])
    monkeypatch.setenv(discovery.MODELS_ENV, str(folder / "missing"))
    assert registered_names() is None                              # the registry's line says what is wrong


def test_the_registry_meta_read_from_the_model_files_source_is_the_registrys(monkeypatch):
    """The config loader reads a model's YAML name and a variant's switches (`model_meta`) before torch, from the
    files' source: it must be what the registry holds, or a sweep would check one config and train another."""
    from mmsa_atsuko import model_names
    from mmsa_atsuko.models.atsuko.family import ABLATIONS
    list_models()
    monkeypatch.setattr(model_names, "registry_now", dict)          # as before discovery: read from the source
    for name in SHIPPED:
        assert model_names.model_meta(name.upper()) == get_model_class(name).registry_meta, name
    # model.py writes the ablations' switches out for the scan; family.py names them without torch: the same.
    assert {name: (meta["overrides"]["use_sbn"], meta["overrides"]["use_mcm"])
            for name in ABLATIONS for meta in [model_names.model_meta(name)]} == ABLATIONS


def test_a_model_file_nested_past_the_parser_is_kept_like_a_baselines_in_one_line(own_models, capsys):
    """`x = ---...1` 200,000 deep: ast.parse raises MemoryError (or RecursionError), which neither the sibling-import
    check (SyntaxError caught) nor model_names' scan (OSError, SyntaxError, ValueError) caught: `list --models` and
    a sweep's name check were a traceback. Both read the file through discovery.parse_source now; its import fails
    the same way, and is kept like a baseline's failure."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.model_names import _registrations
    folder, _ = own_models
    deep = folder / "deep.py"
    deep.write_text("from mmsa_atsuko.registry import register_model\nx = " + "-" * 200_000 + "1\n")
    assert list(_registrations(deep)) == [] and list(_registrations(folder / "latefuse.py")) == ["latefuse"]
    assert main(["list", "--models", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"  {deep} unavailable: MemoryError" in out and any(line.startswith("  latefuse ") for line in out)
    assert discovery.parse_source(deep) is None and discovery.parse_source(folder / "latefuse.py") is not None
