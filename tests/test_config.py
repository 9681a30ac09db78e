"""Strict config layering: order, unknown keys, types, presets, every shipped YAML."""
import pytest
import yaml

from mmsa_atsuko.config import CONFIG_DIR, config_hash, dataset_names, load_config, parse_override
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.registry import list_models

DATASETS = {
    "defaults": {"batch_size": 1, "learning_rate": 0.1, "max_epochs": 10, "pretrained": None,
                 "key_eval": "Loss"},
    "datasets": {name: {"format": "mmsa", "task": "regression", "metrics": name, "headline": "MAE", "language": "en",
                        "label_range": [-1, 1], "files": {"unaligned": f"{name}.pkl"}, "config": config}
                 for name, config in (("mosi", {"batch_size": 2}), ("sims", {}))},
    "checks": {"max_epochs": "[1, inf)", "pretrained": "any", "key_eval": "any"},
}
TFN = {
    "common": {"batch_size": 3, "hidden": 8, "ratio": 0.5, "flag": True, "dims": [1, 2], "mode": "a"},
    "mosi": {"batch_size": 4, "hidden": 16},
    "presets": {"small": {"hidden": 32, "max_epochs": 2}},
    "checks": {"hidden": "[1, inf)", "ratio": "[0, 1]", "dims": "[1, inf)", "mode": ["a", "b"]},
}


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump(DATASETS))
    (tmp_path / "tfn.yaml").write_text(yaml.safe_dump(TFN))
    return tmp_path


def test_layer_order(config_dir):
    c = load_config("tfn", "mosi", config_dir=config_dir)
    # defaults 1 -> dataset config 2 -> model common 3 -> model mosi block 4
    assert c.batch_size == 4 and c.hidden == 16 and c.learning_rate == 0.1
    c = load_config("tfn", "sims", config_dir=config_dir)
    assert c.batch_size == 3 and c.hidden == 8
    c = load_config("tfn", "mosi", preset="small", overrides=["hidden=64", "ratio=1"], config_dir=config_dir)
    assert c.hidden == 64 and c.max_epochs == 2 and c.batch_size == 4
    assert c.ratio == 1.0 and isinstance(c.ratio, float)


def test_unknown_key_names_the_closest(config_dir):
    with pytest.raises(UsageError, match=r"unknown config key 'hiden'; closest known: hidden"):
        load_config("tfn", "mosi", overrides=["hiden=3"], config_dir=config_dir)
    bad = dict(TFN, sims={"learning_rat": 1.0})
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(UsageError, match=r"tfn.yaml sims: unknown config key 'learning_rat'; closest known: learning_rate"):
        load_config("tfn", "sims", config_dir=config_dir)


def test_an_unknown_key_close_to_none_says_where_the_keys_are(config_dir):
    """`-c lr=0.1` said only "unknown config key 'lr'": no key is close to it, and nothing named where to look."""
    with pytest.raises(UsageError) as err:
        load_config("tfn", "mosi", overrides=["lr=0.1"], config_dir=config_dir)
    assert str(err.value) == (f"command-line override -c: unknown config key 'lr'; tfn's keys are the common: block "
                              f"of {config_dir / 'tfn.yaml'} and the defaults of {config_dir / 'datasets.yaml'}")
    with pytest.raises(UsageError) as err:                          # the shipped configs, as the README names them
        load_config("tfn", "mosi", overrides=["lr=0.1"])
    assert str(err.value).endswith("tfn's keys are the common: block of configs/tfn.yaml and the defaults of "
                                   "configs/datasets.yaml")


def test_a_model_without_its_yaml_names_the_file_and_what_goes_in_it(config_dir):
    (config_dir / "tfn.yaml").unlink()
    with pytest.raises(UsageError) as err:
        load_config("tfn", "mosi", config_dir=config_dir)
    assert str(err.value) == (f"model tfn has no config: {config_dir / 'tfn.yaml'} not found; put tfn.yaml in "
                              f"{config_dir}, with a common: block declaring every key the model reads and a "
                              f"small preset (README, Adding a model)")


@pytest.mark.parametrize("override, message", [
    ("hidden=abc", "hidden must be an int"),
    ("hidden=1.5", "hidden must be an int"),
    ("flag=1", "flag must be a bool"),
    ("ratio=yes", "ratio must be a float"),
    ("dims=3", "dims must be a list"),
    ("hidden=null", "hidden cannot be null"),
    ("mode=3", "mode must be a str"),
    ("novalue", "must look like key=value"),
])
def test_wrongly_typed_overrides(config_dir, override, message):
    with pytest.raises(UsageError, match=message):
        load_config("tfn", "mosi", overrides=[override], config_dir=config_dir)


def test_null_default_accepts_anything(config_dir):
    assert load_config("tfn", "mosi", overrides=["pretrained=/x/bert"], config_dir=config_dir).pretrained == "/x/bert"


def test_unknown_preset_dataset_and_model(config_dir):
    with pytest.raises(UsageError, match="unknown preset 'tiny'.*defines: small"):
        load_config("tfn", "mosi", preset="tiny", config_dir=config_dir)
    with pytest.raises(UsageError, match="unknown dataset 'mosii'. Did you mean mosi"):
        load_config("tfn", "mosii", config_dir=config_dir)
    with pytest.raises(UsageError, match="unknown model 'tfm'. Did you mean tfn"):
        load_config("tfm", "mosi", config_dir=config_dir)


def test_parse_override_values():
    assert parse_override("learning_rate=1e-3") == ("learning_rate", 0.001)
    assert parse_override("dims=[1, 2]") == ("dims", [1, 2])
    assert parse_override("flag=false") == ("flag", False)
    assert parse_override("path=/a/b=c") == ("path", "/a/b=c")


def test_hash_depends_on_values_only():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize("dataset", dataset_names())
@pytest.mark.parametrize("model", list_models())
def test_every_shipped_config_resolves(model, dataset):
    """Every model's YAML resolves for every dataset datasets.yaml lists, plain and at each preset it declares (strict
    keys, types). One test: tests/test_hostile.py held a copy over a hand-written tuple of datasets."""
    from mmsa_atsuko.config import model_config_name, read_yaml
    name, _ = model_config_name(model)
    for preset in (None, *(read_yaml(CONFIG_DIR / f"{name}.yaml").get("presets") or {})):
        load_config(model, dataset, preset=preset)




def test_a_null_default_key_set_to_1_or_1_0_is_one_config():
    """grad_clip=1 and grad_clip=1.0 hashed differently, so a sweep ran the same run twice."""
    one, one_point_zero = (load_config("tfn", "sims", overrides=[f"grad_clip={v}"]) for v in ("1", "1.0"))
    assert one.grad_clip == 1.0 and isinstance(one.grad_clip, float)
    assert config_hash(one) == config_hash(one_point_zero)
    assert load_config("atsuko", "sims", overrides=["lambda_ent_band=0"]).lambda_ent_band == 0.0
    assert load_config("tfn", "sims").grad_clip is None                       # null stays allowed
    with pytest.raises(UsageError, match="eval_batch_size must be an int"):
        load_config("tfn", "sims", overrides=["eval_batch_size=8.5"])
    with pytest.raises(UsageError, match="use_distill must be a bool"):
        load_config("atsuko", "sims", overrides=["use_distill=1"])


def test_an_override_of_on_off_yes_no_is_the_word_not_a_bool():
    """YAML 1.1 reads `off` as False: `-c distill_form=off` must reach the model as the word."""
    assert parse_override("distill_form=off") == ("distill_form", "off")
    assert parse_override("use_bert=true") == ("use_bert", True)
    assert load_config("atsuko", "mosi", overrides=["distill_form=off"]).distill_form == "off"
    with pytest.raises(UsageError, match="use_bert must be a bool"):
        load_config("atsuko", "mosi", overrides=["use_bert=yes"])


# ------------------------------------------------------------------------------------------
# a string where a number is checked (a new model's YAML): one line, never a TypeError
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block, message", [
    ({"post_fusion_dim": "64"}, r"tfn.yaml common: post_fusion_dim must be a number, got '64'; write it without quotes$"),
    ({"head_temperature": "1e-3"},
     r"tfn.yaml common: head_temperature must be a number, got '1e-3'; write 1\.0e-3 \(YAML 1.1 reads 1e-3 as a string\)$"),
    ({"fusion_dropouts": [0.1, "5e-5"]},
     r"fusion_dropouts\[1\] must be a number, got '5e-5' \(in \[0.1, '5e-5'\]\); write 5\.0e-5 \(YAML 1.1"),
    ({"head_temperature": "1.5e3"}, r"write 1\.5e\+3 \(YAML 1.1 reads 1.5e3 as a string\)$"),
    ({"hidden_dim": "banana"}, r"tfn.yaml common: hidden_dim must be a number, got 'banana'$"),
])
def test_a_string_in_the_declaring_block_of_a_checked_number_is_one_line(config_dir, block, message):
    """`hidden_dim: "64"` (or `head_temperature: 1e-3`, a string to YAML 1.1) in `common` declared a
    string; its interval check then compared it with a bound: TypeError and a traceback."""
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(dict(TFN, common={**TFN["common"], **block})))
    with pytest.raises(UsageError, match=message):
        load_config("tfn", "mosi", config_dir=config_dir)


def test_a_yaml_1_1_string_for_a_declared_float_names_the_spelling_that_works(config_dir):
    bad = dict(TFN, presets={"small": {"learning_rate": "5e-5"}})
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(UsageError, match=r"presets.small: learning_rate must be a float like 0.1, got '5e-5'; "
                                         r"write 5\.0e-5 \(YAML 1.1 reads 5e-5 as a string\)"):
        load_config("tfn", "mosi", preset="small", config_dir=config_dir)


def test_an_override_in_e_notation_is_a_float():
    assert [parse_override(f"learning_rate={v}")[1] for v in ("1e-3", "5E-5", "-2e-4", "1.5e3")] == [1e-3, 5e-5, -2e-4, 1500.0]
    config = load_config("atsuko", "mosi", overrides=["router_temperature=1e-3"])
    assert config.router_temperature == 1e-3 and isinstance(config.router_temperature, float)


def test_no_shipped_yaml_holds_a_number_spelled_as_a_string():
    """`1e-3` in a shipped YAML would be a string (YAML 1.1); they write 1.0e-3."""
    from mmsa_atsuko.config import number_hint, read_yaml

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node
    paths = sorted(CONFIG_DIR.glob("*.yaml")) + sorted(CONFIG_DIR.glob("*/*.yaml"))
    assert paths
    found = [(p.name, s) for p in paths for s in strings(read_yaml(p)) if number_hint(s)]
    assert found == []


# ------------------------------------------------------------------------------------------
# an int default of a real-valued key (its check an interval like [0, 1) or (0, inf))
# ------------------------------------------------------------------------------------------
INT_DEFAULTS = {
    "datasets.yaml": {"defaults": {"batch_size": 1, "learning_rate": 0.1, "max_epochs": 10, "pretrained": None,
                                   "key_eval": "Loss"},
                      "checks": {"max_epochs": "[1, inf)", "pretrained": "any", "key_eval": "any"},
                      "datasets": {"mosi": DATASETS["datasets"]["mosi"]}},
    "tfn.yaml": {"common": {"fusion_dropout": 0, "head_temperature": 1, "hidden_dim": 8},
                 "presets": {"small": {"fusion_dropout": 0.1}}},
}


@pytest.fixture
def int_defaults_dir(tmp_path):
    for name, data in INT_DEFAULTS.items():
        (tmp_path / name).write_text(yaml.safe_dump(data))
    return tmp_path


def test_an_int_default_of_a_real_valued_key_takes_a_float(int_defaults_dir):
    """`fusion_dropout: 0` in common and 0.1 in a preset: 'fusion_dropout must be a int like 0, got 0.1'."""
    c = load_config("tfn", "mosi", preset="small", overrides=["head_temperature=0.5"], config_dir=int_defaults_dir)
    assert c.fusion_dropout == 0.1 and c.head_temperature == 0.5
    with pytest.raises(UsageError, match=r"fusion_dropout must be in \[0, 1\), got 1.5"):      # still checked
        load_config("tfn", "mosi", overrides=["fusion_dropout=1.5"], config_dir=int_defaults_dir)
    with pytest.raises(UsageError, match=r"command-line override -c: fusion_dropout must be a number like 0, got 'x'"):
        load_config("tfn", "mosi", overrides=["fusion_dropout=x"], config_dir=int_defaults_dir)
    # a count ([1, inf)) stays an int
    with pytest.raises(UsageError, match=r"hidden_dim must be an int like 8, got 1.5"):
        load_config("tfn", "mosi", overrides=["hidden_dim=1.5"], config_dir=int_defaults_dir)


def test_an_int_value_of_a_real_valued_key_is_stored_and_hashed_as_before(int_defaults_dir):
    """Accepting floats changes no config that loaded before: an int stays an int, so its hash is
    the one the old code gave (the hashes below are the old code's, for these very files)."""
    c = load_config("tfn", "mosi", config_dir=int_defaults_dir)
    assert type(c.fusion_dropout) is int and type(c.head_temperature) is int
    assert config_hash(c) == "78bb3ba3320b"
    c = load_config("tfn", "mosi", overrides=["head_temperature=2", "fusion_dropout=0"], config_dir=int_defaults_dir)
    assert config_hash(c) == "c67f593e1604"


@pytest.mark.parametrize("spec, real", [
    ("[0, 1)", True), ("(0, inf)", True), ("[0.0, inf)", True), ("[0, 0.5]", True),
    ("[1, inf)", False), ("[0, inf)", False), ("[-1, 1]", False), ("(-inf, 0]", False),
])
def test_which_intervals_are_real_valued(spec, real):
    from mmsa_atsuko.config import Check
    assert Check(spec, "here").real is real


# ------------------------------------------------------------------------------------------
# every declared key has a check, or the config does not load
# ------------------------------------------------------------------------------------------
def test_a_model_key_without_a_check_is_refused_naming_the_line_to_add(config_dir):
    """`pool: mean` with no check took `-c pool=banana`: only a test guarded the shipped YAMLs."""
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(dict(TFN, common={**TFN["common"], "pool": "mean"})))
    with pytest.raises(UsageError, match=r"^tfn.yaml common: pool has no check; add a line to the checks: block of "
                                         r"tfn.yaml, e.g. `pool: \[mean, ...\]` \(the allowed words\), or `pool: any`"):
        load_config("tfn", "mosi", config_dir=config_dir)
    checked = dict(TFN, common={**TFN["common"], "pool": "mean"}, checks={**TFN["checks"], "pool": ["mean", "max"]})
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(checked))
    assert load_config("tfn", "mosi", overrides=["pool=max"], config_dir=config_dir).pool == "max"
    with pytest.raises(UsageError, match=r"command-line override -c: pool must be one of mean, max, got 'banana'"):
        load_config("tfn", "mosi", overrides=["pool=banana"], config_dir=config_dir)


@pytest.mark.parametrize("default, line", [
    (3, r'`extra: "\[1, inf\)"` \(an interval\)'),
    (0.5, r'`extra: "\[0.0, inf\)"` \(an interval\)'),
    ([0.1, 0.2], r'`extra: "\[0.0, inf\)"` \(an interval\)'),
    (None, r"add `extra: any` \(checked where it is used\), an interval or the allowed words to the checks: block"),
])
def test_the_missing_check_line_fits_the_default(config_dir, default, line):
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(dict(TFN, common={**TFN["common"], "extra": default})))
    with pytest.raises(UsageError, match=line):
        load_config("tfn", "mosi", config_dir=config_dir)


def test_a_bool_needs_no_check_and_a_trainer_key_needs_one(config_dir):
    (config_dir / "tfn.yaml").write_text(yaml.safe_dump(
        dict(TFN, common={**TFN["common"], "use_x": False, "maybe": None}, nullable={"maybe": "bool"})))
    assert load_config("tfn", "mosi", config_dir=config_dir).use_x is False
    (config_dir / "datasets.yaml").write_text(yaml.safe_dump(dict(DATASETS, checks={"pretrained": "any", "key_eval": "any"})))
    with pytest.raises(UsageError, match=r"^configs/datasets.yaml defaults: max_epochs has no check; add a line to "
                                         r"the checks: block of configs/datasets.yaml"):
        load_config("tfn", "mosi", config_dir=config_dir)


# ------------------------------------------------------------------------------------------
# the trainer's keys: an error names the layer that set the value, as for any other key
# ------------------------------------------------------------------------------------------
def test_a_trainer_value_is_blamed_on_the_layer_that_set_it():
    """`-c learning_rate=-1` said 'learning_rate must be positive' with no `command-line override -c:`:
    the trainer keys were `any` to the loader and checked on the whole config afterwards."""
    from mmsa_atsuko.training.trainer_config import resolve_config
    with pytest.raises(UsageError, match=r"^command-line override -c: learning_rate must be positive, got -1.0$"):
        load_config("tfn", "sims", overrides=["learning_rate=-1"])
    with pytest.raises(UsageError, match=r"^--max-epochs: max_epochs must be at least 1, got 0$"):
        resolve_config("tfn", "sims", max_epochs=0)
    with pytest.raises(UsageError, match=r"^--max-epochs: max_epochs must be an int like 100, got 2.5$"):
        resolve_config("tfn", "sims", max_epochs=2.5)            # was int(2.5): 2 epochs, silently
    with pytest.raises(UsageError, match=r"^a layer: key_eval must be a metric of sims \(Loss, "):
        resolve_config("tfn", "sims", overrides=[("key_eval", "Has0_acc_2", "a layer")])
    origins = {}
    load_config("mult", "mosi", overrides=["scheduler_factor=0.5"], origins=origins)
    assert origins["scheduler_factor"] == "command-line override -c" and origins["scheduler"] == "mult.yaml common"
    assert origins["key_eval"] == "datasets.yaml mosi.config"


def test_grad_accum_rule_leaves_the_identity_where_one_batch_makes_a_step():
    """With grad_accum 1 both rules clip and step after every batch (tests/test_trainer.py trains them alike):
    paper.yaml's grad_accum_rule mmsa must not retrain TFN (grad_accum 1) as a new config. MulT (8) differs."""
    tfn, tfn_mmsa = load_config("tfn", "mosi"), load_config("tfn", "mosi", overrides=["grad_accum_rule=mmsa"])
    assert tfn.grad_accum == 1 and config_hash(tfn_mmsa) == config_hash(tfn)
    mult, mult_mmsa = load_config("mult", "mosi"), load_config("mult", "mosi", overrides=["grad_accum_rule=mmsa"])
    assert mult.grad_accum == 8 and config_hash(mult_mmsa) != config_hash(mult)


@pytest.mark.parametrize("key, before, other", [("valid_loss", "exact", "mmsa"), ("grad_accum_rule", "sum", "mmsa")])
def test_a_key_added_later_keeps_the_identity_and_config_of_every_run_stored_before_it(key, before, other):
    """`valid_loss` (training/selection.py) and `grad_accum_rule` (training/trainer.py) joined the trainer keys after
    runs were stored. A stored config lacks them and ran as `before` says: it is read so, and at that value the key
    stays out of the hash, so those runs keep their config hash (the hash as it was: sha256 of the sorted-key JSON
    without either key, written out here) and a sweep does not train them again. `other` is another config."""
    import hashlib
    import json

    from mmsa_atsuko.config import check_config
    today = load_config("tfn", "mosi")
    assert today[key] == before
    stored = {k: v for k, v in today.items() if k not in ("valid_loss", "grad_accum_rule")}   # a run from before
    old_hash = hashlib.sha256(json.dumps(stored, sort_keys=True, default=str, separators=(",", ":")).encode())
    assert config_hash(today) == old_hash.hexdigest()[:12]
    assert dict(check_config("tfn", stored, "model.json config")) == dict(today)
    # at grad_accum 2: with 1 the two accumulation rules train alike and share a hash (the test above)
    changed = load_config("tfn", "mosi", overrides=[f"{key}={other}", "grad_accum=2"])
    unchanged = load_config("tfn", "mosi", overrides=["grad_accum=2"])
    assert changed[key] == other and config_hash(changed) != config_hash(unchanged)
    with pytest.raises(UsageError, match=f"^command-line override -c: {key} must be one of {before}, {other}, "
                                         f"got 'batch'$"):
        load_config("tfn", "mosi", overrides=[f"{key}=batch"])
