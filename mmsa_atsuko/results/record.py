"""A run record: how it is built and what identifies it.

A run record is built here (`ok_record`, `failed_record`) and identified here (`identity`:
model, dataset, aligned flag, seed, config hash, data id), so `run`, `sweep` and the tables all
see runs the same way. A store line that is no run of this toolkit's (`store_lines.not_a_run`: no run id or
identity, a data id, config hash, preset or condition of no form the toolkit writes, or a field of no type it writes)
is skipped by the store's reader, with a warning; `identity` is a one-line DataError for a record built elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime
from pathlib import Path

from ..config import ADDED_KEYS, config_hash
from ..data.conditions import PLAIN, condition_of, label_suffix
from ..data.stamp import is_synthetic
from ..errors import DataError
from ..user_models.source import recorded_files
from ..version import __version__
from .folder import RUNS_FILE, relative_run_dir, show


def ok_record(run_id: str, *, model: str, seed: int, preset, config: dict, spec, result, device,
              started: datetime, wall_time_s: float, run_dir, git_commit, checkpoint: str,
              torch_threads: int, torch_version: str, device_name: str, peak_memory_mb: float,
              precision: str, deterministic: bool, label: str | None = None, tune_trial: int | None = None,
              routing: dict | None = None, model_source: dict | None = None,
              earlier_attempts: list | None = None, trainer_overrides: dict | None = None) -> dict:
    """The record of a finished run: `spec` is its DatasetSpec, `result` the trainer's FitResult.
    `peak_memory_mb`: the GPU's max_memory_allocated on CUDA, the process's peak RSS on the CPU.
    `label` (a tune's study name) is stored when given, with `tune_trial`, the number of the study's trial whose
    config the run trained (Optuna names a trial by its study and number: `optuna.load_study(...).trials[n]`).
    `routing`: what the routers did over the test samples (models/atsuko/diagnostics.py), for models that route;
    absent otherwise. `model_source`: the code of a model of your own (`--models DIR`), which the git commit does
    not cover: the model file's path and sha256 and each file of its folder imported
    (`user_models.source.model_source`).
    `earlier_attempts`: of a resumed run, the processes that trained its first epochs ({"git_commit",
    "started_at", "torch_threads", "precision", "deterministic"} each, oldest first, `run_folders.attempts_of`; the
    record's own fields are this process's, and a resume at another precision or kernels is refused).
    `trainer_overrides`: of a run at a `--preset`, the trainer keys its config set apart from the preset as it started,
    with the preset's values then (`config.trainer_keys_apart`; {} for none), which the tables name: a preset YAML
    edited after the run changes nothing of it. Absent at the full config, and in a record from before the field,
    which the tables hold against today's preset (leaderboard.notes.overrides_text)."""
    return {
        "run_id": run_id, "status": "ok",
        "model": model, "dataset": spec.name, "aligned": spec.aligned, "seed": seed,
        "synthetic": spec.synthetic, "preset": preset,
        "metrics": result.test.metrics, "valid_metrics": result.valid,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "wall_time_s": wall_time_s, "device": str(device),
        # CPU float sums over 1 and 2 threads differ in the last bits: part of what made the numbers.
        "torch_threads": torch_threads,
        "device_name": device_name, "peak_memory_mb": peak_memory_mb, "precision": precision,
        "deterministic": deterministic, "steps_per_s": result.steps_per_s,
        "config_hash": config_hash(config), "config": dict(config),
        "data": spec.source, "data_path": absolute_data_path(spec.path), "extractor": spec.extractor,
        # The file's samples per split: without a published sha256 they tell a real file from a small one
        # (leaderboard.real_data).
        "split_sizes": dict(spec.split_sizes),
        "package_version": __version__, "git_commit": git_commit,
        "torch_version": torch_version, "python": platform.python_version(),
        "started_at": started.isoformat(timespec="seconds"),
        "run_dir": relative_run_dir(run_dir), "checkpoint": checkpoint, "condition": spec.condition.as_dict(),
    } | ({"label": label} if label else {}) | ({"tune_trial": tune_trial} if tune_trial is not None else {}) \
        | ({"routing": routing} if routing is not None else {}) \
        | ({"model_source": model_source} if model_source is not None else {}) \
        | ({"earlier_attempts": earlier_attempts} if earlier_attempts else {}) \
        | ({"trainer_overrides": trainer_overrides} if trainer_overrides is not None else {})


def absolute_data_path(path: str | None) -> str | None:
    """The data file (or folder) `path` as a record keeps it: absolute, so it names the file from any folder (the
    working folder a run started in is not recorded). Its folder is resolved (`..` and linked folders) and its own
    name kept: a link given as the file stays the name given, and the record's `data` (the sha256) tells which
    content it held. Not part of a run's identity: a run keeps its identity wherever its data was read from."""
    if path is None:
        return None
    given = Path(path)
    if given.name in ("", ".", ".."):
        return str(given.resolve())
    return str(given.parent.resolve() / given.name)


def failed_record(run_id: str, *, model: str, dataset: str, aligned: bool, seed: int, preset, config: dict,
                  data_id: str, error: str, device, started: datetime, wall_time_s: float, run_dir, git_commit,
                  checkpoint: str, condition=PLAIN, exit_code: int = 1) -> dict:
    """The record of a run that raised or whose process died (`error`: one line). `exit_code`: the code the
    error exits with in process (2 for a `UsageError`, such as a model breaking the contract; 1 for anything else),
    decided where the exception was caught, so a command whose runs failed in workers exits with the first one's."""
    return {
        "run_id": run_id, "status": "failed", "error": error, "exit_code": exit_code,
        "model": model, "dataset": dataset, "aligned": aligned, "seed": seed,
        "synthetic": is_synthetic(data_id), "preset": preset,
        "metrics": {}, "wall_time_s": wall_time_s, "device": str(device),
        "config_hash": config_hash(config), "config": dict(config), "data": data_id,
        "package_version": __version__, "git_commit": git_commit,
        "started_at": started.isoformat(timespec="seconds"), "run_dir": relative_run_dir(run_dir),
        "checkpoint": checkpoint, "condition": condition.as_dict(),
    }


def run_identity(model: str, dataset: str, aligned: bool, seed: int, config_hash: str, data_id: str,
                 condition: str = "") -> tuple:
    """What makes two runs the same run: the same training on the same data (the data id is
    `sha256:<hex>` of the feature file or `synthetic:<recipe>`) under the same protocol condition
    (`Condition.key()`, "" for the plain one). The plain condition adds nothing to the tuple, so
    records and run folders made before conditions existed keep their identity."""
    return (model, dataset, bool(aligned), int(seed), config_hash, data_id) + ((condition,) if condition else ())


IDENTITY_FIELDS = ("model", "dataset", "aligned", "seed", "config_hash", "data")


def is_seed(value) -> bool:
    """Whether `value` is a seed a record holds: an integer (JSON's true is none) that torch's seeding takes."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63


def code_version(record: dict) -> str:
    """The code a run ran, short: its commit (10 hex digits, `+dirty` kept), else its package version, and for a
    model of your own `+<model>@<digest>` (`user_model_digest`), since no commit covers its files. The
    leaderboard's `code` column, its note on rows of several code versions and every analysis CSV name a run's
    code so; before the model part, seeds of two versions of one's own model.py read as one code version."""
    commit = record.get("git_commit")
    if isinstance(commit, str) and commit:
        toolkit = commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")
    else:
        toolkit = f"version {record.get('package_version', 'unknown')}"
    digest = user_model_digest(record.get("model_source"))
    return toolkit if digest is None else f"{toolkit}+{record.get('model')}@{digest}"


def user_model_digest(source) -> str | None:
    """Ten hex digits naming the files of a model of your own as a record's `model_source` gives them
    (`user_models.source.recorded_files`): the model file's sha256 when discovery imported it alone, else a sha256 of
    every file's path and sha256 (a helper beside it is code of the model too). None for the toolkit's models and
    for a source that is no such record (a hand-edited store), which then reads as the commit alone."""
    files = recorded_files(source)
    if files is None:
        return None
    if len(files) == 1:
        return next(iter(files.values()))[:10]
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:10]


def run_phrase(model: str, dataset: str, aligned: bool, condition_key: str, seed: int) -> str:
    """A run as the plan, skip and wait lines name it: `tfn mosi aligned [missing_rate=0.3] seed 1111`."""
    return f"{model} {dataset}{' aligned' if aligned else ''}{label_suffix(condition_key)} seed {seed}"


def run_label(record: dict) -> str | None:
    """How a labelled run is named where its row is shown: its label, and the tune trial its config is, as Optuna
    names a trial (`tune-tfn-mosi trial 7`); None for a run without a label."""
    label = record.get("label")
    if not isinstance(label, str) or not label:
        return None
    trial = record.get("tune_trial")
    return f"{label} trial {trial}" if isinstance(trial, int) and not isinstance(trial, bool) else label


def model_selection(record: dict) -> str:
    """How a run chose its best epoch, as a table names it: the valid metric it compared (`key_eval`) and, for the
    valid Loss, how that Loss was made (`valid_loss`, training/selection.py; a run from before the key made it
    exactly, `ADDED_KEYS`). Rows that read alike were selected alike: a paper's table uses `valid_loss: mmsa`."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    key = config.get("key_eval")
    if not isinstance(key, str):
        return "unknown (no key_eval in the stored config)"
    if key != "Loss":
        return f"valid {key}"
    rule = config.get("valid_loss", ADDED_KEYS["valid_loss"])
    return f"valid Loss, valid_loss: {rule}" + (" (MMSA's rule)" if rule == "mmsa" else "")


def code_versions(records) -> str:
    """The code versions of several runs (a leaderboard row, a sensitivity point), sorted, space-separated."""
    return " ".join(sorted({code_version(r) for r in records}))


def precision_of(record: dict) -> str:
    """The precision a run ran at (`--precision`): a record from before precision was recorded ran at fp32, the
    only precision there was."""
    return record.get("precision") or "fp32"


def kernels_of(record: dict) -> str:
    """The kernels a run ran with: `deterministic` (strict, the default), `nondeterministic` (`--nondeterministic`),
    or `warn-only` for a record from before `deterministic` was recorded: its toolkit asked for deterministic
    kernels with warn_only=True, so an op without a deterministic version ran its nondeterministic one."""
    if "deterministic" not in record:
        return "warn-only"
    return "deterministic" if record["deterministic"] else "nondeterministic"


def device_of(record: dict) -> str:
    """The kind of device a run ran on, as torch names it (`cpu`, `cuda`, `mps`; `cuda:0` and `cuda:1` are one kind),
    or `unknown` for a record without `device`."""
    device = record.get("device")
    return device.split(":")[0] if isinstance(device, str) and device else "unknown"


def ran_at_other_precision(record: dict, precision: str) -> str | None:
    """The precision `record` ran at when it is not `precision`, else None. Precision is how a run ran, as its
    device is, not part of its identity: a `--precision bf16` request finds the fp32 run of its identity
    recorded and skips it, and the lines that say so must not let its numbers pass for bf16 ones."""
    ran = precision_of(record)
    return ran if ran != precision else None


def ran_with_other_kernels(record: dict, deterministic: bool) -> str | None:
    """The kernels `record` ran with (`kernels_of`) when they are not those asked (deterministic, or nondeterministic
    under `--nondeterministic`), else None. Kernels, as precision, are how a run ran, not part of its identity: a
    `--nondeterministic` request finds the deterministic run of its identity recorded and skips it."""
    ran = kernels_of(record)
    return ran if ran != ("deterministic" if deterministic else "nondeterministic") else None


def no_weights(weights, record: dict | None = None) -> str:
    """The line for a run folder without its best.pt: a record that says `checkpoint: none` is a run
    trained to keep no weights, which no copy or repair brings back; else the file is missing."""
    if record is not None and record.get("checkpoint") == "none":
        return (f"run {record.get('run_id')} kept no weights: it was trained with --save-checkpoint none; "
                f"train it again with --save-checkpoint best (and --rerun) to use its model")
    if Path(weights).exists():       # a named pipe, a device or a folder at best.pt: no run of ours left it
        return f"{weights} is no regular file, so it holds no weights this toolkit wrote; train the run again"
    return (f"{weights} not found: the run folder holds no weights (a run trained with --save-checkpoint none "
            f"keeps none; train it again with --save-checkpoint best)")


def identity(record: dict) -> tuple | None:
    """The run identity of a store record, or None for a record that is not a run (it lacks a
    field); an identity field of the wrong type is a DataError (a crafted or hand-edited line)."""
    if not all(field in record for field in IDENTITY_FIELDS):
        return None
    for field in ("model", "dataset", "config_hash", "data"):
        if not isinstance(record[field], str):
            bad_field(record, field, "a string")
    if not isinstance(record["aligned"], bool):
        bad_field(record, "aligned", "true or false")
    if not is_seed(record["seed"]):
        bad_field(record, "seed", "an integer")
    try:
        condition = condition_of(record).key()
    except (TypeError, ValueError):
        bad_field(record, "condition", "a mapping of missing_rate, drop_modality and modalities")
    return run_identity(*(record[field] for field in IDENTITY_FIELDS), condition)


_FIELD_VALUE = object()


def bad_field(record: dict, field: str, what: str, value=_FIELD_VALUE):
    """Raise the one-line DataError saying that `record`'s `field` must be `what` (`value`: what it holds,
    when `field` names something inside a field, such as one metric)."""
    run = record.get("run_id")
    got = record.get(field) if value is _FIELD_VALUE else value
    raise DataError(f"{RUNS_FILE}: record {show(run) if isinstance(run, str) else '(no run_id)'}: "
                    f"{field} must be {what}, got {show(got)}; remove or fix that line")
