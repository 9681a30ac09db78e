"""Why Atsuko's modality router does not respond on the `corrupt` stress recipe (issue 16).

Three questions, each answered with a number:

(a) Can the router's INPUT tell a corrupted modality from a clean one at all? Linear
    (logistic regression) and small-MLP probes predict, per sample, which modality is corrupted
    (4 classes: none, L, A, V), fitted on train and scored on valid, from
      - `refined`: the pre-path router input z = flatten([X'_L, Align(X'_V), Align(X'_A)]) of a
        trained Atsuko run, eval mode (what the router reads at test time);
      - `refined+dropout`: the same in train mode (text dropout, band masking: what it reads while
        it learns);
      - `raw`: the input features before dropout, time-aligned as EMOE's router reads them
        (the PreAttentionInput of router_input=raw, with mean pooling instead of its Align linears);
      - `pooled`: per modality the mean and std over valid frames of the input features;
      - `h`: the transformers' outputs [h_L; h_V; h_A], what the post-path router reads;
      - `unimodal scores`: the trained model's three unimodal predictions y_hat_L, y_hat_V,
        y_hat_A and their pairwise absolute gaps (a modality's own estimate of the label;
        corruption shows only as their disagreement, so this is the most direct summary of it).
    The ceiling is the Bayes posterior on the TRUE latents (the generating process, read
    exactly: no feature noise), printed first.
(b) Does the complementarity TARGET q (docs/atsuko.md §9, Eq. 6) encode the corruption? Mean q_m over the
    samples where m is corrupted against where it is clean, and the AUC of 1 - q_m for
    "m is corrupted", from the trained run's own phi on each split; and the response of a router
    that follows L_comp perfectly, w = E[q | x] (`target_ceiling`).
(c) Could the router follow q if it tried? A ridge regression fits q on each router input (train ->
    valid R^2); and the router's own weights w against q (AUC of 1 - w_m).

    python bench/atsuko_corrupt_probe.py --results results/atsuko_stress_full --run RUN_ID

Needs a finished `atsuko` run on a corrupt recipe with best.pt. Synthetic data only.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmsa_atsuko.analysis import load_run  # noqa: E402
from mmsa_atsuko.data.synthetic_stress import CORRUPT_NONE_SHARE, RHO, read_condition  # noqa: E402

MODALITIES = ("L", "V", "A")
CORRUPT_INDEX = {"L": 0, "A": 1, "V": 2}          # the recipe's codes (synthetic_stress.CORRUPT_CODES)


def bayes_ceiling(n: int = 200_000, seed: int = 0, rho: float = RHO) -> dict:
    """The best any router can do on `corrupt`: the posterior over (none, T, A, V) given the three
    TRUE latents the features are built from (x_m, or the fresh x' of the corrupted one)."""
    from scipy.stats import multivariate_normal
    rng = np.random.default_rng(seed)
    s, *u = rng.standard_normal((4, n))
    x = np.stack([math.sqrt(rho) * s + math.sqrt(1 - rho) * um for um in u], 1)
    c = np.where(rng.random(n) < CORRUPT_NONE_SHARE, -1, rng.integers(0, 3, n))
    obs = np.where(c[:, None] == np.arange(3)[None], rng.standard_normal((n, 3)), x)
    clean = np.full((3, 3), rho) + np.eye(3) * (1 - rho)
    covs = [clean]
    for m in range(3):
        cov = clean.copy()
        cov[m, :] = cov[:, m] = 0
        cov[m, m] = 1
        covs.append(cov)
    lik = np.stack([multivariate_normal(np.zeros(3), cv).pdf(obs) for cv in covs], 1)
    post = lik / lik.sum(1, keepdims=True)
    prior = np.array([CORRUPT_NONE_SHARE] + [(1 - CORRUPT_NONE_SHARE) / 3] * 3)
    post = post * prior / (post * prior).sum(1, keepdims=True)
    # MAE-optimal fusion is a posterior mixture of per-hypothesis linear fusions; its effective
    # (normalised) weight on modality m, as a router weight, and that weight's corrupted/clean ratio.
    beta = rho / (1 + rho)
    eff = np.stack([post[:, 0] + sum(post[:, k + 1] * (0.0 if k == m else 1 + beta) for k in range(3))
                    for m in range(3)], 1)
    eff /= eff.sum(1, keepdims=True)
    ratio = [eff[c == m, m].mean() / eff[c != m, m].mean() for m in range(3)]
    return {"accuracy": float((post.argmax(1) == c + 1).mean()),
            "auc": [_auc(post[:, m + 1], c == m) for m in range(3)], "ideal_weight_ratio": ratio,
            "posterior": post, "corrupted": c}


def target_ceiling(ceiling: dict, q: np.ndarray, corrupted: np.ndarray) -> list:
    """The corrupted/clean weight ratio of the router that follows L_comp perfectly.

    KL(q || w) averaged over samples with the same input is minimised by w(x) = E[q | x], and
    E[q | x] = sum_k P(k | x) E[q | k] when q depends on the input only through the condition k
    (the label noise it also reads is independent of x). With E[q | k] measured on the run (q
    averaged per true condition) and P(k | x) the Bayes posterior, this is the most any router
    trained by L_comp can respond; columns in the recipe's order T, A, V."""
    mean_q = np.stack([q[corrupted == k].mean(0) for k in (-1, 0, 1, 2)])      # (4, 3): L, V, A columns
    mean_q = mean_q[:, [0, 2, 1]]                                               # -> T, A, V
    w = ceiling["posterior"] @ mean_q
    c = ceiling["corrupted"]
    return [float(w[c == m, m].mean() / w[c != m, m].mean()) for m in range(3)]


def _auc(score, positive) -> float:
    from sklearn.metrics import roc_auc_score
    positive = np.asarray(positive)
    return float(roc_auc_score(positive, score)) if 0 < positive.sum() < len(positive) else float("nan")


def _mask_mean(x, mask):
    mask = mask.unsqueeze(-1).to(x.dtype)
    return (x * mask).sum(1) / mask.sum(1).clamp_min(1)


def _mask_std(x, mask):
    mean = _mask_mean(x, mask)
    return _mask_mean((x - mean.unsqueeze(1)) ** 2, mask).sqrt()


def _align_mean(x, length):
    """Resample the time axis to `length` by adaptive mean pooling (parameter-free stand-in for
    EMOE's Align linears, which are only trained inside a model)."""
    return F.adaptive_avg_pool1d(x.transpose(1, 2), length).transpose(1, 2)


@torch.no_grad()
def router_views(model, split, batch_size: int, train_mode: bool = False, seed: int = 0) -> dict:
    """Per-sample arrays of every probe input, plus w, q and phi from the model's own loss."""
    torch.manual_seed(seed)
    views = {k: [] for k in ("refined", "raw", "pooled", "h", "unimodal", "w", "q", "phi")}
    for batch in split.batches(batch_size):
        model.train(train_mode)
        inputs = model.inputs(batch)
        x = model.encode(batch, inputs)
        x_prime = {m: model.sbn[m](x[m])["refined"] for m in MODALITIES} if model.use_sbn else x
        views["refined"].append(model.router_input(x_prime) if model.route_path == "pre"
                                else torch.cat([x_prime[m].mean(1) for m in MODALITIES], -1))
        length = inputs["L"].shape[1]
        views["raw"].append(torch.cat([_align_mean(inputs[m], length) for m in MODALITIES], -1).flatten(1))
        masks = {"L": batch.get("text_mask"), "V": batch.get("vision_mask"), "A": batch.get("audio_mask")}
        pooled = []
        for m in MODALITIES:
            mask = masks[m] if masks[m] is not None else torch.ones(inputs[m].shape[:2], dtype=torch.bool)
            pooled += [_mask_mean(inputs[m], mask), _mask_std(inputs[m], mask)]
        views["pooled"].append(torch.cat(pooled, -1))
        model.eval()
        out = model(batch)
        views["h"].append(torch.cat([out["h"][m] for m in MODALITIES], -1))
        uni = torch.stack([out["logits_uni"][m].reshape(-1) for m in MODALITIES], 1)
        gaps = torch.stack([(uni[:, i] - uni[:, j]).abs() for i, j in ((0, 1), (0, 2), (1, 2))], 1)
        views["unimodal"].append(torch.cat([uni, gaps], 1))
        terms = model.loss(out, batch)
        views["w"].append(out["modality_weights"])
        views["q"].append(terms["q"])
        views["phi"].append(terms["phi"])
    return {k: torch.cat(v).float().numpy() for k, v in views.items()}


def _probe(train_x, train_y, valid_x, valid_y, kind: str) -> tuple[float, list]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    steps = [StandardScaler()]
    if train_x.shape[1] > 256:
        steps.append(PCA(n_components=128, random_state=0))
    steps.append(LogisticRegression(max_iter=2000, C=0.1) if kind == "logreg" else
                 MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=800, early_stopping=True,
                               random_state=0))
    clf = make_pipeline(*steps).fit(train_x, train_y)
    proba = clf.predict_proba(valid_x)
    classes = list(clf.classes_)
    aucs = [_auc(proba[:, classes.index(m)], valid_y == m) for m in range(3)]
    return float((clf.predict(valid_x) == valid_y).mean()), aucs


def _regress_r2(train_x, train_q, valid_x, valid_q) -> float:
    """Valid R^2 of q regressed on x: ridge (alpha by cross-validation on train) on standardised
    features, PCA to 128 dims first when wider."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    steps = [StandardScaler()] + ([PCA(n_components=128, random_state=0)] if train_x.shape[1] > 256 else [])
    reg = make_pipeline(*steps, RidgeCV(alphas=np.logspace(-2, 4, 13))).fit(train_x, train_q)
    return float(r2_score(valid_q, reg.predict(valid_x)))


def response(values: np.ndarray, corrupted: np.ndarray) -> str:
    """Per modality: mean when corrupted / mean when clean (ratio), AUC of -value for 'corrupted'."""
    parts = []
    for i, m in enumerate(MODALITIES):
        hit = corrupted == CORRUPT_INDEX[m]
        a, b = values[hit, i].mean(), values[~hit, i].mean()
        parts.append(f"{m} {a:.3f}/{b:.3f} (x{a / b:.2f}, AUC {_auc(-values[:, i], hit):.2f})")
    return ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True)
    p.add_argument("--run", required=True, help="run id of an atsuko run on a corrupt recipe")
    p.add_argument("--skip-mlp", action="store_true", help="logistic probes only")
    p.add_argument("--rho", type=float, default=RHO,
                   help="the recipe's shared share RHO for the Bayes ceiling (a what-if run's patched value)")
    args = p.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.results, args.run)
    cond = read_condition(run.record["data_path"])
    # the probes' classes are the recipe's codes: -1 none, 0 text, 1 audio, 2 vision
    y = {s: np.asarray(cond[s]["corrupted"]) for s in ("train", "valid", "test")}
    ceiling = bayes_ceiling(rho=args.rho)
    print(f"Bayes ceiling on the true latents (RHO {args.rho}): 4-way accuracy {ceiling['accuracy']:.3f} "
          f"(majority {max(CORRUPT_NONE_SHARE, (1 - CORRUPT_NONE_SHARE) / 3):.2f}); AUC T/A/V "
          + " ".join(f"{a:.3f}" for a in ceiling["auc"]) + "; MAE-optimal fusion weight corrupted/clean "
          + " ".join(f"{r:.2f}" for r in ceiling["ideal_weight_ratio"]))
    bs = run.eval_batch_size
    views = {s: router_views(run.model, getattr(run.data, s), bs) for s in ("train", "valid")}
    dropped = router_views(run.model, run.data.train, bs, train_mode=True)
    dropped_valid = router_views(run.model, run.data.valid, bs, train_mode=True, seed=1)
    print("(a) probes: train -> valid, 4-way accuracy; AUC for 'corrupted' T/A/V")
    inputs = [("refined (eval)", views["train"]["refined"], views["valid"]["refined"]),
              ("refined+dropout (train mode)", dropped["refined"], dropped_valid["refined"]),
              ("raw (aligned by mean)", views["train"]["raw"], views["valid"]["raw"]),
              ("pooled mean/std", views["train"]["pooled"], views["valid"]["pooled"]),
              ("h_L, h_V, h_A (post path)", views["train"]["h"], views["valid"]["h"]),
              ("unimodal scores", views["train"]["unimodal"], views["valid"]["unimodal"])]
    for name, tx, vx in inputs:
        for kind in ("logreg",) if args.skip_mlp else ("logreg", "mlp"):
            acc, aucs = _probe(tx, y["train"], vx, y["valid"], kind)
            print(f"  {name:30s} {kind:6s} acc {acc:.3f}  AUC " + " ".join(f"{a:.3f}" for a in aucs))
    test = router_views(run.model, run.data.test, bs)
    print("(b) target q = softmax(phi / tau_c): corrupted/clean mean (ratio, AUC)")
    for s, v in (("train", views["train"]), ("valid", views["valid"]), ("test", test)):
        print(f"  {s:5s} q:   {response(v['q'], y[s])}")
    print(f"  test  phi: {response(test['phi'], y['test'])}")
    print("  a router that follows the target perfectly, w = E[q | x] (Bayes posterior x mean q per "
          "condition on train): corrupted/clean T/A/V "
          + " ".join(f"{r:.3f}" for r in target_ceiling(ceiling, views["train"]["q"], y["train"])))
    print("(c) the router's own w on test: " + response(test["w"], y["test"]))
    for name, tx, vx in inputs:
        print(f"  q regressed on {name}: valid R^2 {_regress_r2(tx, views['train']['q'], vx, views['valid']['q']):.3f}")
    print(f"  q's own spread (std over valid samples): {views['valid']['q'].std(0).round(3).tolist()}")


if __name__ == "__main__":
    main()
