"""The Python API: `run(models, datasets, seeds, ...)`, from files to run records (`mmsa_atsuko.run` calls it).

Its pieces, each imported from its own module: `jobs` (a (model, dataset) pair resolved and loaded, `prepare_job`,
and a run's identity), `one_run` (one run's protocol, `run_one`, and its training, `train_one`), `predictions_csv`
(predictions_test.csv) and `pipeline` (`run`). `prepare_job` and `train_one` are the steps a sweep runs too, in its
driver or workers.

The package keeps every public name the single module `api.py` had before the split (`resolve_config`, `prepare_job`,
`train_one`, ... and the names it re-exported but `SYNTHETIC_CACHE_ENV`, a second name for
`mmsa_atsuko.cache.CACHE_ENV`), so a user's code importing them from `mmsa_atsuko.api` goes on working; the toolkit's
modules import each from its own module. Importing `mmsa_atsuko` does not import this package (`mmsa_atsuko.run`
imports it when called), so these cost nothing there.
"""
from ..run_folders import SAVE_CHECKPOINT, unfinished_runs, work_folders
from ..training.trainer_config import resolve_config
from .jobs import Job, condition_label, job_identity, prepare_job
from .one_run import new_run_id, run_one, train_one
from .pipeline import run
from .predictions_csv import PREDICTIONS_FLOAT_FORMAT, predictions_frame, write_predictions

__all__ = ["Job", "PREDICTIONS_FLOAT_FORMAT", "SAVE_CHECKPOINT", "condition_label", "job_identity", "new_run_id",
           "predictions_frame", "prepare_job", "resolve_config", "run", "run_one", "train_one", "unfinished_runs",
           "work_folders", "write_predictions"]
