"""The Python API: `run(models, datasets, seeds, ...)`, from files to run records (`mmsa_atsuko.run` calls it).

Its pieces, each imported from its own module: `jobs` (a (model, dataset) pair resolved and loaded, `prepare_job`,
and a run's identity), `one_run` (one run's protocol, `run_one`, and its training, `train_one`), `predictions_csv`
(predictions_test.csv) and `pipeline` (`run`). `prepare_job` and `train_one` are the steps a sweep runs too, in its
driver or workers.
"""
from .pipeline import run

__all__ = ["run"]
