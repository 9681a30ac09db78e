"""One training loop for every model (docs/design.md, Contracts: Trainer).

Train on `train`, select on `valid` by the config's `key_eval` (MMSA: valid loss, made as
`valid_loss` says; selection.py), stop early or at `max_epochs`, then evaluate the best checkpoint
on `test` exactly once. Models
plug in through `forward`, `loss` and the optional hooks `param_groups(config)`,
`on_fit_start(train_split)`, `on_train_batch_end(batch, outputs)`, `on_epoch_end(epoch)`.

With a run folder, every finished epoch leaves `last.pt` there (model, optimizer, scheduler,
model selection, history, every random stream: `training_state.py`), so `fit(..., resume=True)`
continues a run that died and ends exactly where the uninterrupted run would have on the CPU. A hook's tensors
are restored from it, and a hook's Python attributes are rebuilt by calling `on_fit_start` and
`on_epoch_end(last finished epoch)` again: hooks set such attributes, never accumulate them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import TrainingError
from ..metrics.dispatch import compute_metrics
from ..metrics.names import lower_is_better
from ..models.contract import check_outputs, model_name
from ..results import json_safe
from ..run_folders import LAST_CHECKPOINT    # the state after the last finished epoch; deleted when fit returns
from .hardware import autocast, check_precision
from .host_memory import keep_freed_memory
from .loss_checks import check_epoch_losses, check_first_losses, check_last_batch
from .scored import float32_pred, warn_if_constant
from .selection import improved, split_loss
# trainer_config is its own module, without torch: a sweep checks its configs before torch is imported
from .trainer_config import check_accumulation, check_trainer_config
from .training_state import load_training_state, replace_in_run_folder, save_training_state

log = logging.getLogger("mmsa_atsuko")


@dataclass
class SplitEval:
    metrics: dict                 # compute_metrics(...) plus 'Loss' (mean task loss)
    pred: np.ndarray | None = None
    label: np.ndarray | None = None
    ids: list | None = None
    export: dict = field(default_factory=dict)


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    valid: dict                   # valid metrics of the best epoch
    test: SplitEval | None        # test metrics and per-sample outputs of the best checkpoint (None: test=False)
    history: list                 # per epoch: train losses, valid metrics, the lr it trained with
    steps_per_s: float = math.nan  # training batches per second of the training passes this call ran


def build_optimizer(model, config) -> torch.optim.Optimizer:
    """Adam over named parameter groups: the model's `param_groups(config)` or one group."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(config)
        seen = [id(p) for g in groups for p in g["params"]]
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        if len(seen) != len(set(seen)) or set(seen) != trainable:
            raise RuntimeError(f"{model_name(model)}.param_groups must cover every trainable "
                               "parameter exactly once")
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    # The fused kernel updates all of a group's tensors in one pass: on CPU it is ~5x faster
    # than the default for-each Adam on TFN's 9M-weight fusion layer (bench/README.md).
    return torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def clip_gradients(model, config) -> None:
    """Clip the gradients as `grad_clip` and `grad_clip_mode` say (MMSA: by value or norm); none without grad_clip."""
    if config.grad_clip is not None:
        params = [p for p in model.parameters() if p.grad is not None]
        if config.grad_clip_mode == "value":
            torch.nn.utils.clip_grad_value_(params, config.grad_clip)
        else:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)


def step_and_clear(optimizer) -> None:
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def clip_and_step(model, optimizer, config) -> None:
    """The end of a gradient-accumulation group under `grad_accum_rule: sum`: clip, step, clear."""
    clip_gradients(model, config)
    step_and_clear(optimizer)


class SplitOutputs:
    """A split's per-sample outputs, gathered batch by batch in file order: what `evaluate(collect=True)` gives
    (`SplitEval`), and what explain makes of `analysis.forward_split`'s outputs (its modality_weights.csv is
    predictions_test.csv's numbers to the bit). Kept on the model's device until the split is done: one transfer
    at the end instead of a GPU sync per batch. `export`: keep the model's `export` tensors too."""

    def __init__(self, export: bool):
        self.preds, self.labels, self.exports = [], [], {} if export else None

    def add(self, outputs: dict, batch: dict) -> None:
        self.preds.append(outputs["pred"].float())
        self.labels.append(batch["label"])
        if self.exports is not None:
            for key, value in (outputs.get("export") or {}).items():
                self.exports.setdefault(key, []).append(value.float())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(pred, label) of every sample, on the CPU."""
        return torch.cat(self.preds).cpu().numpy(), torch.cat(self.labels).cpu().numpy()

    def split_eval(self, metrics: dict, ids, arrays: tuple | None = None) -> SplitEval:
        """`SplitEval` of the split whose sample ids are `ids`; `arrays`: `arrays()`, made already."""
        pred, label = self.arrays() if arrays is None else arrays
        export = {key: torch.cat(values).cpu().numpy() for key, values in (self.exports or {}).items()}
        return SplitEval(metrics, pred, label, list(ids), export)


@torch.no_grad()
def evaluate(model, split, dataset: str, batch_size: int, collect: bool = False,
             precision: str = "fp32", loss_rule: str = "exact", on_batch=None) -> SplitEval:
    """Metrics of `model` on `split` in file order; with `collect`, the per-sample outputs too.
    `loss_rule`: how 'Loss' is made of the batches' losses (selection.py; the config's `valid_loss` on valid).
    `on_batch()` is called after each batch (explain counts its progress so)."""
    model.eval()
    # The loss is summed in float64, as float() per batch did; the outputs stay on the device (SplitOutputs).
    gathered, losses, sizes = SplitOutputs(export=collect), [], []
    for batch in split.batches(batch_size):
        with autocast(split.device, precision):
            outputs = float32_pred(model(batch))
            task = model.loss(outputs, batch)["task"]
        losses.append(task.double())
        sizes.append(len(batch["id"]))
        gathered.add(outputs, batch)
        if on_batch is not None:
            on_batch()
    pred, label = arrays = gathered.arrays()
    metrics = compute_metrics(dataset, pred, label)
    metrics["Loss"] = split_loss(losses, sizes, loss_rule)
    return gathered.split_eval(metrics, split.ids, arrays) if collect else SplitEval(metrics)


def _write_json(value, f) -> None:
    """`value` as JSON to the binary file `f`, NaN (an undefined Corr) as null, as the run record has it."""
    f.write(json.dumps(json_safe(value), indent=1, allow_nan=False).encode())


def train_epoch(model, train, optimizer, generator, config, *, epoch: int, precision: str, spec,
                check_contract: bool, show: bool, last_loss: float | None) -> dict:
    """One pass over `train` (on the device) in the order `generator` draws: forward, loss and backward per
    batch, an optimizer step per `grad_accum` batches. Returns the epoch's mean loss terms, read from the device
    once, at the end; TrainingError when one is not finite. `check_contract`: this is the fit's first pass,
    whose first batch is held to the model contract. `show`: a progress bar, with the `last_loss` of the
    previous epoch (reading this epoch's would stall a GPU every few steps)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    n_batches = train.num_batches(config.batch_size)
    sums, seen = {}, 0
    first_bad = torch.zeros((), dtype=torch.long, device=train.device)    # step of the first non-finite total, 0: none
    bar = tqdm(train.batches(config.batch_size, shuffle=True, generator=generator), total=n_batches,
               desc=f"epoch {epoch}", leave=False, disable=not show, dynamic_ncols=True,
               postfix=None if last_loss is None else {"last epoch loss": f"{last_loss:.4f}"})
    for i, batch in enumerate(bar, start=1):
        with autocast(train.device, precision):
            outputs = model(batch)
            if check_contract:     # the fit's first batch, once: what forward returned, before loss reads it
                check_outputs(model, outputs, len(batch["id"]), spec)
            outputs = float32_pred(outputs)
            losses = model.loss(outputs, batch)
        if check_contract:         # and what loss returned, finite on a fresh run's initial parameters
            check_first_losses(model, losses, n_batches, initial=epoch == 1)
            check_contract = False
        # Noted on the device (no sync per step), read once the epoch is done.
        first_bad = torch.where((first_bad == 0) & ~torch.isfinite(losses["total"].detach()), i, first_bad)
        # No division by grad_accum: MMSA and EMOE sum the micro-batch gradients.
        losses["total"].backward()
        if config.grad_accum_rule == "mmsa":
            # MMSA's and EMOE's loops: the running sum clipped after every backward; an epoch's last partial
            # group never steps (the zero_grad above clears it as the next epoch starts).
            clip_gradients(model, config)
            if i % config.grad_accum == 0:
                step_and_clear(optimizer)
        elif i % config.grad_accum == 0 or i == n_batches:      # the last partial group steps too
            clip_and_step(model, optimizer, config)
        if hasattr(model, "on_train_batch_end"):
            model.on_train_batch_end(batch, outputs)
        n = len(batch["id"])
        seen += n
        for name, value in losses.items():
            if torch.is_tensor(value) and value.dim() == 0:
                # Summed on the device (in fp32 under bf16 autocast), read once after the epoch.
                sums[name] = sums.get(name, 0.0) + value.detach().float() * n
    train_losses = {k: float(v) / seen for k, v in sums.items()}      # the first float() waits for the GPU
    check_epoch_losses(model, train_losses, first_bad, epoch, n_batches, config.grad_accum)
    return train_losses


@contextlib.contextmanager
def subnormals_flushed():
    """Subnormal floats flushed to zero while training, and the caller's mode given back after.

    A gradient that enters an LSTM at one frame per sample decays over hundreds of frames into
    subnormal floats, which x86 multiplies ~20x slower: MISA's and Self-MM's audio/vision LSTM
    backwards took 4-5x longer on the CPU. Flushing them changed no metric of any model in our
    checks (bench/README.md, "Subnormal floats"); it is a no-op on the GPU. The mode is the thread's
    FPU state, which NumPy shares: left on, it flushed the caller's own arithmetic after `fit`
    returned (a notebook's, a later metric's), so it is restored. torch has no getter for it: a
    subnormal reads back as 0 exactly while it is on."""
    flushing = torch.tensor([1e-39]).item() == 0.0        # float32's smallest normal is 1.18e-38
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(flushing)


@subnormals_flushed()
def fit(model, data, config, *, device: torch.device, seed: int, run_dir: Path | None = None,
        progress: bool = True, resume: bool = False, on_epoch=None, precision: str = "fp32",
        test: bool = True) -> FitResult:
    """Train `model` on `data` (a Dataset) and test its best-valid checkpoint once (`test=False`:
    never touch the test split, as a tuning trial must not; `FitResult.test` is then None).

    `resume`: continue from `run_dir`'s last.pt (the model built and seeded as for the first
    start). `on_epoch(entry)` is called with each epoch's history entry once it is complete.
    `precision="bf16"`: forward and loss under bf16 autocast (weights and optimizer stay fp32; `pred`, the loss
    and the metrics are float32: scored.py).

    The step (`train_epoch`) reads nothing back from the device: loss terms are summed there and read once per
    epoch, so a GPU runs ahead of the host. The splits are moved to the device once, here."""
    keep_freed_memory()      # CPU steps stop re-faulting their big activations (host_memory.py)
    dataset = data.spec.name
    check_trainer_config(config, dataset)
    check_last_batch(model, len(data.train), config.batch_size)
    check_accumulation(len(data.train), config, f"{model_name(model)} on {dataset}")
    check_precision(precision)
    key_eval = config.key_eval
    eval_bs = config.eval_batch_size or config.batch_size
    model.to(device)
    train, valid = data.train.to(device), data.valid.to(device)
    minimize = key_eval == "Loss" or lower_is_better(key_eval)

    if hasattr(model, "on_fit_start"):
        model.on_fit_start(train)
    optimizer = build_optimizer(model, config)
    scheduler = None
    if config.scheduler == "plateau":
        # On the valid loss whatever `key_eval` selects the model by: MMSA, EMOE, MIntRec's own
        # trainer and Atsuko (docs/atsuko.md §13) all step it on the loss, MIntRec while selecting by F1.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.scheduler_factor, patience=config.scheduler_patience)

    generator = torch.Generator().manual_seed(seed)        # batch order, independent of model RNG use
    n_batches = train.num_batches(config.batch_size)
    epoch, history, (best_value, best_epoch, best_state, best_valid) = 0, [], (None, 0, None, None)
    if resume:
        epoch, history, (best_value, best_epoch, best_state, best_valid) = load_training_state(
            Path(run_dir) / LAST_CHECKPOINT, model, optimizer, scheduler, generator, device)
        # Rounded as each epoch's line rounds it: 'best 0.4639929798492698' stood out among them.
        log.info("resumed after epoch %d (best %.4f at epoch %d)", epoch,
                 best_value if best_value is not None else float("nan"), best_epoch)
        if best_state is not None:    # a run killed just after writing best.pt has a later epoch's there
            replace_in_run_folder(Path(run_dir) / "best.pt", lambda f: torch.save(best_state, f))
    show = progress and sys.stderr.isatty()
    steps, train_seconds, last_loss = 0, 0.0, None
    # The stop rule is checked before each epoch: a run resumed after its last epoch goes straight to test.
    while epoch < config.max_epochs and epoch - best_epoch < config.early_stop:
        epoch += 1
        started = time.perf_counter()
        train_losses = train_epoch(model, train, optimizer, generator, config, epoch=epoch, precision=precision,
                                   spec=data.spec, check_contract=steps == 0, show=show, last_loss=last_loss)
        steps, train_seconds = steps + n_batches, train_seconds + time.perf_counter() - started
        last_loss = train_losses["total"]
        if hasattr(model, "on_epoch_end"):
            model.on_epoch_end(epoch)

        valid_metrics = evaluate(model, valid, dataset, eval_bs, precision=precision,
                                 loss_rule=config.valid_loss).metrics
        value = valid_metrics[key_eval]
        # The rates this epoch trained with, read before the scheduler sets the next epoch's.
        history.append({"epoch": epoch, "train": train_losses, "valid": valid_metrics,
                        "lr": [g["lr"] for g in optimizer.param_groups]})
        if on_epoch is not None:
            on_epoch(history[-1])
        if scheduler is not None:
            scheduler.step(valid_metrics["Loss"])
        if improved(value, best_value, minimize):
            best_value, best_epoch, best_valid = value, epoch, valid_metrics
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if run_dir is not None:
                replace_in_run_folder(Path(run_dir) / "best.pt", lambda f: torch.save(best_state, f))
        if run_dir is not None:    # every epoch, so a run that dies keeps its curves and can resume
            replace_in_run_folder(Path(run_dir) / "history.json", lambda f: _write_json(history, f))
            save_training_state(Path(run_dir) / LAST_CHECKPOINT, model, optimizer, scheduler, generator, device,
                                epoch, history, (best_value, best_epoch, best_state, best_valid))
        log.info("epoch %d  train %s  valid %s=%.4f  (best %.4f at epoch %d)", epoch,
                 " ".join(f"{k}={v:.4f}" for k, v in train_losses.items()), key_eval, value,
                 best_value if best_value is not None else float("nan"), best_epoch)

    if best_state is None:
        raise TrainingError(f"valid {key_eval} was NaN at every epoch; nothing to test")
    model.load_state_dict(best_state)
    # Test's Loss made as valid's: MMSA's trainers score both splits with one do_test.
    test_eval = (evaluate(model, data.test.to(device), dataset, eval_bs, collect=True, precision=precision,
                          loss_rule=config.valid_loss) if test else None)
    if test_eval is not None:
        warn_if_constant(test_eval.pred, "test", f"{model_name(model)} on {dataset}, seed {seed}",
                         data.spec.label_names)
    if run_dir is not None:
        (Path(run_dir) / LAST_CHECKPOINT).unlink(missing_ok=True)
    return FitResult(best_epoch, epoch, best_valid, test_eval, history,
                     steps / train_seconds if train_seconds > 0 else math.nan)

