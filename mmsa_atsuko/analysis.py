"""Analyses of trained runs: load a run's checkpoint, look inside Atsuko, re-test under corruptions.

The numbers computed here are what `plots.py` draws and what the CSVs next to each figure hold
(issue 7). Nothing here imports matplotlib.

- `load_run`: a run's record, config, dataset and model with its best checkpoint loaded.
- `explain_tables`: Atsuko's interpretability outputs (spec §13) as tables.
- `robustness_table`: test metrics under Gaussian noise, a zeroed modality and frame drops.
- `tsne_table`: t-SNE of the fused test features of the Atsuko ablation runs.
- `sensitivity_table`: key metric, mean and std over seeds, against one hyperparameter's value.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from easydict import EasyDict
from tqdm import tqdm

from .api import resolve_config
from .cache import synthetic_cache_dir
from .data import load_dataset
from .data.spec import Split
from .data.synthetic import ensure_synthetic
from .data.conditions import condition_of
from .data.safe_checkpoint import load_weights
from .data.synthetic_stress import recipe_kind
from .errors import DataError, UsageError
from .models.atsuko import ATSUKO_FAMILY
from .models.common.bert import reads_bert_tokens
from .registry import build_model
from .results import check_ok_record, headline_metric, ok_records, read_records, run_path
from .training.trainer import evaluate

# Modality order of the model outputs (L, V, A) and how figures and CSVs name them.
MODALITY_CODES = ("L", "V", "A")
MODALITY_NAMES = {"L": "text", "V": "vision", "A": "audio"}


@dataclass
class LoadedRun:
    record: dict
    config: EasyDict
    data: object           # data.spec.Dataset
    model: torch.nn.Module
    run_dir: Path

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def synthetic(self) -> bool:
        return bool(self.record.get("synthetic"))

    @property
    def eval_batch_size(self) -> int:
        return int(self.config.eval_batch_size or self.config.batch_size)


def find_record(results, run_id: str) -> dict:
    """The `ok` record of `run_id` in `<results>/runs.jsonl` (one-line error when there is none)."""
    records = read_records(Path(results))
    if not records:
        raise UsageError(f"no runs recorded in {Path(results) / 'runs.jsonl'} (give --results DIR)")
    matches = [r for r in records if r.get("run_id") == run_id and r.get("status") == "ok"]
    if not matches:
        raise UsageError(f"unknown run id {run_id!r}: no finished run of that id in {Path(results) / 'runs.jsonl'}")
    return check_ok_record(matches[-1])


def _load_run_data(record: dict):
    """The dataset the run was trained on; synthetic data is regenerated if its cache is gone."""
    path = record.get("data_path")
    if record.get("synthetic") and (not path or not Path(path).exists()):
        recipe = str(record["data"]).partition("synthetic:")[2]
        size = "full" if "-full-" in recipe else "small"
        path, _bert = ensure_synthetic(record["dataset"], synthetic_cache_dir(), size=size,
                                       aligned=bool(record["aligned"]), recipe=recipe_kind(recipe))
    if not path or not Path(path).exists():
        raise DataError(f"the data of run {record['run_id']} is gone: {path} does not exist")
    data = load_dataset(record["dataset"], aligned=bool(record["aligned"]), feature_path=path,
                        pretrained=record["config"].get("pretrained"))
    if data.spec.source != record["data"]:
        raise DataError(f"{path} is not the data run {record['run_id']} was trained on "
                        f"({data.spec.source} != {record['data']})")
    return data


def load_run(results="results", run_id: str | None = None, checkpoint=None, data_cache: dict | None = None) -> LoadedRun:
    """A trained run ready for analysis: model in eval() mode with `best.pt` loaded, on CPU.

    Give `run_id` (looked up in `<results>/runs.jsonl`) or `checkpoint` (a run folder, or its
    best.pt, as `predict --checkpoint` takes them; the folder's name is the run id). `data_cache`
    shares loaded datasets between runs.
    """
    if (run_id is None) == (checkpoint is None):
        raise UsageError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir():
            checkpoint = checkpoint / "best.pt"
        if not checkpoint.is_file():
            raise UsageError(f"checkpoint {checkpoint} not found")
        run_id = checkpoint.resolve().parent.name
    record = find_record(results, run_id)
    run_dir = run_path(results, record)     # inside --results, whatever the record says
    checkpoint = checkpoint or run_dir / "best.pt"
    if not Path(checkpoint).is_file():
        raise DataError(f"checkpoint missing for run {run_id}: {checkpoint} does not exist")
    key = (record["data"], record.get("data_path"))
    cache = {} if data_cache is None else data_cache
    if key not in cache:
        cache[key] = _load_run_data(record)
    data = cache[key].under(condition_of(record))      # a run under a protocol condition is re-tested under it
    config = EasyDict(record["config"])
    model = build_model(record["model"], config, data.spec)
    try:   # checked, then torch.load(weights_only=True): a checkpoint is tensors, never code
        model.load_state_dict(load_weights(checkpoint))
    except Exception as e:          # any unpickling or shape error: the file is not this run's weights
        raise DataError(f"checkpoint {checkpoint} is not the weights of run {run_id} "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    model.eval()
    return LoadedRun(record, config, data, model, run_dir)


@torch.no_grad()
def forward_split(run: LoadedRun, split, return_spectral: bool = False, with_loss: bool = False) -> list[dict]:
    """The model's outputs batch by batch over `split` in file order (eval mode, no masking)."""
    run.model.eval()
    outputs = []
    for batch in split.batches(run.eval_batch_size):
        # Only Atsuko knows the keyword; every model takes forward(batch).
        out = run.model(batch, return_spectral=True) if return_spectral else run.model(batch)
        if with_loss:
            out["loss_terms"] = run.model.loss(out, batch)
        out["batch"] = batch
        outputs.append(out)
    return outputs


def _cat(outputs, *path) -> np.ndarray:
    def pick(out):
        for key in path:
            out = out[key]
        return out
    return torch.cat([pick(o).float() for o in outputs]).numpy()


# ------------------------------------------------------------------------------------------
# explain (Atsuko only)
# ------------------------------------------------------------------------------------------
def require_atsuko(run: LoadedRun, what: str = "explain") -> None:
    if run.record["model"] not in ATSUKO_FAMILY:
        raise UsageError(f"{what} reads Atsuko's routers; run {run.run_id} is model {run.record['model']!r}, "
                         f"not atsuko")


def modality_weights_table(run: LoadedRun, feature_path=None) -> pd.DataFrame:
    """`id, w_T, w_A, w_V`: the run's modality weights on every test sample of its own data, or of
    the feature file `feature_path` (same dataset and sequence lengths as the run's)."""
    require_atsuko(run)
    test = run.data.test
    if feature_path is not None:
        test = load_dataset(run.record["dataset"], aligned=bool(run.record["aligned"]), feature_path=feature_path,
                            pretrained=run.record["config"].get("pretrained")).test
    weights = _cat(forward_split(run, test), "modality_weights")       # (N, 3), L V A
    return pd.DataFrame({"id": list(test.ids), "w_T": weights[:, 0], "w_A": weights[:, 2], "w_V": weights[:, 1]})


def _config_apart_from(config: dict, *keys: str) -> dict:
    """`config` without `keys` and `pretrained` (which names the same BERT in different ways)."""
    return {k: v for k, v in config.items() if k not in keys and k != "pretrained"}


SWITCHES = ("use_sbn", "use_mcm", "use_distill")


def find_partner_without_mcm(results, run: LoadedRun) -> str | None:
    """The latest run of the same data and seed whose config is this run's with the MCM switched
    off: every other key equal, so the two sets of weights differ by the MCM alone."""
    config = _config_apart_from(run.record["config"], "use_mcm", "use_distill")
    partners = [r for r in ok_records(read_records(Path(results)))
                if r.get("model") in ATSUKO_FAMILY
                and r["dataset"] == run.record["dataset"] and bool(r["aligned"]) == bool(run.record["aligned"])
                and r["data"] == run.record["data"] and r["seed"] == run.record["seed"]
                and not r["config"].get("use_mcm")
                and _config_apart_from(r["config"], "use_mcm", "use_distill") == config]
    return partners[-1]["run_id"] if partners else None


def explain_tables(run: LoadedRun, samples: int = 10, partner: LoadedRun | None = None) -> dict[str, pd.DataFrame]:
    """Atsuko's interpretability outputs (spec §13) as tables, one per figure.

    Keys: spectral_energy, band_components (first chosen sample), band_weights (test mean and
    the chosen samples), modality_weights_mcm (chosen samples, with and without the MCM when
    `partner` is given), mcm_target (q next to w; MCM runs only), modality_weight_distribution
    (every test sample). The chosen samples are the first `samples` test samples in file order.
    """
    require_atsuko(run)
    model, test = run.model, run.data.test
    if samples < 1:
        raise UsageError("--samples must be at least 1")
    samples = min(samples, len(test))
    outputs = forward_split(run, test, return_spectral=model.use_sbn, with_loss=model.use_mcm)
    ids = list(test.ids)
    weights = _cat(outputs, "modality_weights")                       # (N, 3), L V A
    tables = {}

    tables["modality_weight_distribution"] = pd.DataFrame(
        {"sample_id": ids, **{MODALITY_NAMES[m]: weights[:, i] for i, m in enumerate(MODALITY_CODES)}})

    rows = [_weight_row(ids[n], "with MCM" if model.use_mcm else "without MCM", weights[n]) for n in range(samples)]
    if partner is not None:
        partner_weights = _cat(forward_split(partner, partner.data.test), "modality_weights")
        if list(partner.data.test.ids) != ids:
            raise DataError(f"run {partner.run_id} was tested on other samples than {run.run_id}")
        rows += [_weight_row(ids[n], "without MCM", partner_weights[n]) for n in range(samples)]
    tables["modality_weights_mcm"] = pd.DataFrame(rows)     # modality_weights.csv is every test sample (cli explain)

    if model.use_mcm:
        q = _cat(outputs, "loss_terms", "q")
        tables["mcm_target"] = pd.DataFrame(
            [_weight_row(ids[n], "MCM target q", q[n]) for n in range(samples)]
            + [_weight_row(ids[n], "router weight w", weights[n]) for n in range(samples)])

    if model.use_sbn:
        num_bands = model.num_bands
        band_rows = []
        for m in MODALITY_CODES:
            band_weights = _cat(outputs, "band_weights", m)              # (N, K)
            band_rows.append({"sample_id": "test mean", "modality": MODALITY_NAMES[m],
                              **{f"band_{k}": band_weights[:, k].mean() for k in range(num_bands)}})
            band_rows += [{"sample_id": ids[n], "modality": MODALITY_NAMES[m],
                           **{f"band_{k}": band_weights[n, k] for k in range(num_bands)}} for n in range(samples)]
        tables["band_weights"] = pd.DataFrame(band_rows)

        energy_rows, component_rows = [], []
        first = outputs[0]
        for m in MODALITY_CODES:
            block = model.sbn[m].spectrum
            bounds = block.band_bounds.tolist()
            band_of = np.searchsorted(bounds, np.arange(block.length), side="right") - 1
            for j in range(block.length):
                energy_rows.append({"modality": MODALITY_NAMES[m], "frequency_index": j,
                                    "eigenvalue": float(block.eigvals[j]), "band": int(band_of[j]),
                                    "mean_energy": float(block.energy_mean[j])})
            # The sample's band signals X_k (K, T', d) on its most energetic feature channel.
            bands = first["band_components"][m][0]
            signal = first["features"][m][0]                              # X (T', d)
            channel = int(signal.pow(2).sum(0).argmax())
            for t in range(signal.shape[0]):
                component_rows.append({"sample_id": ids[0], "modality": MODALITY_NAMES[m], "channel": channel,
                                       "time_step": t, "signal": float(signal[t, channel]),
                                       **{f"band_{k}": float(bands[k, t, channel]) for k in range(num_bands)}})
        tables["spectral_energy"] = pd.DataFrame(energy_rows)
        tables["band_components"] = pd.DataFrame(component_rows)
    return tables


def _weight_row(sample_id, variant: str, values) -> dict:
    return {"sample_id": sample_id, "variant": variant,
            **{MODALITY_NAMES[m]: float(values[i]) for i, m in enumerate(MODALITY_CODES)}}


# ------------------------------------------------------------------------------------------
# robustness
# ------------------------------------------------------------------------------------------
NOISE_SNR_DB = (20.0, 10.0, 5.0, 0.0, -5.0)
FRAME_DROP_RATES = (0.1, 0.25, 0.5)
INPUT_KEY = {"text": "text", "vision": "vision", "audio": "audio"}


def _modality_tensor_key(modality: str, bert_text: bool) -> str:
    return "text_bert" if modality == "text" and bert_text else modality


def corrupt_split(split, corruption: str, modality: str, level: float, seed: int = 0, bert_text: bool = False):
    """A copy of `split` with one modality corrupted; the other tensors are shared, not copied.

    noise:      x + N(0, s^2) on the sample's real frames, s^2 = (mean x^2 over those frames) /
                10^(SNR/10), level = SNR in dB; padded frames stay as they are;
    zero:       the modality's features set to 0 (BERT text: every token [PAD] but [CLS]);
    frame_drop: each time step zeroed independently with probability `level`.
    The draws come from a generator seeded with `seed`, so a table is reproducible.
    """
    generator = torch.Generator().manual_seed(seed)
    key = _modality_tensor_key(modality, bert_text)
    x = split.tensors[key]
    if key == "text_bert":
        if corruption != "zero":
            raise UsageError(f"{corruption} needs text features; this run's text is BERT token ids")
        corrupted = x.clone()
        corrupted[:, 0] = 0                              # token ids -> [PAD]
        corrupted[:, 1] = 0                              # attention mask off ...
        corrupted[:, 1, 0] = 1                           # ... but for the [CLS] position
        corrupted[:, 2] = 0
    elif corruption == "noise":
        # Over the sample's real frames only: padding would dilute the signal power (a third of
        # MOSI's frames are padding, so "0 dB" was 2.3 dB on the real ones), and noise in the
        # padding is not noise in the signal (Atsuko's spectral bands read padded frames).
        real = split.tensors[f"{key}_mask"].unsqueeze(-1).to(x.dtype)         # (N, T, 1)
        frames = real.sum(dim=1, keepdim=True).clamp(min=1) * x.shape[-1]
        power = (x.float().pow(2) * real).sum(dim=(1, 2), keepdim=True) / frames
        std = (power / 10 ** (level / 10)).sqrt()
        corrupted = x + std * torch.randn(x.shape, generator=generator).to(x.dtype) * real
    elif corruption == "zero":
        corrupted = torch.zeros_like(x)
    elif corruption == "frame_drop":
        keep = torch.rand(x.shape[:2], generator=generator) >= level
        corrupted = x * keep.unsqueeze(-1).to(x.dtype)
    else:
        raise ValueError(f"unknown corruption {corruption!r}")
    return Split(split.name, {**split.tensors, key: corrupted}, split.ids)


def robustness_table(run: LoadedRun, snr_db=NOISE_SNR_DB, drop_rates=FRAME_DROP_RATES,
                     progress: bool = True) -> pd.DataFrame:
    """Test metrics of `run` clean and under each corruption, one modality at a time.

    Columns: run_id, model, corruption (clean | noise | zero | frame_drop), modality, level,
    level_unit, then every metric. The clean row is the test split itself, evaluated as training did.
    A progress bar (on a terminal) counts the test passes, naming the condition under test.
    """
    dataset, test = run.data.spec.name, run.data.test
    rows = []
    bert_text = reads_bert_tokens(run.model)
    passes = 1 + sum(1 + (0 if m == "text" and bert_text else len(snr_db) + len(drop_rates))
                     for m in ("text", "vision", "audio"))
    bar = tqdm(total=passes, desc=f"robustness {run.run_id}", unit="test", disable=None if progress else True)

    def add(corruption, modality, level, unit, split):
        bar.set_postfix_str(f"{corruption} {modality} {level:g}", refresh=False)
        metrics = evaluate(run.model, split, dataset, run.eval_batch_size).metrics
        rows.append({"run_id": run.run_id, "model": run.record["model"], "corruption": corruption,
                     "modality": modality, "level": level, "level_unit": unit, **metrics})
        bar.update()

    add("clean", "none", 0.0, "", test)
    for modality in ("text", "vision", "audio"):
        # BERT token ids take no noise and have no frames to drop: only zeroing applies to them.
        token_ids = modality == "text" and bert_text
        if not token_ids:
            for snr in snr_db:
                add("noise", modality, float(snr), "SNR dB", corrupt_split(test, "noise", modality, snr))
        add("zero", modality, 1.0, "", corrupt_split(test, "zero", modality, 1.0, bert_text=token_ids))
        if not token_ids:
            for rate in drop_rates:
                add("frame_drop", modality, float(rate), "drop rate",
                    corrupt_split(test, "frame_drop", modality, rate))
    bar.close()
    return pd.DataFrame(rows)


@torch.no_grad()
def predictions(run: LoadedRun, split) -> np.ndarray:
    return _cat(forward_split(run, split), "pred")


# ------------------------------------------------------------------------------------------
# t-SNE over the ablation variants
# ------------------------------------------------------------------------------------------
def variant_name(config: dict) -> str:
    """Table 4's row name of an Atsuko-family config."""
    sbn, mcm = bool(config.get("use_sbn")), bool(config.get("use_mcm"))
    return {(False, False): "base (no SBN, no MCM)", (True, False): "+SBN", (False, True): "+MCM",
            (True, True): "full Atsuko (SBN + MCM)"}[(sbn, mcm)]


VARIANT_ORDER = ("base (no SBN, no MCM)", "+SBN", "+MCM", "full Atsuko (SBN + MCM)")


def ablation_runs(results, dataset: str | None = None, seed: int | None = None,
                  aligned: bool = False) -> dict[str, str]:
    """variant name -> run id: Atsuko-family runs on `dataset` (default: that of the latest one)
    at the `aligned` flag, and `seed` if given, that differ only in the Table 4 switches.

    Runs are grouped by data file and config apart from the switches, so panels never mix
    aligned with unaligned data, synthetic with real, or a hyperparameter variant (a
    sensitivity run) with the defaults. The group with the most variants is chosen (ties: the
    one holding the latest run), and in it each variant's latest run.
    """
    records = [r for r in ok_records(read_records(Path(results))) if r.get("model") in ATSUKO_FAMILY
               and bool(r["aligned"]) == aligned]
    if dataset is None and records:
        dataset = records[-1]["dataset"]
    groups: dict[str, dict[str, tuple[int, dict]]] = {}        # config -> variant -> (position, record)
    for position, r in enumerate(records):
        if r["dataset"] == dataset and (seed is None or r["seed"] == seed):
            key = json.dumps([r["data"], r["seed"] if seed is not None else None,
                              _config_apart_from(r["config"], *SWITCHES)], sort_keys=True, default=str)
            groups.setdefault(key, {})[variant_name(r["config"])] = (position, r)   # later records win
    if not groups:
        raise UsageError(f"no Atsuko runs{f' on {dataset}' if dataset else ''}{' aligned' if aligned else ''}"
                         f"{f' with seed {seed}' if seed is not None else ''} in {Path(results) / 'runs.jsonl'}")
    chosen = max(groups.values(), key=lambda variants: (len(variants), max(p for p, _ in variants.values())))
    return {name: chosen[name][1]["run_id"] for name in VARIANT_ORDER if name in chosen}


def sentiment_class(labels: np.ndarray) -> np.ndarray:
    """Regression labels binned as MMSA's 3 classes: negative (< 0), neutral (0), positive (> 0)."""
    return np.where(labels < 0, "negative", np.where(labels > 0, "positive", "neutral"))


def tsne_table(runs: dict[str, LoadedRun], seed: int = 0) -> pd.DataFrame:
    """The 2-D t-SNE (sklearn, `random_state=seed`) of each variant's fused test features c_proj."""
    from sklearn.manifold import TSNE
    rows = []
    for variant, run in runs.items():
        outputs = forward_split(run, run.data.test)
        features = _cat(outputs, "c_proj")
        labels = _cat(outputs, "batch", "label") if run.data.spec.task == "regression" else None
        perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
        embedded = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(features)
        if labels is not None:
            classes = sentiment_class(labels)
        else:
            names = run.data.spec.label_names
            classes = [names[int(c)] if names else str(int(c)) for c in torch.cat([o["batch"]["label"] for o in outputs])]
        rows += [{"variant": variant, "run_id": run.run_id, "sample_id": sid, "label_class": cls,
                  "tsne_1": float(a), "tsne_2": float(b)}
                 for sid, cls, (a, b) in zip(run.data.test.ids, classes, embedded)]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# sensitivity
# ------------------------------------------------------------------------------------------
SENSITIVITY_PARAMS = {          # the paper's Fig. 3: parameter -> default grid
    "lambda_ent": (0.0, 0.5, 1.0, 2.0),
    "band_mask_rate": (0.0, 0.1, 0.2, 0.3),
    "lambda_comp": (0.0, 0.05, 0.1, 0.2),
    "lambda_distill": (0.0, 0.05, 0.1, 0.2),
}
PARAM_LABELS = {"lambda_ent": "entropy weight λ_ent", "band_mask_rate": "band mask rate p",
                "lambda_comp": "complementarity weight λ_comp", "lambda_distill": "distillation weight λ_d"}


def _numbers_first(value) -> tuple:
    """Sort key: numbers in order, then anything else by its repr."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, repr(value))


def _nearest_runs_hint(records: list, wanted: dict, param: str) -> str:
    """Why no stored run matched: `records` are the runs of the right model, dataset, layout, data
    kind and seeds; say which `param` values those with the wanted config have, or else in which
    config keys the closest run differs (another --preset, --max-epochs or -c)."""
    if not records:
        return " (no stored run of this model, dataset, layout, data kind and these seeds at all)"

    def differing(r):
        config = _config_apart_from(r["config"])
        return sorted(k for k in set(config) | set(wanted) if k != param and config.get(k) != wanted.get(k))
    same_config = sorted({r["config"].get(param) for r in records if not differing(r)}, key=_numbers_first)
    if same_config:
        return f"; the runs of this config have {param} = {', '.join(map(repr, same_config))}"
    keys = min((differing(r) for r in records), key=len)
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    return (f"; the closest stored run differs in {shown}: give the --preset, --max-epochs and -c values "
            f"it was trained with")


def sensitivity_table(results, model: str, dataset: str, param: str, values, seeds, aligned: bool = False,
                      synthetic: bool | None = None, preset: str | None = None,
                      max_epochs: int | None = None) -> pd.DataFrame:
    """Key metric mean and sample std over seeds for each value of `param`, read from the store.

    A run counts when its model, dataset, aligned flag and seed match and its config is the
    model's config (`preset`, `max_epochs`) with `param=value` and nothing else changed: the run
    the sweep made with `-c param=value`, not one of another parameter's sweep that happens to
    hold this value.
    """
    records = [r for r in ok_records(read_records(Path(results))) if r["model"] == model
               and r["dataset"] == dataset and bool(r["aligned"]) == aligned and r["seed"] in seeds
               and (synthetic is None or bool(r["synthetic"]) == synthetic)]
    rows = []
    for value in values:
        wanted = _config_apart_from(resolve_config(model, dataset, preset=preset, overrides=[(param, value)],
                                                   max_epochs=max_epochs))
        matching = {}
        for r in records:                  # later records win per seed
            if _config_apart_from(r["config"]) == wanted:
                matching[r["seed"]] = r
        if not matching:
            raise DataError(f"no finished {model} run on {dataset} with {param}={value} in {results}/runs.jsonl"
                            f"{_nearest_runs_hint(records, wanted, param)}")
        metric = headline_metric(dataset)
        # None (an undefined metric, stored as null) and a missing one are NaN, not a KeyError
        scores = np.array([m["metrics"].get(metric) for m in matching.values()], dtype=float)
        rows.append({"param": param, "value": float(value), "metric": metric, "mean": scores.mean(),
                     # one seed has no spread: undefined (empty in the CSV, no error bar), as the leaderboard's "–"
                     "std": scores.std(ddof=1) if len(scores) > 1 else math.nan, "seeds": len(scores),
                     "run_ids": " ".join(m["run_id"] for m in matching.values()),
                     "synthetic": any(m["synthetic"] for m in matching.values())})
    return pd.DataFrame(rows)
