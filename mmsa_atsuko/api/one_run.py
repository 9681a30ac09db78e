"""One run's protocol: claim its identity, take the record another process appended meanwhile or train it in its
own folder (continuing an unfinished one with `resume`), and append its record.

`train_one` is the step a sweep's workers run too (the sweep's driver appends their records), and `train_model`, its
training, a tune's trial too.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..code_version import git_commit
from ..config import save_config
from ..data.synthetic_stress import split_condition
from ..models.atsuko import ATSUKO_FAMILY
from ..models.atsuko.diagnostics import routing_summary
from ..registry import build_model
from ..results import append_or_keep, identity, ok_record, read_records, recover, run_ids
from ..run_folders import attempts_of, identity_claim, partial_dir, run_folder, take_leftovers
from ..training.hardware import check_cuda_determinism, device_name, on_device, peak_memory_mb, reset_peak_memory
from ..training.model_card import write_model_card
from ..training.run_log import run_log
from ..training.seed import set_seed
from ..training.tensorboard import tensorboard_log
from ..training.trainer import fit
from ..user_models.source import model_source
from .jobs import Job, job_identity, job_phrase
from .predictions_csv import write_predictions

log = logging.getLogger("mmsa_atsuko")


def new_run_id(model: str, dataset: str, aligned: bool, seed: int, stamp: datetime | None = None) -> str:
    """`tfn-mosi[-aligned]-s1111-<UTC time>-<random>`: unique, and the name of the run's folder."""
    stamp = stamp or datetime.now(timezone.utc)
    return "-".join([model, dataset] + (["aligned"] if aligned else [])
                    + [f"s{seed}", stamp.strftime("%Y%m%dT%H%M%S"), secrets.token_hex(3)])


def run_one(job: Job, seed: int, device: torch.device, out: Path, quiet: bool, *, checkpoint: str = "best",
            resume: bool = False, tensorboard: bool = False, precision: str = "fp32",
            deterministic: bool = True, echo=print, serves: Callable[[dict], bool] = lambda record: True
            ) -> tuple[dict, bool]:
    """Train one seed in its own folder (with `resume`, the unfinished one an earlier call left);
    append its record once it has finished. Returns (the record, whether this call trained it).

    The run's identity is claimed first (`run_folders.identity_claim`): another run.py in `out` training the same
    run holds it, and this call says so (`echo`), waits for it, and returns the record it appended instead of
    training (if it appended none, killed or failed, this call says so and trains). The store is read again once the
    claim is held, after folding in the records a holder could not append (`results.recover`): a run another process
    recorded after this call read the store is not trained again. `serves(record)`: whether such a record stands for
    the run this call asks for (`pipeline`'s rule, as for a record stored before: with --rerun, only one started after
    the call began, as asked); one that does not is trained again."""
    run = job_identity(job, seed)
    earlier: set[str] = set()      # the run's records when the wait began: what the process waited on did not add

    def waiting(claim: Path, waited_s: float, holder: str | None) -> None:
        if not waited_s:
            earlier.update(run_ids(recorded()))        # read only where there is a wait, before it
            echo(f"waiting for another process that trains {job_phrase(job, seed)} into {out} (it holds {claim}): "
                 f"its record is taken when it ends, instead of training the run again")
        else:
            who = holder or f"the process that holds {claim}"
            echo(f"still waiting, {waited_s / 60:.0f} min so far, for {who}, training {job_phrase(job, seed)} "
                 f"into {out}")

    def recorded() -> list[dict]:
        # a hand-written line's run_id may be a list (unhashable) or missing: no run's record (results.run_ids)
        return [r for r in read_records(out) if r.get("status") == "ok" and isinstance(r.get("run_id"), str)
                and identity(r) == run]

    with identity_claim(out / "runs", run, waiting) as waited:
        for kept in recover(out):          # the holder's record its store append could not take (append_or_keep)
            echo(f"recovered the record of run {kept['run_id']} into {out / 'runs.jsonl'}")
        ours = recorded()
        done = [r for r in ours if serves(r)]
        if done:
            return done[-1], False
        if waited:
            meanwhile = [r["run_id"] for r in ours if r["run_id"] not in earlier]
            echo(f"the other process training {job_phrase(job, seed)} ended "
                 + (f"recording it as {meanwhile[-1]}, a run --rerun does not take (it started before this call "
                    f"began, or ran at another precision, kernels or model code than asked)"
                    if meanwhile else "without recording it (killed, or it failed)") + ": training it here")
        run_id = take_leftovers(out, run, resume)
        record = train_one(job, seed, device, out, quiet, run_id=run_id, resume=run_id is not None,
                           tensorboard=tensorboard, checkpoint=checkpoint, precision=precision,
                           deterministic=deterministic)
        append_or_keep(out, record)
    return record, True


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
        result, wall, peak = train_model(job, seed, device, deterministic=deterministic, run_dir=work_dir,
                                         progress=not quiet, resume=resume, on_epoch=on_epoch, precision=precision)
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
                     earlier_attempts=earlier_attempts, trainer_overrides=job.trainer_overrides)


def train_model(job: Job, seed: int, device: torch.device, *, deterministic: bool = True, **fit_kw):
    """The training step of a run, wherever it runs (`train_one`; a tune's trial, `sweep.execute.run_trial`): the
    seed set, the model built from it on the job's data, the device's peak memory counted from here, and `fit`
    (`fit_kw`: its options but the job's and these). Returns (fit's result, its seconds, the peak memory in MiB)."""
    check_cuda_determinism([device], deterministic)     # a sweep's worker, a tune's trial: before the run trains
    set_seed(seed, deterministic)
    model = build_model(job.model, job.config, job.data.spec)
    with on_device(device):
        reset_peak_memory(device)
        start = time.time()
        result = fit(model, job.data, job.config, device=device, seed=seed, **fit_kw)
        wall = time.time() - start
        return result, wall, peak_memory_mb(device)
