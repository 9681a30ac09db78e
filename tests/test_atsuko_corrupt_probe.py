"""bench/atsuko_corrupt_probe.py's ceilings: how far any router can respond on the `corrupt` recipe.

The recipe (data/synthetic_stress.py) gives a corrupted modality away only by its disagreement
with the other two, which share RHO of their latent. These pin what docs/atsuko_evidence.md reports: at the
first version's RHO = 0.5 (s1) the Bayes posterior over (none, T, A, V), given the true latents, is
right for under 45% of the samples and the MAE-optimal fusion weights a corrupted modality at about
0.9 of its clean weight, far from the issue's 0.5; RHO = 0.9 (s2) is the smallest value on a 0.05
grid where that ceiling is at most 0.5.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("atsuko_corrupt_probe", ROOT / "bench" / "atsuko_corrupt_probe.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_corrupt_s1_was_weakly_identifiable(probe):
    ceiling = probe.bayes_ceiling(n=20_000, seed=0, rho=0.5)
    assert 0.33 < ceiling["accuracy"] < 0.45                      # chance (majority) is 0.25
    assert all(0.6 < a < 0.72 for a in ceiling["auc"])
    assert all(0.85 < r < 0.93 for r in ceiling["ideal_weight_ratio"])


def test_the_recipes_rho_is_the_least_at_which_the_router_target_is_reachable(probe):
    from mmsa_atsuko.data.synthetic_stress import RHO
    ceiling = probe.bayes_ceiling(n=20_000, seed=0, rho=RHO)
    assert ceiling["accuracy"] > 0.6
    assert all(r <= 0.5 for r in ceiling["ideal_weight_ratio"])
    below = probe.bayes_ceiling(n=20_000, seed=0, rho=round(RHO - 0.05, 2))
    assert any(r > 0.5 for r in below["ideal_weight_ratio"])


def test_target_ceiling_on_hand_built_q(probe):
    ceiling = probe.bayes_ceiling(n=20_000, seed=0, rho=0.5)
    corrupted = np.array([-1, 0, 1, 2] * 50)
    # q columns L, V, A; a corrupted modality gets 0.2, a clean one 0.4 (none: uniform)
    q = np.full((len(corrupted), 3), 0.4)
    q[corrupted == -1] = 1 / 3
    for code, col in ((0, 0), (1, 2), (2, 1)):                   # text L, audio A, vision V
        q[corrupted == code, col] = 0.2
    ratios = probe.target_ceiling(ceiling, q, corrupted)
    # even q's own ratio (0.2 / ~0.39) shrinks towards 1 through the weak posterior
    assert all(0.85 < r < 1.0 for r in ratios)
    perfect = {**ceiling, "posterior": np.eye(4)[ceiling["corrupted"] + 1]}
    assert all(r < 0.55 for r in probe.target_ceiling(perfect, q, corrupted))
