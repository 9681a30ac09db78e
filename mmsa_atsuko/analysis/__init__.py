"""Analyses of trained runs: load a run's checkpoint, look inside Atsuko, re-test under corruptions.

The numbers computed here are what `plots/` draws and what the CSVs next to each figure hold
(issue 7). Nothing here imports matplotlib. Import every name from `mmsa_atsuko.analysis`; the
modules below are where each lives:

- `runs`: `load_run`, a run's record, config, dataset and model with its best checkpoint loaded
  (`LoadedRun`, `find_record`); `forward_split` and `predictions`, its outputs over a split;
  `trace_columns`, the run id, data id, code and condition every analysis CSV row carries; `condition_label`;
- `explain`: `explain_tables`, Atsuko's interpretability outputs (docs/atsuko.md §13) as tables;
  `modality_weights_table`; `explain_run`, both with their progress; `find_partner_without_mcm`, `require_atsuko`,
  `MODALITY_CODES`,
  `WEIGHT_COLUMN_OF` (a modality's weight column, as predictions_test.csv names it), `TARGET_COLUMN_OF`;
- `robustness`: `robustness_table`, test metrics under Gaussian noise, a zeroed modality and
  frame drops; `corrupt_split`, `modalities_present`, `NOISE_SNR_DB`, `FRAME_DROP_RATES`;
- `ablation`: `tsne_table`, t-SNE of the fused test features of the Atsuko ablation runs;
  `ablation_runs`, `variants_elsewhere`, `variant_name`, `VARIANT_ORDER`, `SWITCHES`, `sentiment_class`;
- `sensitivity`: `sensitivity_table`, key metric, mean and std over seeds, against one
  hyperparameter's value; `SENSITIVITY_PARAMS`, `PARAM_LABELS`.

`runs` imports nothing of the others; each of the others imports `runs` alone.
"""
from .ablation import (SWITCHES, VARIANT_ORDER, ablation_runs, sentiment_class, tsne_table, variant_name,
                       variants_elsewhere)
from .explain import (MODALITY_CODES, MODALITY_NAMES, TARGET_COLUMN_OF, WEIGHT_COLUMN_OF, explain_tables,
                      explain_run, find_partner_without_mcm, modality_weights_table, require_atsuko)
from .robustness import FRAME_DROP_RATES, NOISE_SNR_DB, corrupt_split, modalities_present, robustness_table
from .runs import LoadedRun, condition_label, find_record, forward_split, load_run, predictions, trace_columns
from .sensitivity import PARAM_LABELS, SENSITIVITY_PARAMS, sensitivity_table

__all__ = [
    "SWITCHES", "VARIANT_ORDER", "ablation_runs", "sentiment_class", "tsne_table", "variant_name",
    "variants_elsewhere",
    "MODALITY_CODES", "MODALITY_NAMES", "TARGET_COLUMN_OF", "WEIGHT_COLUMN_OF", "explain_tables",
    "explain_run", "find_partner_without_mcm", "modality_weights_table", "require_atsuko",
    "FRAME_DROP_RATES", "NOISE_SNR_DB", "corrupt_split", "modalities_present", "robustness_table",
    "LoadedRun", "condition_label", "find_record", "forward_split", "load_run", "predictions", "trace_columns",
    "PARAM_LABELS", "SENSITIVITY_PARAMS", "sensitivity_table",
]
