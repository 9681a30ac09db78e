"""Tests for mmsa_atsuko.metrics.

Three kinds of checks:
1. small hand-made vectors whose expected values are counted by hand in the comments;
2. edge cases (rounding ties, SIMS bin edges in float32, constant predictions, torch inputs);
3. a randomized comparison against reference functions written below as literally as
   possible after MMSA's `thuiar/MMSA:src/MMSA/utils/metricsTop.py` and MIntRec's
   `thuiar/MIntRec:utils/metrics.py` + `methods/MULT/manager.py` (minus MMSA's round(x, 4)).

Every warning raised inside a test is an error here (see `pytestmark`): compute_metrics must
never warn. The reference functions silence their own warnings.
"""
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.config import METRIC_KEYS
from mmsa_atsuko.metrics import compute_metrics
from mmsa_atsuko.metrics.names import MMSA_CSV_KEYS, lower_is_better, metric_keys

pytestmark = pytest.mark.filterwarnings("error")


# ======================================================================================
# Reference implementations (independent of mmsa_atsuko.metrics)
# ======================================================================================

def ref_mmsa_mosei_regression(test_preds, test_truth):
    """MMSA's __eval_mosei_regression on the arrays it gets after `.view(-1).cpu().numpy()`."""
    def multiclass_acc(y_pred, y_true):
        return np.sum(np.round(y_pred) == np.round(y_true)) / float(len(y_true))

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        test_preds_a7 = np.clip(test_preds, a_min=-3., a_max=3.)
        test_truth_a7 = np.clip(test_truth, a_min=-3., a_max=3.)
        test_preds_a5 = np.clip(test_preds, a_min=-2., a_max=2.)
        test_truth_a5 = np.clip(test_truth, a_min=-2., a_max=2.)
        test_preds_a3 = np.clip(test_preds, a_min=-1., a_max=1.)
        test_truth_a3 = np.clip(test_truth, a_min=-1., a_max=1.)

        mae = np.mean(np.absolute(test_preds - test_truth))
        corr = np.corrcoef(test_preds, test_truth)[0][1]
        mult_a7 = multiclass_acc(test_preds_a7, test_truth_a7)
        mult_a5 = multiclass_acc(test_preds_a5, test_truth_a5)
        mult_a3 = multiclass_acc(test_preds_a3, test_truth_a3)

        non_zeros = np.array([i for i, e in enumerate(test_truth) if e != 0])
        non_zeros_binary_truth = (test_truth[non_zeros] > 0)
        non_zeros_binary_preds = (test_preds[non_zeros] > 0)
        non_zeros_acc2 = accuracy_score(non_zeros_binary_preds, non_zeros_binary_truth)
        non_zeros_f1_score = f1_score(non_zeros_binary_truth, non_zeros_binary_preds, average='weighted')

        binary_truth = (test_truth >= 0)
        binary_preds = (test_preds >= 0)
        acc2 = accuracy_score(binary_preds, binary_truth)
        f_score = f1_score(binary_truth, binary_preds, average='weighted')

    return {
        "Has0_acc_2": acc2, "Has0_F1_score": f_score,
        "Non0_acc_2": non_zeros_acc2, "Non0_F1_score": non_zeros_f1_score,
        "Mult_acc_5": mult_a5, "Mult_acc_7": mult_a7, "MAE": mae, "Corr": corr,
        "Mult_acc_3": mult_a3,
    }


def ref_mmsa_sims_regression(test_preds, test_truth):
    """MMSA's __eval_sims_regression, same caveat."""
    def multiclass_acc(y_pred, y_true):
        return np.sum(np.round(y_pred) == np.round(y_true)) / float(len(y_true))

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        test_preds = np.clip(test_preds, a_min=-1., a_max=1.)
        test_truth = np.clip(test_truth, a_min=-1., a_max=1.)

        ms_2 = [-1.01, 0.0, 1.01]
        test_preds_a2 = test_preds.copy()
        test_truth_a2 = test_truth.copy()
        for i in range(2):
            test_preds_a2[np.logical_and(test_preds > ms_2[i], test_preds <= ms_2[i+1])] = i
        for i in range(2):
            test_truth_a2[np.logical_and(test_truth > ms_2[i], test_truth <= ms_2[i+1])] = i

        ms_3 = [-1.01, -0.1, 0.1, 1.01]
        test_preds_a3 = test_preds.copy()
        test_truth_a3 = test_truth.copy()
        for i in range(3):
            test_preds_a3[np.logical_and(test_preds > ms_3[i], test_preds <= ms_3[i+1])] = i
        for i in range(3):
            test_truth_a3[np.logical_and(test_truth > ms_3[i], test_truth <= ms_3[i+1])] = i

        ms_5 = [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
        test_preds_a5 = test_preds.copy()
        test_truth_a5 = test_truth.copy()
        for i in range(5):
            test_preds_a5[np.logical_and(test_preds > ms_5[i], test_preds <= ms_5[i+1])] = i
        for i in range(5):
            test_truth_a5[np.logical_and(test_truth > ms_5[i], test_truth <= ms_5[i+1])] = i

        mae = np.mean(np.absolute(test_preds - test_truth))
        corr = np.corrcoef(test_preds, test_truth)[0][1]
        mult_a2 = multiclass_acc(test_preds_a2, test_truth_a2)
        mult_a3 = multiclass_acc(test_preds_a3, test_truth_a3)
        mult_a5 = multiclass_acc(test_preds_a5, test_truth_a5)
        f_score = f1_score(test_truth_a2, test_preds_a2, average='weighted')

    return {"Mult_acc_2": mult_a2, "Mult_acc_3": mult_a3, "Mult_acc_5": mult_a5,
            "F1_score": f_score, "MAE": mae, "Corr": corr}


def ref_mintrec(total_logits, total_labels):
    """MIntRec: softmax(...).max(dim=1) indices, then sklearn with default arguments."""
    total_probs = torch.nn.functional.softmax(total_logits.detach(), dim=1)
    total_maxprobs, total_preds = total_probs.max(dim=1)
    y_pred = total_preds.cpu().numpy()
    y_true = total_labels.cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "acc": accuracy_score(y_true, y_pred),
            "f1": f1_score(y_true, y_pred, average='macro'),
            "precision": precision_score(y_true, y_pred, average='macro'),
            "recall": recall_score(y_true, y_pred, average='macro'),
        }


def pearson_by_hand(xs, ys):
    """Pearson's r with plain Python floats (a different computation from np.corrcoef)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy)


def assert_same(ours, ref, exact_keys, close_keys=(), rel=0.0, seed=None):
    for key in exact_keys:
        a, b = ours[key], float(ref[key])
        assert type(a) is float, (seed, key)
        assert (a == b) or (math.isnan(a) and math.isnan(b)), (seed, key, a, b)
    for key in close_keys:
        a, b = ours[key], float(ref[key])
        assert type(a) is float, (seed, key)
        assert a == pytest.approx(b, rel=rel, abs=1e-12, nan_ok=True), (seed, key, a, b)


# ======================================================================================
# Names
# ======================================================================================

def test_keys_and_order():
    mosi = ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
            "Mult_acc_5", "Mult_acc_7", "MAE", "Corr")
    sims = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")
    assert METRIC_KEYS["mosi"] == mosi + ("Mult_acc_3",)
    assert MMSA_CSV_KEYS["mosi"] == mosi
    assert METRIC_KEYS["sims"] == MMSA_CSV_KEYS["sims"] == sims
    assert METRIC_KEYS["mintrec"] == ("acc", "f1", "precision", "recall")
    assert metric_keys("MOSEI") == metric_keys("mosi")
    assert metric_keys("simsv2") == sims
    y = np.array([0.5, -0.5, 1.0])
    assert tuple(compute_metrics("mosi", y, y)) == METRIC_KEYS["mosi"]
    assert tuple(compute_metrics("simsv2", y, y)) == sims
    assert tuple(compute_metrics("mintrec", np.eye(3), np.arange(3))) == METRIC_KEYS["mintrec"]


def test_lower_is_better():
    assert lower_is_better("MAE") and lower_is_better("Loss")
    for name in ("Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "Corr", "F1_score",
                 "acc", "f1", "precision", "recall"):
        assert lower_is_better(name) is False
    with pytest.raises(UsageError):
        lower_is_better("Acc7")


def test_unknown_dataset_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        compute_metrics("iemocap", np.zeros(3), np.zeros(3))
    message = str(info.value)
    assert "\n" not in message
    for name in ("mosi", "mosei", "sims", "simsv2", "mintrec"):
        assert name in message


# ======================================================================================
# MOSI / MOSEI, by hand
# ======================================================================================

def test_mosi_by_hand():
    y = [-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.0]
    p = [-2.4, -2.0, 0.3, 0.2, -0.1, 1.6, 3.7, 2.5]
    m = compute_metrics("mosi", np.array(p), np.array(y))

    # Has0 (>= 0): y -> F F F T T T T T, p -> F F T T F T T T: wrong at 2 and 4 -> 6/8.
    assert m["Has0_acc_2"] == 6 / 8
    # class True (support 5): TP 3,5,6,7 = 4, FP 2, FN 4 -> P = R = 4/5, F1 4/5.
    # class False (support 3): TP 0,1 = 2, FP 4, FN 2 -> F1 2/3. Weighted (3*2/3 + 5*4/5)/8.
    assert m["Has0_F1_score"] == pytest.approx((3 * 2 / 3 + 5 * 4 / 5) / 8, rel=1e-15)
    # Non0 drops sample 3 (label 0). y > 0: F F F T T T T, p > 0: F F T F T T T -> 5/7.
    assert m["Non0_acc_2"] == 5 / 7
    # True (support 4): TP 5,6,7 = 3, FP 2, FN 4 -> F1 3/4; False (support 3): F1 2/3.
    assert m["Non0_F1_score"] == pytest.approx((4 * 3 / 4 + 3 * 2 / 3) / 7, rel=1e-15)
    # Acc-7: round half to even. y clip3 -> -2 -2 0 0 0 2 2 3, p clip3 -> -2 -2 0 0 0 2 3 2.
    # (Half away from zero would give y -3 -2 -1 0 1 2 3 3, p[7] 3: 5/8.)
    assert m["Mult_acc_7"] == 6 / 8
    # Acc-5: y clip2 -1.5..: -2 -2 0 0 0 2 2 2, p clip2: -2 -2 0 0 0 2 2 2 -> 8/8 (6/8 half-away).
    assert m["Mult_acc_5"] == 1.0
    # Acc-3: y clip1: -1 -1 0 0 0 1 1 1, p clip1: -1 -1 0 0 0 1 1 1 -> 8/8 (6/8 half-away).
    assert m["Mult_acc_3"] == 1.0
    # MAE on unclipped values: .1 .5 .8 .2 .6 .1 1.2 .5 -> 4.0 / 8.
    assert m["MAE"] == pytest.approx(0.5, rel=1e-14)
    assert m["Corr"] == pytest.approx(pearson_by_hand(p, y), rel=1e-12)
    assert all(type(v) is float for v in m.values())


def test_mosi_zero_label_and_zero_prediction():
    # label 0 counts as positive for Has0 and is dropped for Non0; prediction 0 is positive
    # for Has0 (>= 0) and negative for Non0 (> 0).
    y = np.array([0.0, 1.0, -1.0, 2.0])
    p = np.array([0.0, 0.0, -0.5, 1.0])
    m = compute_metrics("mosei", p, y)
    # Has0: y T T F T, p T T F T -> 4/4.
    assert m["Has0_acc_2"] == 1.0
    # Non0 keeps samples 1..3: y > 0: T F T, p > 0: F F T -> 2/3.
    assert m["Non0_acc_2"] == 2 / 3


def test_mosi_predictions_beyond_clip_range():
    y = np.array([3.0, -3.0, 2.0, -2.0])
    p = np.array([7.0, -9.0, 2.6, -2.4])
    m = compute_metrics("mosi", p, y)
    # Acc-7: p clip3 -> 3 -3 2.6 -2.4 -> round 3 -3 3 -2; y 3 -3 2 -2 -> 3/4.
    assert m["Mult_acc_7"] == 3 / 4
    # Acc-5: p clip2 -> 2 -2 2 -2, y 2 -2 2 -2 -> 4/4.
    assert m["Mult_acc_5"] == 1.0
    # MAE is on unclipped values: 4 + 6 + .6 + .4 = 11 -> 11/4.
    assert m["MAE"] == pytest.approx(11 / 4, rel=1e-14)


def test_mosi_no_nonzero_labels_gives_nan_non0():
    m = compute_metrics("mosi", np.array([0.3, -0.2, 0.0]), np.zeros(3))
    assert math.isnan(m["Non0_acc_2"]) and math.isnan(m["Non0_F1_score"])
    assert m["Has0_acc_2"] == 2 / 3      # y all >= 0; p >= 0: T F T
    assert math.isnan(m["Corr"])          # constant labels


@pytest.mark.parametrize("dataset", ["mosi", "sims"])
def test_constant_prediction_gives_nan_corr_without_warning(dataset):
    y = np.array([-0.9, -0.2, 0.0, 0.4, 0.8])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = compute_metrics(dataset, np.full(5, 0.25), y)
        one = compute_metrics(dataset, np.array([0.5]), np.array([0.5]))
    assert caught == []
    assert math.isnan(m["Corr"]) and math.isnan(one["Corr"])
    assert m["MAE"] == pytest.approx((1.15 + 0.45 + 0.25 + 0.15 + 0.55) / 5, rel=1e-14)


def test_constant_float64_prediction_gives_nan_corr_not_a_rounding_residue():
    # Pearson's r of a constant vector is undefined. MMSA is passed float32 tensors, and n copies of a
    # float32 value sum exactly in float64, so np.corrcoef's mean is the value and r is 0/0 = NaN. A float64
    # constant such as 0.03 does not sum exactly: ten copies give the mean 0.030000000000000006, every
    # deviation is the same -1 ulp, and np.corrcoef answers -2.3e-17 (that MMSA would print as -0.0), not NaN.
    y = np.array([-0.9, -0.2, 0.0, 0.4, 0.8, 1.2, -1.4, 2.0, 0.6, -0.6])
    p = np.full(10, 0.03)
    with np.errstate(all="ignore"):
        assert abs(np.corrcoef(p, y)[0][1]) < 1e-16          # the residue, not NaN
    for dataset in ("mosi", "sims"):
        assert math.isnan(compute_metrics(dataset, p, y)["Corr"])
        assert math.isnan(compute_metrics(dataset, y, p)["Corr"])      # constant labels
    # A float32 constant is NaN in both (MMSA's own code, through the reference, agrees).
    p32, y32 = p.astype(np.float32), y.astype(np.float32)
    assert math.isnan(compute_metrics("mosi", p32, y32)["Corr"])
    assert math.isnan(ref_mmsa_mosei_regression(p32, y32)["Corr"])


# ======================================================================================
# SIMS / SIMSv2, by hand
# ======================================================================================

def test_sims_by_hand():
    y = [-1.0, -0.8, -0.1, 0.0, 0.1, 0.2, 0.7, 1.0]
    p = [-1.5, -0.7, -0.2, 0.05, 0.1, 0.0, 0.8, 2.0]
    m = compute_metrics("sims", np.array(p), np.array(y))
    # p clipped: -1 -.7 -.2 .05 .1 0 .8 1
    # 2 bins (<= 0 | > 0): y 0 0 0 0 1 1 1 1, p 0 0 0 1 1 0 1 1 -> wrong at 3, 5 -> 6/8.
    assert m["Mult_acc_2"] == 6 / 8
    # 3 bins (<= -.1 | <= .1 | rest): y 0 0 0 1 1 2 2 2, p 0 0 0 1 1 1 2 2 -> 7/8.
    assert m["Mult_acc_3"] == 7 / 8
    # 5 bins (<= -.7 | <= -.1 | <= .1 | <= .7 | rest):
    # y 0 0 1 2 2 3 3 4, p 0 0 1 2 2 2 4 4 -> wrong at 5, 6 -> 6/8.
    assert m["Mult_acc_5"] == 6 / 8
    # F1 on 2 bins: class 0 (support 4): TP 0,1,2, FP 5, FN 3 -> 3/4; class 1 likewise 3/4.
    assert m["F1_score"] == pytest.approx(0.75, rel=1e-15)
    # MAE on clipped values: 0 .1 .1 .05 0 .2 .1 0 -> .55 / 8.
    assert m["MAE"] == pytest.approx(0.55 / 8, rel=1e-12)
    pc = [max(-1.0, min(1.0, v)) for v in p]
    assert m["Corr"] == pytest.approx(pearson_by_hand(pc, y), rel=1e-12)


def test_sims_bin_edges_follow_the_input_dtype():
    # The same decimal edge values, predictions in float32 and labels in float64. MMSA compares
    # a float32 array with float32(edge): float32(0.1) is in the neutral bin (<= float32(0.1))
    # and float32(-0.7) in the lowest 5-class bin, exactly like the float64 labels 0.1 and -0.7.
    # float32: 0.1 -> 0.10000000149, -0.7 -> -0.69999998808, 0.7 -> 0.69999998808,
    # -0.1 -> -0.10000000149. Upcast to float64 first, bins would be (3 cls) 2 0 2 0 vs
    # 1 0 2 0 and (5 cls) 3 1 3 1 vs 2 0 3 1: Mult_acc_3 3/4 and Mult_acc_5 2/4 instead of 1.
    edges = [0.1, -0.7, 0.7, -0.1]
    y64 = np.array(edges, dtype=np.float64)
    for p in (np.array(edges, dtype=np.float32), torch.tensor(edges, dtype=torch.float32)):
        m = compute_metrics("sims", p, y64)
        assert m["Mult_acc_3"] == 1.0 and m["Mult_acc_5"] == 1.0 and m["Mult_acc_2"] == 1.0
    # The documented consequence: a float32 value already upcast to float64 is binned as float64.
    p_up = np.array(edges, dtype=np.float32).astype(np.float64)
    m = compute_metrics("sims", p_up, y64)
    assert m["Mult_acc_3"] == 3 / 4 and m["Mult_acc_5"] == 2 / 4
    # And the reference (MMSA's own code) agrees on both.
    for p in (np.array(edges, dtype=np.float32), p_up):
        ours, ref = compute_metrics("sims", p, y64), ref_mmsa_sims_regression(p, y64)
        assert ours["Mult_acc_3"] == ref["Mult_acc_3"] and ours["Mult_acc_5"] == ref["Mult_acc_5"]


def test_sims_zero_is_negative_and_edges_in_float64():
    # float64 values exactly at the edges: x <= edge goes to the lower bin.
    y = np.array([0.0, -0.1, 0.1, -0.7, 0.7, -1.0, 1.0])
    # 2 bins of y: 0 0 1 0 1 0 1. A prediction of 1e-9 is positive, so sample 0 is wrong.
    p = np.array([1e-9, -0.1, 0.1, -0.7, 0.7, -1.0, 1.0])
    m = compute_metrics("sims", p, y)
    assert m["Mult_acc_2"] == 6 / 7
    # 3 bins of y: 1 0 1 0 2 0 2, p: 1 0 1 0 2 0 2 -> all right.
    assert m["Mult_acc_3"] == 1.0
    # 5 bins of y: 2 1 2 0 3 0 4 (0.7 is in (0.1, 0.7]); p the same.
    assert m["Mult_acc_5"] == 1.0


# ======================================================================================
# Tensor inputs and shapes
# ======================================================================================

def test_torch_inputs_shapes_and_dtypes():
    y = [-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.0]
    p = [-2.4, -2.0, 0.3, 0.2, -0.1, 1.6, 3.7, 2.5]
    want = compute_metrics("mosi", np.array(p, dtype=np.float32), np.array(y, dtype=np.float32))
    p_t = torch.tensor(p, dtype=torch.float32).reshape(-1, 1).requires_grad_()
    y_t = torch.tensor(y, dtype=torch.float32)
    got = compute_metrics("mosi", p_t * 1.0, y_t.reshape(-1, 1))
    assert got == want
    got16 = compute_metrics("mosi", torch.tensor(p, dtype=torch.bfloat16), y_t)
    assert set(got16) == set(want)
    with pytest.raises(ValueError):
        compute_metrics("mosi", torch.zeros(8, 3), y_t)          # logits to a regression set
    with pytest.raises(ValueError):
        compute_metrics("sims", torch.zeros(7), y_t)               # length mismatch
    with pytest.raises(ValueError):
        compute_metrics("sims", torch.full((8,), float("nan")), y_t)


# ======================================================================================
# MIntRec, by hand
# ======================================================================================

def test_mintrec_by_hand():
    true = np.array([0, 0, 1, 1, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 4])
    logits = np.eye(6)[pred] * 3.0 - 1.0   # six classes; class 5 appears nowhere
    # per class (P, R, F1): 0 (1, 1/2, 2/3); 1 (2/3, 1, 4/5); 2 (1, 1, 1);
    # 3 never predicted (0, 0, 0); 4 predicted, never true (0, 0, 0). Class 5 is absent from
    # both vectors and so from the macro average: divide by 5, not 6.
    want = {
        "acc": 4 / 6,
        "f1": (2 / 3 + 4 / 5 + 1) / 5,
        "precision": (1 + 2 / 3 + 1) / 5,
        "recall": (1 / 2 + 1 + 1) / 5,
    }
    # A one-column y_pred is ids, as y_true may be; not the logits of one class (argmax 0).
    for p in (logits, torch.tensor(logits, dtype=torch.float32), pred, torch.tensor(pred), pred[:, None]):
        got = compute_metrics("mintrec", p, torch.tensor(true))
        assert got == pytest.approx(want, rel=1e-15)
        assert all(type(v) is float for v in got.values())
    with pytest.raises(ValueError):
        compute_metrics("mintrec", np.array([0.5, 1.0, 2.0, 1.0, 0.0, 3.0]), true)


# ======================================================================================
# Randomized comparison with the references
# ======================================================================================

MOSI_LABELS = np.array([k / 3 for k in range(-9, 10)] + [k / 2 for k in range(-6, 7)] + [-3.0, 3.0])
SIMS_LABELS = np.array([-1.0, -0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0,
                        -0.7, -0.1, 0.1, 0.7])
SIMS_SNAP = np.array([-1.5, -1.01, -1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 1.01, 1.5])


def _random_regression(rng, labels, snap, spread):
    n = int(rng.integers(2, 60))
    y = rng.choice(labels, size=n)
    p = rng.normal(0.0, spread, size=n)
    snapped = rng.random(n) < 0.3                    # many exact ties and edge values
    p[snapped] = rng.choice(snap, size=int(snapped.sum()))
    if rng.random() < 0.05:
        p[:] = p[0]                                  # constant prediction
    dtype = rng.choice([np.float32, np.float64, np.float16] if spread < 1 else [np.float32, np.float64])
    return p.astype(dtype), y.astype(rng.choice([np.float32, np.float64]))


def test_random_mosi_against_mmsa_reference():
    for seed in range(150):
        _check_random_mosi(seed)


def _check_random_mosi(seed):
    rng = np.random.default_rng(seed)
    snap = np.arange(-7, 8) / 2                      # every half-integer tie from -3.5 to 3.5
    p, y = _random_regression(rng, MOSI_LABELS, snap, 2.0)
    if not np.any(y != 0):
        y[0] = 1.0                                   # MMSA itself crashes without nonzero labels
    ours = compute_metrics("mosi", torch.from_numpy(p) if seed % 2 else p, y)
    ref = ref_mmsa_mosei_regression(p, y)
    skip = {"MAE"} | ({"Corr"} if constant_corr(ours, ref, p, y) else set())
    exact = [k for k in METRIC_KEYS["mosi"] if k not in skip]
    if p.dtype == np.float64 and y.dtype == np.float64:
        assert_same(ours, ref, exact + ["MAE"], seed=seed)
    else:                                            # MMSA averages float32 errors in float32
        assert_same(ours, ref, exact, ["MAE"], rel=1e-6, seed=seed)


def constant_corr(ours, ref, p, y) -> bool:
    """Whether p or y is constant, so that Corr is left out of the exact comparison: ours is NaN, the
    reference's np.corrcoef NaN too, or (a float64 constant whose mean is inexact) a residue near 1e-17."""
    if not (np.all(p == p[0]) or np.all(y == y[0])):
        return False
    assert math.isnan(ours["Corr"]) and (math.isnan(ref["Corr"]) or abs(ref["Corr"]) < 1e-15), ref["Corr"]
    return True


def test_random_sims_against_mmsa_reference():
    for seed in range(150):
        _check_random_sims(seed)


def _check_random_sims(seed):
    rng = np.random.default_rng(1000 + seed)
    p, y = _random_regression(rng, SIMS_LABELS, SIMS_SNAP, 0.6)
    ours = compute_metrics("simsv2", torch.from_numpy(p) if seed % 2 else p, y)
    ref = ref_mmsa_sims_regression(p, y)
    skip = {"Corr"} if constant_corr(ours, ref, np.clip(p, -1, 1), np.clip(y, -1, 1)) else set()
    exact = [k for k in METRIC_KEYS["sims"] if k not in skip]
    if p.dtype == np.float64 and y.dtype == np.float64:
        assert_same(ours, ref, exact, seed=seed)
    else:  # MMSA averages float16/32 errors in that dtype; Corr is float64 in np.corrcoef
        exact = [k for k in exact if k != "MAE"]
        rel = 2e-3 if np.float16 in (p.dtype, y.dtype) else 1e-6
        assert_same(ours, ref, exact, ["MAE"], rel=rel, seed=seed)


def test_random_mintrec_against_reference():
    for seed in range(60):
        gen = torch.Generator().manual_seed(seed)
        n = int(torch.randint(1, 40, (1,), generator=gen))
        logits = torch.randn(n, 20, generator=gen)
        labels = torch.randint(0, 20, (n,), generator=gen)
        assert_same(compute_metrics("mintrec", logits, labels), ref_mintrec(logits, labels),
                    METRIC_KEYS["mintrec"], seed=seed)


def test_f1_precision_recall_are_sklearns_to_the_bit():
    # Ours count by hand (no sklearn import at start-up); sklearn's must give the same float64 bits,
    # for binary and multi-class inputs, absent and never-predicted classes, and a single class.
    from mmsa_atsuko.metrics import scores
    rng = np.random.default_rng(7)
    cases = [(np.array([1, 1, 1]), np.array([1, 1, 1])), (np.array([0, 0, 1]), np.array([1, 1, 1])),
             (np.array([True, False]), np.array([False, True]))]
    for _ in range(300):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 9))
        true = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < 0.6, true, rng.integers(0, k + 2, n))       # classes absent from true
        cases.append((true, pred))
        cases.append((true > k // 2, pred > k // 2))
    for true, pred in cases:
        for average in ("weighted", "macro"):
            for ours, theirs in ((scores.f1_score, f1_score), (scores.precision_score, precision_score),
                                 (scores.recall_score, recall_score)):
                expected = theirs(true, pred, average=average, zero_division=0)
                assert ours(true, pred, average=average) == expected, (ours.__name__, average, true, pred)


# ======================================================================================
# Boundary cases, worked out by hand from MMSA's lines (metricsTop.py at thuiar/MMSA a94e65d)
# ======================================================================================

def test_mosi_negative_half_ties_clip_then_round_half_even():
    # MMSA: np.round(np.clip(x, -b, b)) on both vectors, then ==. np.round is half to even, so
    # -0.5 -> -0.0 (== 0.0), -1.5 -> -2, -2.5 -> -2, and -3.5 clips to -3 first. A prediction on
    # a zero label is dropped from Non0 whatever its sign (MMSA drops by label only).
    y = np.array([0.0, -1.0, -2.0, -2.0, -3.0, 3.0, 1.0, -1.0])
    p = np.array([-0.5, -1.5, -1.5, -2.5, -3.5, 3.5, 0.5, -0.4999])
    m = compute_metrics("mosi", p, y)
    # Acc-7: p -> -0 -2 -2 -2 -3 3 0 -0; y -> 0 -1 -2 -2 -3 3 1 -1: right at 0 2 3 4 5 -> 5/8.
    # (Half away from zero: p -> -1 -2 -2 -3 -3 3 1 -0, right at 2 4 5 6 -> 4/8.)
    assert m["Mult_acc_7"] == 5 / 8
    # Acc-5: p clip2 -> -.5 -1.5 -1.5 -2 -2 2 .5 -.4999 -> 0 -2 -2 -2 -2 2 0 0;
    # y clip2 -> 0 -1 -2 -2 -2 2 1 -1: right at 0 2 3 4 5 -> 5/8.
    assert m["Mult_acc_5"] == 5 / 8
    # Acc-3: p clip1 -> 0 -1 -1 -1 -1 1 0 0; y clip1 -> 0 -1 -1 -1 -1 1 1 -1: wrong at 6, 7 -> 6/8.
    assert m["Mult_acc_3"] == 6 / 8
    # Has0 (>= 0): y T F F F F T T F, p F F F F F T T F: wrong at 0 -> 7/8.
    assert m["Has0_acc_2"] == 7 / 8
    # class True: support 3 {0,5,6}, predicted {5,6}: F1 = 2*2/(3+2) = 4/5.
    # class False: support 5 {1,2,3,4,7}, predicted {0,1,2,3,4,7}: F1 = 2*5/(5+6) = 10/11.
    assert m["Has0_F1_score"] == pytest.approx((3 * 4 / 5 + 5 * 10 / 11) / 8, rel=1e-15)
    # Non0 drops sample 0 (label 0, prediction -0.5): y > 0 F F F F T T F, p > 0 the same -> 1.
    assert m["Non0_acc_2"] == 1.0 and m["Non0_F1_score"] == 1.0
    # MAE on the unclipped values: seven errors of .5 and one of .5001.
    assert m["MAE"] == pytest.approx(4.0001 / 8, rel=1e-12)
    assert_same(m, ref_mmsa_mosei_regression(p, y), METRIC_KEYS["mosi"])


def test_mosi_signed_zeros_and_float32_casts():
    # MMSA gets float32 tensors. Values that a float32 cast moves onto a boundary must be judged
    # after the cast: -1e-50 becomes -0.0 (>= 0 for Has0, not > 0 for Non0), 1.4999999999
    # becomes 1.5 (rounds to 2), 0.49999999999 becomes 0.5 (rounds to 0). A label -0.0 == 0 is
    # dropped from Non0 like 0.0.
    y = np.array([-0.0, 0.0, 1.0, -1.0, 2.0, 1.0], dtype=np.float32)
    p = np.array([0.3, -0.3, -0.0, -1e-50, 1.4999999999, 0.49999999999]).astype(np.float32)
    assert p[3] == 0 and np.signbit(p[3]) and p[4] == 1.5 and p[5] == 0.5
    for pred in (p, torch.from_numpy(p)):
        m = compute_metrics("mosei", pred, y)
        # Has0: y T T T F T T, p T F T T T T: wrong at 1 and 3 -> 4/6 (in float64, -1e-50 < 0
        # and sample 3 would be right: 5/6).
        assert m["Has0_acc_2"] == 4 / 6
        # Non0 keeps 2..5: y > 0 T F T T, p > 0 F F T T -> 3/4.
        assert m["Non0_acc_2"] == 3 / 4
        # Acc-7: p -> 0 -0 -0 -0 2 0, y -> -0 0 1 -1 2 1: right at 0 1 4 -> 3/6 (in float64,
        # 1.4999999999 rounds to 1 and sample 4 would be wrong: 2/6).
        assert m["Mult_acc_7"] == 3 / 6
        assert_same(m, ref_mmsa_mosei_regression(p, y), [k for k in METRIC_KEYS["mosi"] if k != "MAE"])


def test_sims_float32_labels_on_edges_after_the_cast_and_signed_zero():
    # MMSA clips to [-1, 1] first, then bins with x > edge[i] and x <= edge[i+1], in float32
    # against float32(edge). A float64 label 0.1 + 1e-12 becomes float32(0.1): neutral (in
    # float64 it would be positive); -0.7 - 1e-12 becomes float32(-0.7): the lowest 5-class bin.
    # -0.0 <= 0.0: negative in 2 classes. The next float32 above float32(0.1) is positive.
    y = np.array([0.1 + 1e-12, -0.7 - 1e-12, -0.0, 1.7, -1.3, 0.1]).astype(np.float32)
    above = np.nextafter(np.float32(0.1), np.float32(1))
    p = np.array([0.1, -0.7, 0.0, 5.0, -1.0, above], dtype=np.float32)
    m = compute_metrics("sims", p, y)
    # clipped y: .1f -.7f -0 1 -1 .1f; clipped p: .1f -.7f 0 1 -1 .1f+ulp
    # 2 bins: y 1 0 0 1 0 1, p the same -> 1, F1 1.
    assert m["Mult_acc_2"] == 1.0 and m["F1_score"] == 1.0
    # 3 bins: y 1 0 1 2 0 1, p 1 0 1 2 0 2 -> 5/6.
    assert m["Mult_acc_3"] == 5 / 6
    # 5 bins: y 2 0 2 4 0 2, p 2 0 2 4 0 3 -> 5/6.
    assert m["Mult_acc_5"] == 5 / 6
    # MAE on clipped values: one float32 ulp of 0.1 (2**-27) over 6 samples.
    assert m["MAE"] == pytest.approx(2.0 ** -27 / 6, rel=1e-9)
    assert_same(m, ref_mmsa_sims_regression(p, y), [k for k in METRIC_KEYS["sims"] if k != "MAE"])


def test_mintrec_tied_logits_take_the_first_class():
    # MIntRec: softmax(logits).max(dim=1) returns the first maximal index; np.argmax too.
    logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 3.0]])
    true = torch.tensor([0, 2, 2])
    m = compute_metrics("mintrec", logits, true)
    # predictions 0 1 0: right at 0 only -> acc 1/3.
    assert m["acc"] == 1 / 3
    assert_same(m, ref_mintrec(logits, true), METRIC_KEYS["mintrec"])


# ======================================================================================
# One float32 step either side of every edge (the trainer passes float32, as MMSA's tensors are)
# ======================================================================================

def _steps(edge):
    """The float32 just below `edge`, `edge` itself, and the float32 just above."""
    e = np.float32(edge)
    return np.nextafter(e, np.float32(-np.inf)), e, np.nextafter(e, np.float32(np.inf))


def _each_step_alone(dataset, label, classes, keys, reference) -> list:
    """Each of `label`'s three steps (`_steps`) predicted alone against it: each accuracy of `keys` is 1 exactly
    where the step's classes (`classes`: the label's, then each step's, worked by hand) agree with the label's.
    Then all three steps at once equal MMSA's own code (`reference`). Returns (step, its metrics) for more checks."""
    label_classes, step_classes = classes
    y = np.array([label], dtype=np.float32)
    seen = []
    for x, want in zip(_steps(label), step_classes):
        m = compute_metrics(dataset, np.array([x]), y)
        assert tuple(m[k] for k in keys) == tuple(float(a == b) for a, b in zip(want, label_classes)), (label, x)
        seen.append((x, m))
    p, ys = np.array(_steps(label)), np.full(3, label, dtype=np.float32)
    assert_same(compute_metrics(dataset, p, ys), reference(p, ys), keys)
    return seen


# Worked by hand from metricsTop.py (a94e65d) lines 85-90 and 138-158: a value's classes as
# (Mult_acc_7 class, Mult_acc_5 class, Mult_acc_3 class) = np.round(np.clip(x, -b, b)), half to even;
# for SIMS (2-, 3-, 5-class bin) with bins (lo, hi]: a value on an edge is in the lower bin.
MOSI_STEPS = {  # label: (its classes, classes of the float32 below, of the label itself, of the float32 above)
    -2.5: ((-2, -2, -1), [(-3, -2, -1), (-2, -2, -1), (-2, -2, -1)]),
    -1.5: ((-2, -2, -1), [(-2, -2, -1), (-2, -2, -1), (-1, -1, -1)]),
    -0.5: ((0, 0, 0), [(-1, -1, -1), (0, 0, 0), (0, 0, 0)]),
    0.5: ((0, 0, 0), [(0, 0, 0), (0, 0, 0), (1, 1, 1)]),
    1.5: ((2, 2, 1), [(1, 1, 1), (2, 2, 1), (2, 2, 1)]),
    2.5: ((2, 2, 1), [(2, 2, 1), (2, 2, 1), (3, 2, 1)]),
    3.5: ((3, 2, 1), [(3, 2, 1), (3, 2, 1), (3, 2, 1)]),
}
SIMS_STEPS = {  # label: (its bins, bins of the float32 below, of the label itself, of the float32 above)
    -1.0: ((0, 0, 0), [(0, 0, 0), (0, 0, 0), (0, 0, 0)]),
    -0.7: ((0, 0, 0), [(0, 0, 0), (0, 0, 0), (0, 0, 1)]),
    -0.1: ((0, 0, 1), [(0, 0, 1), (0, 0, 1), (0, 1, 2)]),
    0.0: ((0, 1, 2), [(0, 1, 2), (0, 1, 2), (1, 1, 2)]),
    0.1: ((1, 1, 2), [(1, 1, 2), (1, 1, 2), (1, 2, 3)]),
    0.7: ((1, 2, 3), [(1, 2, 3), (1, 2, 3), (1, 2, 4)]),
    1.0: ((1, 2, 4), [(1, 2, 4), (1, 2, 4), (1, 2, 4)]),
}


@pytest.mark.parametrize("label", sorted(MOSI_STEPS))
def test_mosi_classes_one_float32_step_either_side_of_each_half(label):
    for x, m in _each_step_alone("mosi", label, MOSI_STEPS[label], ["Mult_acc_7", "Mult_acc_5", "Mult_acc_3"],
                                 ref_mmsa_mosei_regression):
        assert m["Has0_acc_2"] == m["Non0_acc_2"] == float((x >= 0) == (label >= 0)), (label, x)


def test_mosi_signs_either_side_of_zero():
    # Has0 is x >= 0 (zero and -0.0 positive), Non0 drops a zero label and asks x > 0.
    p = np.array([-1e-30, -0.0, 0.0, 1e-30, -1e-30, -0.0, 0.0, 1e-30], dtype=np.float32)
    y = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, -1.0, -1.0], dtype=np.float32)
    m = compute_metrics("mosi", p, y)
    # Has0: y T T T T T T F F, p F T T T F T T T: right at 1 2 3 5 -> 4/8.
    assert m["Has0_acc_2"] == 4 / 8
    # Non0 keeps 4..7: y > 0 T T F F, p > 0 F F F T: right at 6 -> 1/4.
    assert m["Non0_acc_2"] == 1 / 4
    assert_same(m, ref_mmsa_mosei_regression(p, y), ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score"])


@pytest.mark.parametrize("label", sorted(SIMS_STEPS))
def test_sims_bins_one_float32_step_either_side_of_each_edge(label):
    _each_step_alone("sims", label, SIMS_STEPS[label], ["Mult_acc_2", "Mult_acc_3", "Mult_acc_5"],
                     ref_mmsa_sims_regression)


# ======================================================================================
# Where we deliberately differ in the last bits, and what that does to a 4-decimal value
# ======================================================================================

def test_mae_is_the_float64_mean_of_the_float32_errors():
    # MMSA: np.mean(np.absolute(p - y)) of float32 arrays, summed in float32 (metricsTop.py:93, :160).
    # Ours sums the same float32 errors in float64: 0.37034997 + 2 x 1.4e-8 is exact there, and
    # its third is the exact mean correctly rounded. In float32 each 1.4e-8 is under half an ulp of
    # 0.37 and is lost, so MMSA's mean is float32(0.37034997 / 3): 1.2e-8 low, across the 4-decimal
    # tie 0.12345. The exact MAE is 0.12345000048..., 0.1235 to 4 places; MMSA prints 0.1234.
    big, small = np.float32(0.37034997), np.float32(1.4e-8)
    p, y = np.array([big, small, small]), np.zeros(3, dtype=np.float32)
    exact = (Fraction(float(big)) + 2 * Fraction(float(small))) / 3
    assert round(exact, 4) == Fraction(1235, 10000)
    for dataset in ("mosi", "sims"):
        m = compute_metrics(dataset, p, y)
        assert m["MAE"] == float(exact)
        assert round(np.float64(m["MAE"]), 4) == 0.1235          # as results/mmsa_csv.py rounds a seed
    mmsa = np.mean(np.absolute(p - y)).astype(np.float64)          # metricsTop.py:93, on float32 arrays
    assert mmsa == float(np.float32(big) / np.float32(3)) and round(mmsa, 4) == 0.1234


def sklearn_024_weighted_f1(true, pred):
    """scikit-learn 0.24.2's weighted F1 (MIntRec pins 0.24.2, MMSA asks >= 0.24.2; sklearn kept this
    formula until 1.4, scikit-learn#27577): P = tp/pred, R = tp/true, F = 2 * P * R / (P + R), then
    np.average by support."""
    labels = np.union1d(true, pred)
    tp = np.array([np.sum((true == c) & (pred == c)) for c in labels], dtype=np.float64)
    p_sum = np.array([np.sum(pred == c) for c in labels], dtype=np.float64)
    t_sum = np.array([np.sum(true == c) for c in labels], dtype=np.float64)
    with np.errstate(all="ignore"):
        precision, recall = np.nan_to_num(tp / p_sum), np.nan_to_num(tp / t_sum)
    denom = 1.0 * precision + recall
    denom[denom == 0.0] = 1
    return np.average((1 + 1.0) * precision * recall / denom, weights=t_sum)


def test_f1_is_2tp_over_true_plus_pred_as_in_sklearn_14_even_on_a_4_decimal_tie():
    # 12 samples, 3 labels >= 0: one found (tp 1), two missed, four false alarms, five true negatives.
    y = np.array([1.0, 1, 1] + [-1.0] * 9)
    p = np.array([1.0, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1, -1])
    # class True: 2*1/(3+5) = 1/4; class False: 2*5/(9+7) = 5/8; weighted (3/4 + 9*5/8)/12 = 17/32,
    # exactly 0.53125: a tie at the 5th decimal, which NumPy's (and Python's) half-to-even makes 0.5312.
    m = compute_metrics("mosi", p, y)
    assert m["Has0_F1_score"] == m["Non0_F1_score"] == 0.53125
    assert round(np.float64(m["Has0_F1_score"]), 4) == 0.5312
    # sklearn < 1.4 divides 1/5 and 1/3 first and lands one ulp above the tie: MMSA run with it printed 0.5313.
    old = sklearn_024_weighted_f1(y >= 0, p >= 0)
    assert old == 0.53125 + 2.0 ** -53 and round(old, 4) == 0.5313


def test_the_public_names_of_the_single_metrics_module_still_import_from_the_package():
    """`from mmsa_atsuko.metrics import metric_keys` worked before metrics.py became a package (37cb3ff) and failed
    after it: a user's --models file may import any public name that module had, which are these."""
    import mmsa_atsuko.metrics as package
    from mmsa_atsuko.config import METRIC_KEYS
    from mmsa_atsuko.metrics import names, scores

    public_then = {"compute_metrics", "metric_family", "metric_keys", "lower_is_better", "MMSA_CSV_KEYS",
                   "METRIC_KEYS", "f1_score", "precision_score", "recall_score"}
    assert set(package.__all__) == public_then
    assert package.metric_keys is names.metric_keys and package.f1_score is scores.f1_score
    assert package.METRIC_KEYS is METRIC_KEYS
    assert "Corr" in package.metric_keys("mosi") and package.lower_is_better("MAE")
    assert package.metric_family("mosei") == "mosi"
