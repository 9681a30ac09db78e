"""`run(models, datasets, seeds, ...)`: the whole pipeline, from files to run records.

Everything that can be wrong with the request (unknown names, bad overrides, missing or
corrupt data, missing BERT weights) is checked for every (model, dataset) pair before the
first run starts, so a bad request writes nothing. A seed whose run is already recorded ok
(same identity, `results.identity`) is not trained again unless `rerun`.

`prepare_job` and `train_one` are the steps a sweep runs too, in its driver or workers.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from .cache import CACHE_ENV as SYNTHETIC_CACHE_ENV  # noqa: F401 (re-exported)
from .cache import synthetic_cache_dir
from .code_version import git_commit
from .config import config_hash, parse_overrides, save_config
from .data import load_dataset, resolve_feature_path
from .data.conditions import PLAIN, check_model_allows
from .data.synthetic import check_synthetic_request, ensure_synthetic
from .data.synthetic_stress import check_data_options, check_recipe_request, split_condition
from .errors import UsageError
from .models.atsuko import ATSUKO_FAMILY
from .models.atsuko.diagnostics import routing_summary
from .models.common.bert import bert_input_problem, reads_bert_tokens, shorter_texts
from .registry import build_model, canonical_model_name
from .results import (RunPyMark, append_mmsa_csv, append_or_keep, check_output_folder, identity, latest_by_identity,
                      ok_record, open_new, ran_at_other_precision, read_records, recover, run_identity)
from .run_folders import (SAVE_CHECKPOINT, attempts_of, check_save_checkpoint, identity_claim,  # noqa: F401
                          partial_dir, run_folder, take_leftovers, unfinished_runs, work_folders)  # (re-exported)
from .training.hardware import (check_precision, check_threads, device_name, peak_memory_mb,
                                reset_peak_memory)
from .training.model_card import check_tokenizer, write_model_card
from .training.run_log import run_log
from .training.seed import DEFAULT_SEEDS, check_seeds, resolve_device, set_seed
from .training.tensorboard import require_tensorboard, tensorboard_log
from .training.trainer import check_last_batch, fit
from .training.trainer_config import resolve_config
from .user_models.source import model_source, source_changes

log = logging.getLogger("mmsa_atsuko")

@dataclass
class Job:
    """One (model, dataset) pair, resolved and loaded, ready to run its seeds."""
    model: str
    config: dict
    data: object
    preset: str | None


def prepare_job(model, dataset, *, aligned, data_root, feature_path, synthetic, synthetic_size,
                preset, overrides, max_epochs, loaded: dict, condition=PLAIN, synthetic_recipe="standard") -> Job:
    """Resolve one (model, dataset) pair into a Job: its checked config and its data, loaded and
    validated, with the model built once to surface model/data mismatches. Its config hash and
    data id (`data.spec.source`) are the run identity's, so a sweep plans with it.

    `loaded` caches datasets by file, so several models on one dataset share one copy of its
    tensors (MOSEI is ~8 GB). `condition` (missing frames, modality subset) is applied once per
    condition (`Dataset.under`), and its copy is cached and shared in `loaded` too."""
    # `run` and `sweep` have checked every config already, before any data is read.
    model = canonical_model_name(model)          # `-m TFN` runs and records as tfn
    check_model_allows(model, condition)
    bert_dir = None
    if synthetic:
        feature_path, bert_dir = ensure_synthetic(dataset, synthetic_cache_dir(), size=synthetic_size,
                                                  aligned=aligned, recipe=synthetic_recipe)
    config = resolve_config(model, dataset, preset=preset, overrides=overrides, max_epochs=max_epochs,
                            synthetic_bert=bert_dir)
    # MIntRec's raw text is tokenized (and encoded, for `text`) with the run's BERT, so its
    # copy is per BERT; MMSA pickles ship their tokens and ignore `pretrained`.
    key = (dataset, aligned, str(data_root), str(feature_path), config.pretrained if dataset == "mintrec" else None)
    if key not in loaded:
        loaded[key] = load_dataset(dataset, aligned=aligned, data_root=data_root, feature_path=feature_path,
                                   pretrained=config.pretrained)
    if condition != loaded[key].spec.condition:     # masked once per condition, shared by its jobs
        if (*key, condition) not in loaded:
            loaded[(*key, condition)] = loaded[key].under(condition)
        key = (*key, condition)
    data = loaded[key]
    # Build once to surface model/data mismatches (task, missing text features, BERT path) now.
    built = build_model(model, config, data.spec)
    check_last_batch(built, len(data.train), config.batch_size)       # before any run folder is made
    if hasattr(built, "check_training_data"):     # the model's own check of what it trains on (optional hook)
        built.check_training_data(data.spec)
    if reads_bert_tokens(built):
        check_tokenizer(data.spec, config.pretrained)       # the ids of an extracted file, read by this BERT
        problem = bert_input_problem(built, data.splits())  # ids past this BERT's tables (any file), before any folder
        if problem and problem.positions:
            trims = "; or train self_mm or misa, which read only the real tokens" if problem.padding else ""
            raise UsageError(f"{data.spec.path}: {problem.line}: {shorter_texts(problem.positions)}{trims}")
        if problem:
            raise UsageError(f"{data.spec.path}: {problem.line}: the file was not made for this BERT; give -c "
                             f"pretrained= the BERT it was made with")
        if data.spec.has_text_features:
            data = data.without_text_features()
    return Job(model, config, data, preset)


def run(models, datasets, seeds=DEFAULT_SEEDS, config=None, *, aligned=False, data_root=None,
        feature_path=None, synthetic=False, synthetic_size=None, synthetic_recipe="standard",
        preset=None, device="auto",
        max_epochs=None, out="results", quiet=False, rerun=False, save_checkpoint="best", resume=False,
        tensorboard=False, threads=None, precision="fp32", deterministic=True, conditions=(PLAIN,),
        echo=print, appended: list | None = None) -> list[dict]:
    """Train and test every model on every dataset for every seed; return the run records.

    `config` is a dict of overrides (or a list of "key=value" strings) applied last.
    Records are also appended to `<out>/runs.jsonl`, and one MMSA-style row per
    (model, dataset) that trained a seed to `<out>/normal/<dataset>.csv` (with the columns that trace it
    to its runs, `results.mmsa_csv`; a file with MMSA's columns only keeps them, and `echo` says so once).
    A seed already recorded ok is skipped (one `echo` line each) and its stored record is
    returned in its place, unless `rerun`. `save_checkpoint="none"` leaves no best.pt. A run that
    an earlier call left unfinished (`take_leftovers`) is continued with `resume`, else removed
    first. `tensorboard` writes per-epoch scalars to each run's `tensorboard/` folder.
    `threads`: torch's intra-op threads for the runs (None: as the process has them). `precision`:
    fp32 or bf16 (autocast). `deterministic=False` lets torch choose non-deterministic kernels.
    Several runs at once go through the sweep's local backend (`sweep.run_packed`, `run.py --jobs`). A sweep
    training into `out` stops this call in one line when it reaches its first run to train (a call whose runs are
    all recorded only skips them, as it writes nothing), and one started meanwhile stops itself (`results.writers`):
    beside each other both trained a run neither had recorded; other `run` calls share `out`, and one that reaches a
    run another is training waits for it and returns its record (`run_one`).
    `appended`: a list the run ids of the records this call trained and appended are added to (the others it
    returns were recorded before, or by another process meanwhile).
    `conditions` (`data.conditions.conditions(...)`) runs every model under each protocol condition.
    `synthetic_size` (small, the default, or full) sizes `synthetic` data only, and `data_root` and `feature_path`
    name real data only: given the other way, each is one UsageError (`check_data_options`), not ignored.
    """
    models = [m.lower() for m in ([models] if isinstance(models, str) else models)]       # names are case-insensitive
    datasets = [d.lower() for d in ([datasets] if isinstance(datasets, str) else datasets)]
    git_commit()                       # the code version this process runs, read before anything trains
    seeds = check_seeds(seeds)
    if not seeds:
        raise UsageError("no seeds given")
    synthetic_size = check_data_options(synthetic, synthetic_size, data_root, feature_path)   # None: small; its values
    check_recipe_request(synthetic_recipe, synthetic)
    if feature_path is not None and len(datasets) > 1:
        raise UsageError("--feature-path names one file, so give exactly one dataset")
    check_save_checkpoint(save_checkpoint)
    check_precision(precision)
    if check_threads(threads) is not None:
        torch.set_num_threads(threads)
    overrides = list(config.items()) if isinstance(config, dict) else parse_overrides(config or [])
    torch_device = resolve_device(device)
    check_output_folder(out)
    if tensorboard:
        require_tensorboard()
    for d in datasets:                 # every config first: a bad value stops the request before any data is read
        for m in models:
            resolve_config(m, d, preset=preset, overrides=overrides, max_epochs=max_epochs)
            for c in conditions:
                check_model_allows(m, c)
    # and every dataset's setting: `-d mosei sims --aligned` read all of MOSEI before saying sims has none
    for d in datasets:
        if synthetic:
            check_synthetic_request(d, synthetic_size, aligned, synthetic_recipe)
        else:
            resolve_feature_path(d, aligned, data_root, feature_path)
    loaded = {}
    jobs = [prepare_job(m, d, aligned=aligned, data_root=data_root, feature_path=feature_path,
                        synthetic=synthetic, synthetic_size=synthetic_size, synthetic_recipe=synthetic_recipe,
                        preset=preset, overrides=overrides, max_epochs=max_epochs, loaded=loaded, condition=c)
            for d in datasets for c in conditions for m in models]
    loaded.clear()   # the jobs hold what they read; features no job reads are freed now
    with RunPyMark(out) as mark:   # taken at the first run to train: no sweep trains into `out` meanwhile
        return _run_jobs(jobs, seeds, torch_device, out=out, quiet=quiet, rerun=rerun, save_checkpoint=save_checkpoint,
                         resume=resume, tensorboard=tensorboard, precision=precision, deterministic=deterministic,
                         echo=echo, mark=mark, appended=[] if appended is None else appended)


def _run_jobs(jobs: list[Job], seeds, torch_device, *, out, quiet, rerun, save_checkpoint, resume, tensorboard,
              precision, deterministic, echo, mark: RunPyMark, appended: list) -> list[dict]:
    """`run`'s loop over its prepared jobs and seeds: skip what is recorded, train the rest, write the MMSA rows."""
    for kept in recover(out):          # records an earlier call could not append (results.append_or_keep)
        echo(f"recovered the record of run {kept['run_id']} into {Path(out) / 'runs.jsonl'}")
    stored = read_records(out)
    recorded = {} if rerun else latest_by_identity(stored)
    # Records that do not stand for a run another process trained meanwhile (`run_one`): with --rerun, those stored
    before = frozenset(r.get("run_id") for r in stored) if rerun else frozenset()
    records, told = [], set()          # told: the MMSA files named once as keeping MMSA's columns only
    for job in jobs:
        job_records, trained = [], False
        for seed in seeds:
            previous = recorded.get(job_identity(job, seed), {})
            if previous.get("status") != "ok" and mark.take() and not rerun:   # the first run to train: decided
                recorded = latest_by_identity(read_records(out))               # again on what a sweep left recorded
                previous = recorded.get(job_identity(job, seed), {})
            if previous.get("status") == "ok":
                ran = ran_at_other_precision(previous, precision)
                changed = source_changes(previous.get("model_source"), job.model)   # a model of your own edited since
                how = _skip_reason(ran, changed, precision)
                echo(f"skip {_what(job, seed)}: recorded as {previous.get('run_id')}{how}")
                job_records.append(previous)
            else:
                record, trained_here = run_one(job, seed, torch_device, Path(out), quiet, checkpoint=save_checkpoint,
                                               resume=resume, tensorboard=tensorboard, precision=precision,
                                               deterministic=deterministic, echo=echo, stored=before)
                recorded[identity(record)] = record      # `-m tfn tfn` trains it once
                job_records.append(record)
                if trained_here:
                    appended.append(record["run_id"])
                else:
                    echo(f"skip {_what(job, seed)}: recorded as {record['run_id']} by another process meanwhile")
                trained = trained or trained_here
        if trained:    # the row covers every seed of the call, recorded ones included, as the table does
            append_mmsa_csv(Path(out), job_records, echo=echo, told=told)
        records += job_records
    return records


def _skip_reason(ran: str | None, changed: list[str], precision: str) -> str:
    """The skip line's tail: what differs from the recorded seed, both where both do (neither the precision nor
    the code of a model of your own is part of a run's identity, so either alone skipped it as the same run)."""
    if ran and changed:
        return (f", which ran at {ran}, not the {precision} asked, and {'; '.join(changed)} (neither precision nor "
                f"the code is part of a run's identity: --rerun trains it at {precision} with the code as it is now, "
                f"in its place, or give another --out)")
    if ran:
        return (f", which ran at {ran}, not the {precision} asked (precision is not part of a run's identity: "
                f"--rerun trains it at {precision} in its place, or give another --out)")
    if changed:
        return (f", but {'; '.join(changed)} (the code is not part of a run's identity: --rerun trains it with the "
                f"code as it is now)")
    return " (--rerun trains it again)"


def new_run_id(model: str, dataset: str, aligned: bool, seed: int, stamp: datetime | None = None) -> str:
    """`tfn-mosi[-aligned]-s1111-<UTC time>-<random>`: unique, and the name of the run's folder."""
    stamp = stamp or datetime.now(timezone.utc)
    return "-".join([model, dataset] + (["aligned"] if aligned else [])
                    + [f"s{seed}", stamp.strftime("%Y%m%dT%H%M%S"), secrets.token_hex(3)])


def run_one(job: Job, seed: int, device: torch.device, out: Path, quiet: bool, *, checkpoint: str = "best",
            resume: bool = False, tensorboard: bool = False, precision: str = "fp32",
            deterministic: bool = True, echo=print, stored: frozenset = frozenset()) -> tuple[dict, bool]:
    """Train one seed in its own folder (with `resume`, the unfinished one an earlier call left);
    append its record once it has finished. Returns (the record, whether this call trained it).

    The run's identity is claimed first (`run_folders.identity_claim`): another run.py in `out` training the same
    run holds it, and this call says so (`echo`), waits for it, and returns the record it appended instead of
    training (if it appended none, killed or failed, this call trains). The store is read again once the claim is
    held: a run another process recorded after this call read the store is not trained again. `stored`: run ids
    that are not such a record (--rerun: the records stored when the call began, which it trains again)."""
    run = job_identity(job, seed)

    def waiting(claim: Path) -> None:
        echo(f"waiting for another process that trains {_what(job, seed)} into {out} (it holds {claim}): its record "
             f"is taken when it ends, instead of training the run again")

    with identity_claim(out / "runs", run, waiting):
        done = [r for r in read_records(out) if r.get("status") == "ok" and r.get("run_id") not in stored
                and identity(r) == run]
        if done:
            return done[-1], False
        run_id = take_leftovers(out, run, resume)
        record = train_one(job, seed, device, out, quiet, run_id=run_id, resume=run_id is not None,
                           tensorboard=tensorboard, checkpoint=checkpoint, precision=precision,
                           deterministic=deterministic)
        append_or_keep(out, record)
    return record, True


def _what(job: Job, seed: int) -> str:
    """A run as the skip and wait lines name it: `tfn mosi aligned [missing_rate=0.3] seed 1111`."""
    spec = job.data.spec
    return f"{job.model} {spec.name}{' aligned' if spec.aligned else ''}{condition_label(spec)} seed {seed}"


def job_identity(job: Job, seed: int) -> tuple:
    """The run identity (`results.run_identity`) of `job` trained with `seed`."""
    spec = job.data.spec
    return run_identity(job.model, spec.name, spec.aligned, seed, config_hash(job.config), spec.source,
                        spec.condition.key())


def condition_label(spec) -> str:
    """The suffix of a run under a protocol condition in lines (` [missing_rate=0.3]`, as MMSA rows and tables name it);
    empty for the plain condition."""
    return f" [{spec.condition.key()}]" if not spec.condition.plain else ""


def train_one(job: Job, seed: int, device: torch.device, out: Path, quiet: bool, *,
              run_id: str | None = None, resume: bool = False, tensorboard: bool = False,
              checkpoint: str = "best", precision: str = "fp32", deterministic: bool = True,
              label: str | None = None, tune_trial: int | None = None) -> dict:
    """`run_one` without appending the record (a sweep's driver is the only writer of its store).

    `resume`: continue run `run_id` in its unfinished folder (`take_leftovers`).
    `checkpoint="none"`: best.pt is deleted once the run has tested its best epoch (the trainer
    tests the best weights it holds in memory, so the metrics are the same either way)."""
    spec = job.data.spec
    stamp = datetime.now(timezone.utc)
    run_id = run_id or new_run_id(job.model, spec.name, spec.aligned, seed, stamp)
    runs_dir = out / "runs"
    work_dir = partial_dir(out, run_id)     # renamed to run_id only when the run finished
    final_dir = runs_dir / run_id
    commit = git_commit()
    attempt = {"git_commit": commit, "started_at": stamp.isoformat(timespec="seconds"),
               "torch_threads": torch.get_num_threads(), "precision": precision, "deterministic": deterministic}
    with (run_folder(work_dir, final_dir, job_identity(job, seed), resume, attempt, spec.condition.as_dict()),
          run_log(work_dir / "train.log"),
          tensorboard_log(work_dir / "tensorboard") if tensorboard else contextlib.nullcontext() as on_epoch):
        save_config(job.config, work_dir / "config.yaml")
        write_model_card(work_dir, job.model, job.config, spec)
        log.info("run %s: model=%s dataset=%s aligned=%s seed=%d device=%s data=%s code=%s%s", run_id, job.model,
                 spec.name, spec.aligned, seed, device, spec.source, commit,
                 f" condition={spec.condition.key()}" if not spec.condition.plain else "")
        set_seed(seed, deterministic)
        model = build_model(job.model, job.config, spec)
        reset_peak_memory(device)
        start = time.time()
        result = fit(model, job.data, job.config, device=device, seed=seed, run_dir=work_dir,
                     progress=not quiet, resume=resume, on_epoch=on_epoch, precision=precision)
        wall = time.time() - start
        peak = peak_memory_mb(device)
        write_predictions(work_dir / "predictions_test.csv", result.test, spec)    # fit wrote history.json
        if checkpoint == "none":
            (work_dir / "best.pt").unlink(missing_ok=True)
        earlier_attempts = attempts_of(work_dir)[:-1]     # a resumed run was partly trained by other processes
    condition = split_condition(spec.source, spec.path, "test") if job.model in ATSUKO_FAMILY else None
    return ok_record(run_id, model=job.model, seed=seed, preset=job.preset, config=job.config, spec=spec,
                     result=result, device=device, started=stamp, wall_time_s=wall, run_dir=final_dir,
                     git_commit=commit, checkpoint=checkpoint, torch_threads=torch.get_num_threads(),
                     torch_version=torch.__version__, device_name=device_name(device), peak_memory_mb=peak,
                     precision=precision, deterministic=deterministic, label=label, tune_trial=tune_trial,
                     routing=routing_summary(result.test.export, condition), model_source=model_source(job.model),
                     earlier_attempts=earlier_attempts)


PREDICTIONS_FLOAT_FORMAT = "%.9g"      # 9 significant digits round-trip float32


def write_predictions(path: Path, test, spec) -> None:
    """predictions_test.csv (`predictions_frame`). Floats are written to 9 significant digits, which
    round-trips float32 exactly: the metrics can be recomputed from the file to the last digit."""
    with open_new(path, "w", newline="", encoding="utf-8") as f:      # never through a planted link
        predictions_frame(test, spec.task).to_csv(f, index=False, float_format=PREDICTIONS_FLOAT_FORMAT)


def predictions_frame(test, task: str) -> pd.DataFrame:
    """id, label, pred per sample (+ logit_<c> for classification, + the model's exports, such as Atsuko's
    modality_weight_L/V/A): one row per sample, the layout of predictions_test.csv and of every per-sample
    CSV made from it (explain's modality_weights.csv). `test`: the trainer's `evaluate(..., collect=True)`."""
    columns = {"id": test.ids, "label": test.label}
    if task == "classification":
        columns["pred"] = test.pred.argmax(axis=1)
        columns.update({f"logit_{c}": test.pred[:, c] for c in range(test.pred.shape[1])})
    else:
        columns["pred"] = test.pred
    for name, values in test.export.items():
        values = values.reshape(len(test.ids), -1)
        if values.shape[1] == 1:
            columns[name] = values[:, 0]
        else:
            columns.update({f"{name}_{j}": values[:, j] for j in range(values.shape[1])})
    return pd.DataFrame(columns)
