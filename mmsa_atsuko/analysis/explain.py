"""Inside a trained Atsuko run: its spectra, band and modality weights, and the MCM target (Atsuko only).

- `explain_tables`: Atsuko's interpretability outputs (docs/atsuko.md §13) as tables.
- `modality_weights_table`: the router's modality weights on every test sample.
- `find_partner_without_mcm`: the run that differs from this one by the MCM alone.
- `explain_run`: both, with the progress of their passes over test splits.

One layout for the modality weights, predictions_test.csv's: wide, one row per sample (per sample and run where
two runs are compared), the sample in `id`, a modality's weight in `modality_weight_L`, `_V`, `_A` (L is the text,
as in the model and docs/atsuko.md), so the tables join on `id`. Every row of every table ends with `run_id`,
`data`, `code` and `condition` (`runs.trace_columns`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import load_dataset
from ..data.conditions import condition_of
from ..errors import DataError, UsageError
from ..models.atsuko import ATSUKO_FAMILY
from ..models.atsuko.family import require_atsuko_record
from ..models.atsuko.modalities import BATCH_KEY, MODALITIES, MODALITY_WEIGHT_COLUMNS
from ..progress import Progress, to_stderr
from ..results import ok_records, read_records
from ..training.trainer import SplitEval, SplitOutputs
from .runs import LoadedRun, _cat, _config_apart_from, forward_split, trace_columns


# Modality order of the model outputs (L, V, A) and how figures and CSVs name them: Atsuko's own.
MODALITY_CODES = MODALITIES
MODALITY_NAMES = BATCH_KEY
# A modality's name ("text") -> its column: its weight w, as predictions_test.csv names it, and its MCM target q.
WEIGHT_COLUMN_OF = {MODALITY_NAMES[m]: MODALITY_WEIGHT_COLUMNS[m] for m in MODALITY_CODES}
TARGET_COLUMN_OF = {MODALITY_NAMES[m]: f"q_{m}" for m in MODALITY_CODES}


def require_atsuko(run: LoadedRun, what: str = "explain") -> None:
    require_atsuko_record(run.record, what)


def modality_weights_table(run: LoadedRun, feature_path=None, on_batch=None) -> pd.DataFrame:
    """`id, label, pred, modality_weight_L, _V, _A, run_id, data, code, condition`: the run's prediction and modality
    weights on every test sample of its own data (predictions_test.csv's numbers, and its columns but the last), or of
    the feature file `feature_path` (same dataset and sequence lengths as the run's; `data` is then that file's id)."""
    return _weights_on(run, *_weights_test_split(run, feature_path), on_batch)


def _weights_test_split(run: LoadedRun, feature_path=None) -> tuple:
    """(the test split modality_weights_table reads, its data id): the run's own, or `feature_path`'s."""
    require_atsuko(run)
    if feature_path is None:
        return run.data.test, run.data.spec.source
    other = load_dataset(run.record["dataset"], aligned=bool(run.record["aligned"]), feature_path=feature_path,
                         pretrained=run.record["config"].get("pretrained"))
    return other.test, other.spec.source


def _weights_on(run: LoadedRun, test, data: str, on_batch=None, outputs: list[dict] | None = None) -> pd.DataFrame:
    """The weights table of `test` from `outputs`, `forward_split`'s over it (explain's tables pass, when they read
    the same split), else from a pass of its own."""
    from ..api.predictions_csv import predictions_frame
    if outputs is None:
        outputs = forward_split(run, test, on_batch=on_batch)
    table = predictions_frame(_as_evaluated(outputs, test), run.data.spec.task)
    table = table[["id", "label", "pred", *MODALITY_WEIGHT_COLUMNS.values()]]
    return table.assign(**trace_columns(run.record, data))


def _as_evaluated(outputs: list[dict], split) -> SplitEval:
    """`forward_split`'s outputs as the trainer's `evaluate(collect=True)` gives them (`SplitOutputs`, its per-sample
    fields; no metrics), the input of `predictions_frame`, which wrote predictions_test.csv. The same forward in eval
    mode under no_grad on the same batches (eval_batch_size, file order) in fp32 (evaluate's default, which explain
    used), so the same numbers to the bit; the test holds them to predictions_test.csv's text."""
    gathered = SplitOutputs(export=True)
    for out in outputs:
        gathered.add(out, out["batch"])
    return gathered.split_eval({}, split.ids)


def explain_run(run: LoadedRun, samples: int = 10, partner: LoadedRun | None = None, feature_path=None,
                progress: bool = True) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """(`explain_tables`, `modality_weights_table`) of `run`, every number computed before a file is written.

    One pass over the run's test split feeds both (`_as_evaluated`: the weights are its forward's, the trainer's
    `evaluate`'s numbers to the bit); the partner's test split is a pass of its own, and `feature_path`'s too.
    Each took 28 s at SIMS's real size with the default config on one thread of a busy CPU, and MOSEI's test
    split is ten times SIMS's. They count their batches: tqdm's bar on a terminal, elsewhere (a log file, a pipe)
    a line on stderr each tenth of them, as robustness's. A bad `feature_path` fails before the first pass."""
    _chosen_count(samples, run.data.test)                     # a bad --samples fails before the first pass too
    weights_test, weights_data = _weights_test_split(run, feature_path)
    passes = [(run, run.data.test), *([(partner, partner.data.test)] if partner is not None else []),
              *([(run, weights_test)] if feature_path is not None else [])]
    batches = sum(math.ceil(len(split) / of.eval_batch_size) for of, split in passes)
    meter = Progress(batches, to_stderr, what="test batches", unit="batch", desc=f"explain {run.run_id}",
                     quiet=not progress)
    outputs = _tables_pass(run, on_batch=meter.update)
    tables = explain_tables(run, samples, partner, on_batch=meter.update, outputs=outputs)
    weights = _weights_on(run, weights_test, weights_data, on_batch=meter.update,
                          outputs=outputs if feature_path is None else None)
    meter.close()
    return tables, weights


def find_partner_without_mcm(results, run: LoadedRun, records: list[dict] | None = None) -> str | None:
    """The latest run of the same data, protocol condition and seed whose config is this run's with the MCM switched
    off: every other key equal, so the two sets of weights differ by the MCM alone. `records`: `results`' store, read
    already."""
    config = _config_apart_from(run.record["config"], "use_mcm", "use_distill")
    records = read_records(Path(results)) if records is None else records
    partners = [r for r in ok_records(records)
                if r.get("model") in ATSUKO_FAMILY
                and r["dataset"] == run.record["dataset"] and bool(r["aligned"]) == bool(run.record["aligned"])
                and r["data"] == run.record["data"] and r["seed"] == run.record["seed"]
                and condition_of(r) == condition_of(run.record)          # the same masked data
                and not r["config"].get("use_mcm")
                and _config_apart_from(r["config"], "use_mcm", "use_distill") == config]
    return partners[-1]["run_id"] if partners else None


def _tables_pass(run: LoadedRun, on_batch=None) -> list[dict]:
    """`forward_split` over the run's test split with what `explain_tables` reads: the spectra (SBN runs) and the
    loss terms' q (MCM runs)."""
    require_atsuko(run)
    return forward_split(run, run.data.test, return_spectral=run.model.use_sbn, with_loss=run.model.use_mcm,
                         on_batch=on_batch)


def explain_tables(run: LoadedRun, samples: int = 10, partner: LoadedRun | None = None,
                   on_batch=None, outputs: list[dict] | None = None) -> dict[str, pd.DataFrame]:
    """Atsuko's interpretability outputs (docs/atsuko.md §13) as tables, one per figure.

    Keys: spectral_energy, band_components (first chosen sample), band_weights (test mean and
    the chosen samples), modality_weights_mcm (chosen samples, with and without the MCM when
    `partner` is given; each row names its run), mcm_target (q next to w; MCM runs only), modality_weight_distribution
    (every test sample). The chosen samples are the first `samples` test samples in file order. `on_batch()` is
    called after each batch of its passes over the test split (the run's, unless `outputs` are given: that pass's,
    `_tables_pass`; then the partner's).
    """
    require_atsuko(run)
    model, test = run.model, run.data.test
    samples = _chosen_count(samples, test)
    if outputs is None:
        outputs = _tables_pass(run, on_batch)
    ids = list(test.ids)
    weights = _cat(outputs, "modality_weights")                       # (N, 3), L V A
    tables = {}

    tables["modality_weight_distribution"] = pd.DataFrame({"id": ids, **_weight_columns(weights)})

    # Each row names the run it comes from: the "without MCM" rows are another run's (the partner's).
    variant = "with MCM" if model.use_mcm else "without MCM"
    rows = [_weight_row(ids[n], variant, weights[n], run.run_id) for n in range(samples)]
    if partner is not None:
        partner_weights = _cat(forward_split(partner, partner.data.test, on_batch=on_batch), "modality_weights")
        if list(partner.data.test.ids) != ids:
            raise DataError(f"run {partner.run_id} was tested on other samples than {run.run_id}")
        rows += [_weight_row(ids[n], "without MCM", partner_weights[n], partner.run_id) for n in range(samples)]
    tables["modality_weights_mcm"] = pd.DataFrame(rows)     # modality_weights.csv is every test sample (cli explain)

    if model.use_mcm:          # q beside w, one row per sample
        q = _cat(outputs, "loss_terms", "q")
        tables["mcm_target"] = pd.DataFrame({"id": ids[:samples], **_weight_columns(q[:samples], TARGET_COLUMN_OF),
                                             **_weight_columns(weights[:samples])})

    if model.use_sbn:
        num_bands = model.num_bands
        band_rows = []
        for m in MODALITY_CODES:
            band_weights = _cat(outputs, "band_weights", m)              # (N, K)
            band_rows.append({"id": "test mean", "modality": MODALITY_NAMES[m],
                              **{f"band_{k}": band_weights[:, k].mean() for k in range(num_bands)}})
            band_rows += [{"id": ids[n], "modality": MODALITY_NAMES[m],
                           **{f"band_{k}": band_weights[n, k] for k in range(num_bands)}} for n in range(samples)]
        tables["band_weights"] = pd.DataFrame(band_rows)

        energy_rows, component_rows = [], []
        first = outputs[0]
        for m in MODALITY_CODES:
            block = model.sbn[m].spectrum
            bounds = block.band_bounds.tolist()
            band_of = np.searchsorted(bounds, np.arange(block.length), side="right") - 1
            for j in range(block.length):
                energy_rows.append({"modality": MODALITY_NAMES[m], "frequency_index": j,
                                    "eigenvalue": float(block.eigvals[j]), "band": int(band_of[j]),
                                    "mean_energy": float(block.energy_mean[j])})
            # The sample's band signals X_k (K, T', d) on its most energetic feature channel.
            bands = first["band_components"][m][0]
            signal = first["features"][m][0]                              # X (T', d)
            channel = int(signal.pow(2).sum(0).argmax())
            for t in range(signal.shape[0]):
                component_rows.append({"id": ids[0], "modality": MODALITY_NAMES[m], "channel": channel,
                                       "time_step": t, "signal": float(signal[t, channel]),
                                       **{f"band_{k}": float(bands[k, t, channel]) for k in range(num_bands)}})
        tables["spectral_energy"] = pd.DataFrame(energy_rows)
        tables["band_components"] = pd.DataFrame(component_rows)
    # Every row names its run, data and code; the "without MCM" rows name the partner's own.
    records = {r.run_id: r.record for r in (run, partner) if r is not None}
    for name, table in tables.items():
        run_ids = table.pop("run_id") if "run_id" in table else [run.run_id] * len(table)
        trace = pd.DataFrame([trace_columns(records[run_id]) for run_id in run_ids], index=table.index)
        tables[name] = pd.concat([table, trace], axis=1)
    return tables


def _chosen_count(samples: int, test) -> int:
    """How many samples the per-sample tables show: `samples`, at most the test split's size."""
    if samples < 1:
        raise UsageError("--samples must be at least 1")
    return min(samples, len(test))


def _weight_columns(values, columns=WEIGHT_COLUMN_OF) -> dict:
    """(N, 3) values per modality in the model's order L, V, A -> their columns (default: the weights')."""
    return {columns[MODALITY_NAMES[m]]: values[:, i] for i, m in enumerate(MODALITY_CODES)}


def _weight_row(sample_id, variant: str, values, run_id: str) -> dict:
    return {"id": sample_id, "variant": variant, "run_id": run_id,
            **{WEIGHT_COLUMN_OF[MODALITY_NAMES[m]]: float(values[i]) for i, m in enumerate(MODALITY_CODES)}}
