"""Evaluation metrics, one module per task family, behind one entry point.

    compute_metrics("mosi", y_pred, y_true) -> {"Has0_acc_2": ..., "Corr": ...}

The definitions follow MMSA (`thuiar/MMSA:src/MMSA/utils/metricsTop.py`) for MOSI, MOSEI,
CH-SIMS and CH-SIMS v2, and MIntRec (`thuiar/MIntRec:utils/metrics.py`) for MIntRec, so that
our numbers compare with published tables. Two deliberate differences from those codes:

* values are returned at full precision (MMSA rounds every value to 4 decimals; the results
  store keeps full precision, the MMSA CSV rounds as MMSA does, `results/mmsa_csv.py`, and the
  leaderboard rounds for display);
* degenerate inputs give NaN instead of a crash or a RuntimeWarning: constant predictions
  or labels give NaN `Corr` (MMSA's too for its float32 inputs; for a float64 constant whose
  mean is inexact np.corrcoef would return a +-1e-17 residue), and a split without nonzero
  labels gives NaN `Non0_*` (MMSA raises an IndexError there).

Inputs may be NumPy arrays or torch tensors (any device, any float dtype). Everything is
computed in float64, which is exact for the accuracies and F1 (rounding, clipping and
comparing a float32 number is the same in float64) and for `Corr` (`np.corrcoef` works in
float64 anyway). Only the CH-SIMS class bins depend on the input dtype; see `sims._sims_bins`.
For float32 inputs `MAE` is the float64 mean, while MMSA averages in float32: the two differ
by float32 round-off (about 1e-7), never in a reported 4th decimal except by a rounding tie.

F1, precision and recall are sklearn's, bit for bit (`scores.py` says how and why they are computed here).
Every metric against its source, line by line: docs/metrics.md.

The modules: `dispatch` (the entry point and its input checks), `names` (each family's keys, which way each
metric is better), `scores` (F1, precision, recall; MAE and Corr), `mosi` (MOSI, MOSEI), `sims` (CH-SIMS, v2),
`mintrec` (MIntRec). The toolkit's modules import each name from its own module. The package keeps every public name
the single module `metrics.py` had before the split (`compute_metrics`, the one the README shows, and the names,
scores and key tables below), so a user's code (a `--models` file) importing them from `mmsa_atsuko.metrics` goes on
working.
"""
from ..config import METRIC_KEYS
from .dispatch import compute_metrics
from .names import MMSA_CSV_KEYS, lower_is_better, metric_family, metric_keys
from .scores import f1_score, precision_score, recall_score

__all__ = ["METRIC_KEYS", "MMSA_CSV_KEYS", "compute_metrics", "f1_score", "lower_is_better", "metric_family",
           "metric_keys", "precision_score", "recall_score"]
