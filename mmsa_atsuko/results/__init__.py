"""The results store and the one owner of run records.

A run record is built here (`ok_record`, `failed_record`), identified here (`identity`:
model, dataset, aligned flag, seed, config hash, data id) and chosen here (`latest_by_identity`,
`ok_records`): `run`, `sweep` and the tables all see runs the same way. Import every name from
`mmsa_atsuko.results`; the modules below are where each lives:

- `folder`: the results folder's layout (runs.jsonl, runs/<run_id>, analysis/) and writing only
  inside it, never through a symbolic link;
- `record`: building a record and its identity;
- `chosen_records`: which record stands for a run, the checks on what tables read, the headline metric;
- `store`: appending to `runs.jsonl` (locking, cutting off a killed writer's fragment: `mend_last_line`, which
  `mmsa_csv` uses too), keeping a record the store cannot take and recovering it;
- `store_lines`: reading `runs.jsonl`, its bounds, and which of its lines hold a run (`not_a_run`: the forms and
  types of the fields the toolkit writes);
- `over_seeds`: a metric's mean ± sample std over seeds (`Cell`), as the leaderboard and the analyses read it;
- `mmsa_csv`: MMSA-compatible aggregate rows in `<out>/normal/<dataset>.csv`;
- `how_ran`: how a row's seeds ran, as the MMSA CSV's and the leaderboard CSV's `run_*` cells both say it;
- `writers`: one sweep or any number of in-process run.py's training into a folder at once, never both;
- `skip_rule`: a run recorded ok is skipped, and what it ran with that the request does not ask is said (run.py in
  process and a sweep's plan alike).
"""
from ..atomic import NOFOLLOW, open_new      # a write that never follows a link: one home, below data/
from .folder import (ANALYSIS_DIR, RECORD_FILE, RUN_ID, RUNS_FILE, STORE_ENTRIES, SWEEP_LOCK, analysis_dir,
                     check_output_folder, check_readable, check_run_id, checkpoint_run, inside,
                     refuse_a_file_as_results, relative_run_dir, run_path, show)
from .mmsa_csv import (append_mmsa_csv, append_mmsa_rows, check_mmsa_csv, data_name_suffix, mmsa_cell,
                       mmsa_csv_path, mmsa_row_key, mmsa_seed_value)
from .over_seeds import Cell, StoredCell
from .how_ran import how_ran_cells
from .record import (IDENTITY_FIELDS, code_version, code_versions, device_of, failed_record, identity, kernels_of,
                     model_selection, no_weights, ok_record, precision_of, ran_at_other_precision,
                     ran_with_other_kernels, run_identity, run_label, run_phrase)
from .chosen_records import (check_ok_record, config_labels, find_record, headline_metric, last_ok_record,
                             latest_by_identity, ok_records)
from .store import RecordNotAppended, append_or_keep, append_record, json_safe, recover
from .store_lines import MAX_CONFIG_DEPTH, MAX_KEPT_RECORD, read_records, run_ids
from .skip_rule import Apart, apart_from_request, recorded_ok, serves, skip_reason
from .writers import (LOOK_WAIT_S, RUN_PY_MARK, RunPyMark, check_claim_free_to_take, check_no_run_py,
                      remove_free_locks, run_py_mark, unopenable_note, unremovable_note)

__all__ = [
    "ANALYSIS_DIR", "NOFOLLOW", "RECORD_FILE", "RUN_ID", "RUNS_FILE", "STORE_ENTRIES", "SWEEP_LOCK",
    "analysis_dir",
    "check_output_folder", "check_readable", "check_run_id", "checkpoint_run", "inside", "open_new",
    "refuse_a_file_as_results", "relative_run_dir",
    "run_path", "show",
    "append_mmsa_csv", "append_mmsa_rows", "check_mmsa_csv", "data_name_suffix", "mmsa_cell", "mmsa_csv_path",
    "mmsa_row_key", "mmsa_seed_value",
    "Cell", "StoredCell",
    "how_ran_cells",
    "IDENTITY_FIELDS", "code_version", "code_versions", "device_of", "failed_record", "identity", "kernels_of",
    "model_selection", "no_weights", "ok_record", "precision_of", "ran_at_other_precision", "ran_with_other_kernels",
    "run_identity", "run_label", "run_phrase",
    "MAX_CONFIG_DEPTH", "check_ok_record", "config_labels", "find_record", "headline_metric", "last_ok_record",
    "latest_by_identity",
    "ok_records",
    "MAX_KEPT_RECORD", "RecordNotAppended", "append_or_keep", "append_record", "json_safe", "read_records",
    "recover", "run_ids",
    "LOOK_WAIT_S", "RUN_PY_MARK", "RunPyMark", "check_claim_free_to_take", "check_no_run_py", "remove_free_locks",
    "run_py_mark", "unopenable_note", "unremovable_note",
    "Apart", "apart_from_request", "recorded_ok", "serves", "skip_reason",
]
