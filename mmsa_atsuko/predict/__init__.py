"""`run.py predict`: a trained run's predictions on new features or new videos.

One module a step, in the order predict takes them:

- `checkpoint`: the run folder (`--run ID` or `--checkpoint DIR`), its model.json checked and the model
  built from best.pt (`load_checkpoint`), and a warning per changed file of a model of your own.
- `output`: `--out` checked before any work, and what predict writes there (predictions.csv, and
  predictions.json: which run, feature file and code made it).
- `videos`: with `--videos`, the videos extracted into `<out>/features.pkl` with the checkpoint's
  extractor settings first (resumable, like `run.py extract`).
- `features`: the feature file checked against the checkpoint, and the modalities the run never saw taken
  away as in training.
- `on_features`: the predictions themselves, every split the file holds or the one `--split` names.

The Python API (README): `predict_file` returns the path of predictions.csv, `extract_for` that of
features.pkl made from videos with a run's settings.
"""
from .on_features import predict_file
from .videos import extract_for

__all__ = ["extract_for", "predict_file"]
