"""The names of the metrics: each dataset's family and the keys it reports, and which way each metric is better."""
from __future__ import annotations

from ..config import METRIC_KEYS, dataset_facts
from ..errors import UsageError

# Every key compute_metrics returns, per family, in MMSA's order, is `config.METRIC_KEYS` (imported
# above): it sits beside the datasets table, which checks a dataset's metric set and headline against it.
# The keys MMSA itself returns (and so writes to its CSVs), for an MMSA-compatible writer.
# MIntRec is not an MMSA dataset and has no entry.
MMSA_CSV_KEYS: dict[str, tuple[str, ...]] = {
    "mosi": METRIC_KEYS["mosi"][:8],
    "sims": METRIC_KEYS["sims"],
}

_LOWER_IS_BETTER = frozenset({"MAE", "Loss", "loss"})
_HIGHER_IS_BETTER = frozenset(k for keys in METRIC_KEYS.values() for k in keys) - _LOWER_IS_BETTER


def metric_family(dataset: str) -> str:
    """The metric set of a dataset (configs/datasets.yaml `metrics`): 'mosi' for MOSI and MOSEI,
    'sims' for CH-SIMS and v2, 'mintrec'. Case-insensitive, as MMSA's `getMetics(datasetName.upper())`."""
    return dataset_facts(dataset)["metrics"]


def metric_keys(dataset: str) -> tuple[str, ...]:
    """The keys `compute_metrics(dataset, ...)` returns, in order."""
    return METRIC_KEYS[metric_family(dataset)]


def table_order(metrics) -> tuple[str, ...]:
    """`metrics` in the order a table prints them: the metric set's (MMSA's), but MOSI's `Mult_acc_3`, which MMSA
    computes without returning it (so `METRIC_KEYS` has it last, after Corr), goes among the multi-class accuracies,
    before `Mult_acc_5`, as in SIMS's order."""
    metrics = list(metrics)
    if {"Mult_acc_3", "Mult_acc_5"} <= set(metrics) and metrics.index("Mult_acc_3") > metrics.index("Mult_acc_5"):
        metrics.remove("Mult_acc_3")
        metrics.insert(metrics.index("Mult_acc_5"), "Mult_acc_3")
    return tuple(metrics)


def lower_is_better(metric_name: str) -> bool:
    """True for MAE and Loss; False for accuracies, F1, Corr, precision and recall."""
    if metric_name in _LOWER_IS_BETTER:
        return True
    if metric_name in _HIGHER_IS_BETTER:
        return False
    known = ", ".join(sorted(_LOWER_IS_BETTER | _HIGHER_IS_BETTER))
    raise UsageError(f"unknown metric {metric_name!r}; known metrics: {known}")
