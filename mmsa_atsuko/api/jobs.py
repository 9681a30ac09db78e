"""A job: one (model, dataset) pair resolved into its checked config and loaded data, and how lines name its runs.

`prepare_job` is the step a sweep runs too, in its driver's plan; `job_identity` is a run's identity in the store.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cache import synthetic_cache_dir
from ..config import config_hash, load_config, trainer_keys_apart
from ..data import load_dataset
from ..data.conditions import PLAIN, check_model_allows, label_suffix
from ..data.synthetic import ensure_synthetic
from ..errors import ToolkitError, UsageError
from ..metrics.names import metric_keys
from ..models.common.bert import bert_input_problem, check_bert_weights, reads_bert_tokens, shorter_texts
from ..models.build_budget import OverBudget, registration_budget
from ..registry import build_model, canonical_model_name
from ..results import mmsa_csv_path, run_identity, run_phrase
from ..training.model_card import bert_tokenizer, check_tokenizer
from ..training.hardware import free_host_memory
from ..training.loss_checks import check_last_batch
from ..training.trainer_config import check_accumulation, resolve_config

log = logging.getLogger("mmsa_atsuko")


@dataclass
class Job:
    """One (model, dataset) pair, resolved and loaded, ready to run its seeds. `trainer_overrides`: at a `--preset`,
    the trainer keys its config sets apart from the preset as the YAML reads now (`config.trainer_keys_apart`), which
    its records keep: a preset edited later does not change what its tables say of the run; None at the full
    config."""
    model: str
    config: dict
    data: object
    preset: str | None
    trainer_overrides: dict | None = None


def prepare_job(model, dataset, *, aligned, data_root, feature_path, synthetic, synthetic_size,
                preset, overrides, max_epochs, loaded: dict, condition=PLAIN, synthetic_recipe="standard") -> Job:
    """Resolve one (model, dataset) pair into a Job: its checked config and its data, loaded and
    validated, with the model built (on the meta device, `_model_to_check`) to surface model/data mismatches. Its
    config hash and data id (`data.spec.source`) are the run identity's, so a sweep plans with it.

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
    # The keys set apart from the preset, held against the YAML as it reads now, with the config: the records keep
    # them, and a preset edited after the run changes nothing of what its tables say.
    apart = None if preset is None else trainer_keys_apart(config, load_config(model, dataset, preset=preset))
    # MIntRec's raw text is tokenized (and encoded, for `text`) with the run's BERT, so its
    # copy is per BERT; MMSA pickles ship their tokens and ignore `pretrained`.
    key = (dataset, aligned, str(data_root), str(feature_path), config.pretrained if dataset == "mintrec" else None)
    if key not in loaded:
        loaded[key] = load_dataset(dataset, aligned=aligned, data_root=data_root, feature_path=feature_path,
                                   pretrained=config.pretrained)
        warn_of_undefined_corr(loaded[key])
    if condition != loaded[key].spec.condition:     # masked once per condition, shared by its jobs
        if (*key, condition) not in loaded:
            loaded[(*key, condition)] = loaded[key].under(condition)
        key = (*key, condition)
    data = loaded[key]
    # Built to surface model/data mismatches (task, missing text features, BERT path) now.
    built = _model_to_check(model, config, data.spec)
    check_last_batch(built, len(data.train), config.batch_size)       # before any run folder is made
    check_accumulation(len(data.train), config, f"{model} on {data.spec.name}")
    if hasattr(built, "check_training_data"):     # the model's own check of what it trains on (optional hook)
        built.check_training_data(data.spec)
    if data.spec.has_text_bert:     # model.json records its tokenizer: a file of it that cannot be read, now
        bert_tokenizer(config.pretrained)
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
    return Job(model, config, data, preset, apart)


def _model_to_check(model: str, config, spec) -> torch.nn.Module:
    """The model `prepare_job`'s checks look at, which read its modules, config and BERT config, never its values:
    built on the meta device (models/common/meta.py: no weight initialised, no basis computed; each seed's run builds
    its own after seeding), its BERT folder's weights loaded once as a real build loads them (`check_bert_weights`),
    so a folder they cannot come from stops the request as before. A model of your own whose build needs values
    (which the meta device has not) is built for real, as every model was."""
    try:
        with torch.device("meta"), _module_budget(model):
            built = build_model(model, config, spec)
    except ToolkitError:
        raise
    except Exception:
        return build_model(model, config, spec)
    _check_fits(model, built)
    check_bert_weights(built)
    return built


# A config's sizes have no upper bound of their own (`*dim*`, `*_layers`: [1, inf)), and a sweep file or preset may
# be anyone's: `-c post_fusion_dim=1000000` asked TFN for 4.4 TB (a traceback, a run folder left behind), 20000 for
# 88 GB, and `nlevels` of millions built layer after layer for hours. Real models register a few hundred
# tensors and modules (BERT-base about 400): MAX_MODULES is far past any.
MAX_MODULES = 1 << 16


# The (dataset name, data id, split) pairs whose undefined Corr this process has warned of: a sweep prepares a
# dataset's jobs again per group and a sensitivity sweep per value, and each printed the line again (3 times for 3
# values). A sweep's workers warn of none (`leave_data_warnings_to_driver`): its driver has, when it planned.
_CORR_WARNED: set = set()
_IN_SWEEP_WORKER = {"quiet": False}


def leave_data_warnings_to_driver() -> None:
    """Mark this process a sweep's worker: the driver warned of its data when it planned (`warn_of_undefined_corr`)."""
    _IN_SWEEP_WORKER["quiet"] = True


def warn_of_undefined_corr(data) -> None:
    """One warning line per valid or test split whose Corr no model can have: Pearson's r needs two samples of
    different labels, and a split of one sample (or of one label) printed `nan` in every run's table with no word of
    why. Such a split is scored still: its MAE and accuracies are defined. Once per process per (dataset name, data
    id, split), and never in a sweep's worker (`_CORR_WARNED`)."""
    if "Corr" not in metric_keys(data.spec.name) or _IN_SWEEP_WORKER["quiet"]:
        return
    for split in (data.valid, data.test):
        said = (data.spec.name, data.spec.source, split.name)
        if said in _CORR_WARNED:
            continue
        labels = split.tensors["label"]
        if len(labels) < 2:
            why = f"has {len(labels)} sample{'' if len(labels) == 1 else 's'}"
        elif bool((labels == labels[0]).all()):
            why = f"has one label for all its {len(labels)} samples ({float(labels[0]):g})"
        else:
            continue
        _CORR_WARNED.add(said)
        log.warning("%s: its %s split %s, so its Corr (Pearson's r, of 2 or more samples with different labels) "
                    "will read nan in every run; give the split more samples", data.spec.name, split.name, why)


@contextmanager
def _module_budget(model: str):
    """Stop a meta build that registers more than MAX_MODULES modules or tensors, as it goes (UsageError)."""
    try:
        with registration_budget(MAX_MODULES):
            yield
    except OverBudget as e:
        raise UsageError(f"the {model} this config describes has more than {MAX_MODULES:,} {e.kind} (real models "
                         f"have hundreds): check its sizes and layer counts (-c, the sweep file, the preset)") from None


def _check_fits(model: str, built: torch.nn.Module) -> None:
    """UsageError when the weights of the model `built` (on the meta device) alone exceed this machine's free memory.
    Every run builds them here first, whatever device then trains: the bound holds for a GPU run too. (A CPU run
    needs about four times that, with gradients and Adam's two moments; the sweep's --jobs sizing sees the rest.)"""
    values = sum(t.numel() for t in (*built.parameters(), *built.buffers()))
    need = sum(t.numel() * t.element_size() for t in (*built.parameters(), *built.buffers()))
    free = free_host_memory()
    if free is not None and need > free:
        raise UsageError(f"the {model} this config describes has {values:,} values, {need / 2**30:,.1f} GiB of "
                         f"weights alone, more than the {free / 2**30:,.1f} GiB of memory free here: check its sizes "
                         f"(-c, the sweep file, the preset)")

def job_identity(job: Job, seed: int) -> tuple:
    """The run identity (`results.run_identity`) of `job` trained with `seed`."""
    spec = job.data.spec
    return run_identity(job.model, spec.name, spec.aligned, seed, config_hash(job.config), spec.source,
                        spec.condition.key())


def job_mmsa_csv(job: Job, out) -> Path:
    """The MMSA CSV in `out` a run of `job` puts its row in (`results.mmsa_csv_path`), named from the fields of the
    record it will have (`results.ok_record`), so a call checks it before it trains."""
    spec = job.data.spec
    return mmsa_csv_path(out, [{"dataset": spec.name, "synthetic": spec.synthetic, "data": spec.source,
                                "aligned": spec.aligned, "split_sizes": dict(spec.split_sizes)}])


def job_phrase(job: Job, seed: int) -> str:
    """`job` trained with `seed` as the skip and wait lines name it (`results.run_phrase`)."""
    spec = job.data.spec
    return run_phrase(job.model, spec.name, spec.aligned, spec.condition.key(), seed)


def condition_label(spec) -> str:
    """The suffix of a run of `spec`'s protocol condition (`data.conditions.label_suffix`); a public name of api."""
    return label_suffix(spec.condition.key())
