"""Stress recipes (data/synthetic_stress.py): the standard recipe unchanged, every stress recipe
deterministic, valid in every MMSA format, its stored condition what was generated, and an
oracle gap: a ridge regression on pooled features that is given the true per-sample condition
beats the same ridge without it by at least 10% test MAE (so routing by sample can pay)."""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsa_atsuko.data import load_dataset
from mmsa_atsuko.data import synthetic as syn
from mmsa_atsuko.data.synthetic import planted_signal
from mmsa_atsuko.data.stamp import STAMP_KEY
from mmsa_atsuko.data.synthetic_stress import (CONDITION_KEY, STRESS_RECIPES, STRESS_VERSIONS, read_condition,
                                               recipe_kind, stress_world)
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.sweep import expand

SPLITS = ("train", "valid", "test")


def test_standard_recipe_is_todays_bytes(tmp_path):
    # sha256 of the files the generator wrote before stress recipes existed (main at 3c836e8); MOSEI's since its
    # text no longer depends on the CPU's BLAS kernel (d9b59fb2fe8d7578 where OpenBLAS ran its SkylakeX kernel)
    today = {("mosi", False): "eb489531cec1ca2d", ("sims", False): "c1c011b355054292",
             ("mosei", True): "3dbc21fd0e9d76f1"}
    for (dataset, aligned), digest in today.items():
        path = syn.write_synthetic(dataset, tmp_path / f"{dataset}.pkl", size="small", aligned=aligned, seed=1)
        assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == digest
        explicit = syn.write_synthetic(dataset, tmp_path / "x.pkl", size="small", aligned=aligned, seed=1,
                                       recipe="standard")
        assert explicit.read_bytes() == path.read_bytes()
    assert syn.synthetic_recipe("mosi", "small", 0, False) == "mosi-small-unaligned-seed0-v2"


DIGEST = """
import hashlib, sys
from pathlib import Path
from mmsa_atsuko.data import synthetic as syn
path = syn.write_synthetic("mosei", Path(sys.argv[1]), size="small", aligned=True, seed=1)
print(hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.skipif("avx512f" not in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else True,
                    reason="needs a CPU that runs OpenBLAS's SkylakeX kernel")
def test_the_bytes_do_not_depend_on_the_cpus_blas_kernel(tmp_path):
    """The sentiment direction's norm came from BLAS (np.linalg.norm: float32 sdot), whose kernel OpenBLAS picks
    for the CPU: MOSEI's text features differed in their last bit between its SkylakeX and Prescott kernels."""
    digests = set()
    for core in ("SkylakeX", "Prescott"):
        done = subprocess.run([sys.executable, "-c", DIGEST, str(tmp_path / f"{core}.pkl")], capture_output=True,
                              text=True, timeout=120, env=os.environ | {"OPENBLAS_CORETYPE": core})
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("recipe", STRESS_RECIPES)
def test_deterministic_per_seed(tmp_path, recipe):
    a = syn.write_synthetic("mosi", tmp_path / "a.pkl", seed=5, recipe=recipe).read_bytes()
    b = syn.write_synthetic("mosi", tmp_path / "b.pkl", seed=5, recipe=recipe).read_bytes()
    c = syn.write_synthetic("mosi", tmp_path / "c.pkl", seed=6, recipe=recipe).read_bytes()
    assert a == b and a != c


@pytest.mark.parametrize("dataset,aligned", [("mosi", False), ("mosei", True), ("sims", False), ("simsv2", False)])
@pytest.mark.parametrize("recipe", STRESS_RECIPES)
def test_valid_in_every_format(tmp_path, recipe, dataset, aligned):
    path = syn.write_synthetic(dataset, tmp_path / "x.pkl", aligned=aligned, recipe=recipe)
    data = load_dataset(dataset, aligned=aligned, feature_path=path)
    name = syn.synthetic_recipe(dataset, "small", 0, aligned, recipe)
    assert name.startswith(f"{recipe}-{STRESS_VERSIONS[recipe]}-{dataset}-small-") and recipe_kind(name) == recipe
    assert data.spec.source == f"synthetic:{name}"
    shapes = syn.synthetic_shapes(dataset, "small", aligned, recipe)
    assert data.spec.split_sizes == shapes["split_sizes"]
    condition = read_condition(path)
    assert condition["recipe"] == name and condition["kind"] == recipe
    for split in SPLITS:
        sizes = {len(v) for v in condition[split].values()}
        assert sizes == {shapes["split_sizes"][split]}
    # the stamp's hash covers the condition: edit it and the file is no longer the generator's
    with open(path, "rb") as f:
        raw = pickle.load(f)
    assert list(raw) == [STAMP_KEY, *SPLITS, CONDITION_KEY]
    field = next(iter(raw[CONDITION_KEY]["test"]))
    raw[CONDITION_KEY]["test"][field] = raw[CONDITION_KEY]["test"][field][::-1].copy()
    edited = tmp_path / "edited.pkl"
    with open(edited, "wb") as f:
        pickle.dump(raw, f, protocol=4)
    assert load_dataset(dataset, aligned=aligned, feature_path=edited).spec.source.startswith("sha256:")


def test_standard_file_has_no_condition(tmp_path):
    path = syn.write_synthetic("mosi", tmp_path / "x.pkl")
    assert read_condition(path) is None


def test_mintrec_has_only_the_standard_recipe(tmp_path):
    with pytest.raises(UsageError, match="mosi, mosei, sims, simsv2 only"):
        syn.write_synthetic("mintrec", tmp_path / "m", recipe="corrupt")
    with pytest.raises(UsageError, match="unknown synthetic recipe"):
        syn.synthetic_recipe("mosi", recipe="noisy")


def test_sweep_takes_the_recipe_from_flag_or_file(tmp_path):
    (_, setting, _), = expand(models=["tfn"], datasets=["mosi"], synthetic=True, synthetic_recipe="bands")
    assert setting.synthetic_recipe == "bands"
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("synthetic: true\nsynthetic_recipe: redundant\nexperiments:\n"
                          "  - {models: [tfn], datasets: [mosi]}\n")
    (_, setting, _), = expand(sweep_file)
    assert setting.synthetic_recipe == "redundant" and setting.data_key() != expand(
        models=["tfn"], datasets=["mosi"], synthetic=True)[0][1].data_key()
    with pytest.raises(UsageError, match="needs synthetic data"):
        expand(models=["tfn"], datasets=["mosi"], synthetic_recipe="bands")


# ----------------------------------------------------------------------------------- condition

def _raw(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _valid_mean(x, lengths):
    valid = (np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None])[:, :, None]
    x = np.where(np.isfinite(x), x, 0.0) * valid
    return x, valid, x.sum(1) / valid.sum(1)


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def _world(recipe, seed=0):
    name = syn.synthetic_recipe("mosi", "small", seed, False, recipe)
    world = planted_signal.world(name, syn.synthetic_shapes("mosi", "small", False, recipe)["feature_dims"])
    world["stress"] = stress_world(recipe, np.random.default_rng(planted_signal.seed_sequence(name + "/stress")), world)
    return world


def test_corrupt_condition_is_what_was_generated(tmp_path):
    raw = _raw(syn.write_synthetic("mosi", tmp_path / "c.pkl", recipe="corrupt"))
    columns = _world("corrupt")["audio"]["columns"]
    x = np.concatenate([raw[s]["audio"] for s in SPLITS])
    lengths = np.concatenate([raw[s]["audio_lengths"] for s in SPLITS])
    y = np.concatenate([raw[s]["regression_labels"] for s in SPLITS])
    corrupted = np.concatenate([raw[CONDITION_KEY][s]["corrupted"] for s in SPLITS])
    assert set(np.unique(corrupted)) == {-1, 0, 1, 2} and 0.15 < np.mean(corrupted == -1) < 0.35
    _, _, mean = _valid_mean(x[:, :, columns], lengths)
    cue = mean @ np.sign(_world("corrupt")["audio"]["gains"])        # the audio cue, signs aligned
    clean, hit = corrupted != 1, corrupted == 1
    assert abs(_corr(cue[clean], y[clean])) > 0.4          # audio carries its latent: corr ~ 0.6 with z
    assert abs(_corr(cue[hit], y[hit])) < 0.2             # a fresh latent: unrelated to the label


def test_bands_condition_is_what_was_generated(tmp_path):
    raw = _raw(syn.write_synthetic("mosi", tmp_path / "b.pkl", recipe="bands"))
    layout = _world("bands")["stress"]["vision"]
    x = np.concatenate([raw[s]["vision"] for s in SPLITS])[:, :, layout["columns"]]
    x = (x - layout["offset"][layout["columns"]]) / layout["scale"][layout["columns"]]
    lengths = np.concatenate([raw[s]["vision_lengths"] for s in SPLITS])
    y = np.concatenate([raw[s]["regression_labels"] for s in SPLITS])
    band = np.concatenate([raw[CONDITION_KEY][s]["cue_band"] for s in SPLITS])
    x, valid, low = _valid_mean(x, lengths)
    high = (x * ((-1.0) ** np.arange(x.shape[1]))[None, :, None]).sum(1) / valid.sum(1)
    low_cue, high_cue = low @ np.sign(layout["gains"]), high @ np.sign(layout["gains"])
    assert _corr(low_cue[band == 0], y[band == 0]) > 0.6 and abs(_corr(low_cue[band == 1], y[band == 1])) < 0.2
    assert _corr(high_cue[band == 1], y[band == 1]) > 0.6 and abs(_corr(high_cue[band == 0], y[band == 0])) < 0.2


def test_redundant_condition_is_what_was_generated(tmp_path):
    raw = _raw(syn.write_synthetic("mosi", tmp_path / "r.pkl", recipe="redundant"))
    world = _world("redundant")
    for modality in ("audio", "vision"):
        layout = world[modality]
        x = np.concatenate([raw[s][modality] for s in SPLITS])[:, :, layout["columns"]]
        x = (x - layout["offset"][layout["columns"]]) / layout["scale"][layout["columns"]]
        lengths = np.concatenate([raw[s][f"{modality}_lengths"] for s in SPLITS])
        x, valid, mean = _valid_mean(x, lengths)
        spread = np.sqrt((((x - mean[:, None]) ** 2) * valid).sum((1, 2)) / valid.sum((1, 2)))
        noise = np.concatenate([raw[CONDITION_KEY][s][f"noise_{modality}"] for s in SPLITS])
        # the frames' spread follows the stored noise level (below ~0.5 the cue's own time
        # course, of unit power, dominates it)
        assert _corr(np.log(spread), np.log(noise)) > 0.7
        loud = noise > 0.5
        assert _corr(np.log(spread[loud]), np.log(noise[loud])) > 0.9


# ------------------------------------------------------------------------------------ oracle gap

def _pooled(split, modality):
    """Per column: mean, alternating mean ((-1)^frame) and std over the valid frames."""
    x, valid, mean = _valid_mean(split[modality], split[f"{modality}_lengths"])
    alt = (x * ((-1.0) ** np.arange(x.shape[1]))[None, :, None]).sum(1) / valid.sum(1)
    std = np.sqrt((((x - mean[:, None]) ** 2) * valid).sum(1) / valid.sum(1))
    return mean, alt, std


def _features(split, condition, recipe, oracle):
    text = split["text"].sum(1) / split["text_bert"][:, 1].sum(1, keepdims=True)
    audio, vision = _pooled(split, "audio"), _pooled(split, "vision")
    blocks = {"text": text, "audio": np.concatenate(audio, 1), "vision": np.concatenate(vision, 1)}
    if not oracle:
        return np.concatenate(list(blocks.values()), 1)
    if recipe == "corrupt":        # the condition drops the corrupted modality
        k = condition["corrupted"]
        return np.concatenate([blocks[m] * (k != i)[:, None] for i, m in enumerate(blocks)] + [np.eye(4)[k + 1]], 1)
    if recipe == "bands":          # the condition says which band holds the cue
        mean, alt, std = vision
        high = condition["cue_band"][:, None] == 1
        return np.concatenate([text, blocks["audio"], np.where(high, alt, mean), np.where(high, mean, alt), std], 1)
    precision = {m: 1.0 / condition[f"noise_{m}"] ** 2 for m in ("audio", "vision")}    # redundant
    total = precision["audio"] + precision["vision"]
    return np.concatenate([text] + [blocks[m] * (precision[m] / total)[:, None] for m in ("audio", "vision")], 1)


def _ridge(x_train, y_train, x_eval, alpha):
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_eval - mu) / sd
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y_train - y_train.mean()))
    return b @ w + y_train.mean()


def _test_mae(raw, recipe, oracle):
    x = {s: _features(raw[s], raw[CONDITION_KEY][s], recipe, oracle) for s in SPLITS}
    y = {s: raw[s]["regression_labels"] for s in SPLITS}
    alpha = min((1.0, 10.0, 100.0, 1000.0, 10000.0),        # chosen on valid
                key=lambda a: np.abs(_ridge(x["train"], y["train"], x["valid"], a) - y["valid"]).mean())
    return float(np.abs(_ridge(x["train"], y["train"], x["test"], alpha) - y["test"]).mean())


@pytest.mark.parametrize("recipe", STRESS_RECIPES)
def test_oracle_condition_pays(tmp_path, recipe):
    raw = _raw(syn.write_synthetic("mosi", tmp_path / "x.pkl", recipe=recipe))
    plain, oracle = _test_mae(raw, recipe, False), _test_mae(raw, recipe, True)
    # measured at seed 0: corrupt (s2) 0.876 -> 0.693, bands 0.963 -> 0.687, redundant 0.940 -> 0.775
    assert oracle <= 0.9 * plain, (plain, oracle)
