"""The datasets table: every dataset's facts, from the `datasets:` block of configs/datasets.yaml and
of the files named in $MMSA_ATSUKO_DATASETS (`--datasets FILE`), each block checked as it is read."""
from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path

from ..atomic import not_a_file
from ..errors import UsageError
from ..registry import CONFIG_DIR
from .checks import _type_name
from .yaml_files import read_yaml


# Your own datasets: YAML files with a `datasets:` block each, os.pathsep-separated. `--datasets
# FILE` on the command line sets it, so that sweep workers (other processes) see the same table.
DATASETS_ENV = "MMSA_ATSUKO_DATASETS"
DATASET_REQUIRED = {"format", "task", "metrics", "headline", "language", "files", "config"}
DATASET_OPTIONAL = {"label_range", "num_classes", "label_names", "sha256", "download", "unimodal_labels",
                    "max_seq_lens", "real_sizes", "real_shapes", "real_class_counts"}
# The metric sets, and every key `metrics.compute_metrics` returns for each, in MMSA's order
# (`Mult_acc_3` for MOSI/MOSEI is computed by MMSA but not returned; we return it last). The
# names live here, where a dataset's `metrics` and `headline` are checked against them; what each
# computes lives in metrics/ (one module per set), which reads this table.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "mosi": ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
             "Mult_acc_5", "Mult_acc_7", "MAE", "Corr", "Mult_acc_3"),
    "sims": ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"),
    # MIntRec's own names are acc, f1, prec, rec (its CSV has them x100, 2 decimals).
    "mintrec": ("acc", "f1", "precision", "recall"),
}
DATASET_CHOICES = {"format": ("mmsa", "mintrec"), "task": ("regression", "classification"),
                   "metrics": tuple(METRIC_KEYS), "language": ("en", "cn")}
# The metric sets that score each task: the mosi and sims sets read a score (metrics/), mintrec's a class id.
TASK_METRICS = {"regression": ("mosi", "sims"), "classification": ("mintrec",)}
# Facts that only the MIntRec loader reads (data/mintrec/): in an MMSA-format block they would do nothing.
MINTREC_ONLY = ("num_classes", "label_names", "max_seq_lens", "real_class_counts")
SPLITS, MODALITY_NAMES = ("train", "valid", "test"), ("text", "audio", "vision")     # of real_sizes, real_shapes
# A dataset's name becomes part of file names (run folders `<model>-<dataset>-s<seed>-...`, comparison CSVs) and
# of run ids (results.RUN_ID): a name holding '/' or '..' wrote a run's files outside the results folder.
DATASET_NAME = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
MAX_DATASET_NAME = 64       # what a model.json's `dataset` may hold
MAX_NAME_BYTES = 255        # a file or folder name of a `files:` entry: NAME_MAX of Linux's and macOS's file systems
MAX_FILES_ENTRY = 1024      # a whole `files:` entry; the shipped ones are under 50 characters


def datasets_table(config_dir: Path = CONFIG_DIR) -> dict:
    """name -> facts of every dataset: configs/datasets.yaml's, then those of the files named in
    $MMSA_ATSUKO_DATASETS (a later file may not redefine a name). Each block is checked."""
    table = dict(read_yaml(config_dir / "datasets.yaml")["datasets"])
    for extra in filter(None, os.environ.get(DATASETS_ENV, "").split(os.pathsep)):
        blocks = _own_file(extra).get("datasets")
        if not isinstance(blocks, dict) or not blocks:
            raise UsageError(f"dataset file {extra} has no `datasets:` block; see configs/datasets.yaml for one")
        for name, facts in blocks.items():
            _check_name(name, extra)
            if str(name).lower() in table:
                raise UsageError(f"dataset file {extra} defines {name!r} again; pick another name")
            table[str(name).lower()] = facts
    for name, facts in table.items():
        _check_dataset(name, facts)
    return table


def _own_file(extra: str) -> dict:
    """A file of your own datasets named in $MMSA_ATSUKO_DATASETS, read. One that is not there says where its name
    came from, as a missing model folder does: set by hand, the variable was never named ("config file ... not
    found"). --datasets FILE checks its file before it sets the variable (cli.take_datasets_files)."""
    what = not_a_file(extra)
    if what:
        raise UsageError(f"dataset file {extra} {what} (--datasets FILE or ${DATASETS_ENV}: a YAML file with a "
                         f"`datasets:` block like configs/datasets.yaml's)")
    return read_yaml(Path(extra))


def _check_name(name, file) -> None:
    """A dataset name of a `--datasets` file: letters, digits, '_' and single '-' between them, at most
    MAX_DATASET_NAME characters (names are looked up lowercase)."""
    text = str(name).lower()
    if len(text) > MAX_DATASET_NAME or not DATASET_NAME.fullmatch(text):
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise UsageError(f"dataset file {file}: dataset name {shown} is not a name: use letters, digits, '_' and "
                         f"'-' (at most {MAX_DATASET_NAME}), as its run folders and run ids are named by it")


def _check_dataset(name: str, facts) -> None:
    where = f"dataset {name!r}"
    if not isinstance(facts, dict):
        raise UsageError(f"{where}: its block must be a mapping of facts, got {_type_name(facts)}")
    missing, unknown = DATASET_REQUIRED - set(facts), set(facts) - DATASET_REQUIRED - DATASET_OPTIONAL
    if unknown:     # first: a misspelt required key (`metric:`) said only that the block lacks the right one
        lacks = f", and it lacks {', '.join(sorted(missing))}" if missing else ""
        raise UsageError(f"{where}: unknown key(s) {', '.join(_unknown_key(key) for key in sorted(map(str, unknown)))}"
                         f"{lacks}; known: {', '.join(sorted(DATASET_REQUIRED | DATASET_OPTIONAL))}")
    if missing:
        raise UsageError(f"{where} lacks {', '.join(sorted(missing))} (see the comment atop configs/datasets.yaml)")
    for key, choices in DATASET_CHOICES.items():
        if facts[key] not in choices:
            raise UsageError(f"{where}: {key} must be one of {', '.join(choices)}, got {facts[key]!r}")
    _check_headline(where, facts)
    _check_format(name, where, facts)
    files = facts["files"]
    if not isinstance(files, dict) or not files or set(files) - {"aligned", "unaligned"} \
            or not all(isinstance(v, str) and v for v in files.values()):
        raise UsageError(f"{where}: files must map aligned/unaligned to a path under the data root")
    for setting, path in files.items():
        _check_file_entry(where, setting, path)
    _check_real_layout(where, facts)
    if facts["task"] == "regression":
        low_high = facts.get("label_range")
        # Finite: a NaN bound fails every comparison, and an infinite one is no range the synthetic labels or the
        # output-range checks (a model's output_range against the labels) can use.
        if not (isinstance(low_high, list) and len(low_high) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in low_high) and low_high[0] < low_high[1]):
            raise UsageError(f"{where}: a regression dataset needs label_range: [low, high], two finite numbers "
                             f"with low < high, got {low_high!r}")
        # SIMS's metrics clip labels and predictions to [-1, 1] before everything, MAE and Corr included
        # (metrics/sims.py): wider labels would be scored on clipped values without a word.
        if facts["metrics"] == "sims" and (low_high[0] < -1 or low_high[1] > 1):
            raise UsageError(f"{where}: metrics sims clip labels to [-1, 1] (MAE and Corr too), but label_range is "
                             f"{low_high}: use metrics: mosi, or rescale the labels into [-1, 1]")
    elif not (isinstance(facts.get("num_classes"), int) and facts["num_classes"] >= 2):
        raise UsageError(f"{where}: a classification dataset needs num_classes (an integer >= 2)")


def _check_file_entry(where: str, setting: str, path: str) -> None:
    """A `files:` entry is a path relative to the data root, or an absolute path to a file of your own (read as
    --feature-path reads one; `run.py download` refuses it, as a download writes under the data root only). A
    relative one may not leave the data root: `../x.pkl` read (and a download wrote) beside it, not under it.
    A NUL byte stopped the first look at the file in a ValueError traceback, and a backslash is a folder separator
    on Windows only, so the same file named a folder on one system and a file name on another. A name past
    MAX_NAME_BYTES stopped `run.py download` and its --check in an OSError (ENAMETOOLONG) traceback."""
    bad = ("holds a NUL byte" if "\0" in path else "holds a backslash (write '/' between folders)" if "\\" in path
           else f"is longer than {MAX_FILES_ENTRY} characters" if len(path) > MAX_FILES_ENTRY
           else f"holds a name longer than {MAX_NAME_BYTES} bytes, which no file system takes"
           if any(len(part.encode(errors="surrogateescape")) > MAX_NAME_BYTES for part in path.split("/"))
           else "leaves the data root ('..')" if not os.path.isabs(path)
           and os.path.normpath(path).split(os.sep)[0] == os.pardir else None)
    if bad:
        raise UsageError(f"{where}: files: {setting} {path[:80]!r}{'...' if len(path) > 80 else ''} {bad}: give a "
                         f"path under the data root (or an absolute path to a file of your own)")


def _unknown_key(key: str) -> str:
    """An unknown key of a dataset block, with the known key closest to it where one is close."""
    close = difflib.get_close_matches(key, sorted(DATASET_REQUIRED | DATASET_OPTIONAL), n=1)
    return f"{key} (did you mean {close[0]}?)" if close else key


def _check_format(name: str, where: str, facts: dict) -> None:
    """What the block's loader can read. The MMSA loader reads `regression_labels` (data/mmsa_checks.py) and the
    MIntRec loader thuiar/MIntRec's folder with the `mintrec` block's facts, whichever block names it: a block of
    your own with `format: mintrec` read MIntRec's folder, one with `task: classification` stopped in a KeyError
    traceback, a regression scored with the mintrec set in a ValueError one, and `unimodal_labels: "no"` was true."""
    if facts["format"] == "mintrec" and name != "mintrec":
        raise UsageError(f"{where}: format mintrec is thuiar/MIntRec's own folder, read with the mintrec block's "
                         f"facts whatever block names it: a dataset of your own is format: mmsa "
                         f"(an MMSA feature pickle)")
    if facts["format"] == "mmsa" and facts["task"] != "regression":
        raise UsageError(f"{where}: format mmsa is read for its regression_labels, so its task must be regression "
                         f"(a classification dataset in MMSA's format is not supported)")
    if facts["metrics"] not in TASK_METRICS[facts["task"]]:
        raise UsageError(f"{where}: metrics {facts['metrics']} do not score a {facts['task']} task: use metrics: "
                         f"{' or '.join(TASK_METRICS[facts['task']])}")
    unread = [key for key in MINTREC_ONLY if key in facts] if facts["format"] == "mmsa" else []
    if unread:
        raise UsageError(f"{where}: {', '.join(unread)} {'is' if len(unread) == 1 else 'are'} read for MIntRec's "
                         f"folder only and would do nothing for an MMSA feature pickle: remove "
                         f"{'it' if len(unread) == 1 else 'them'}")
    if not isinstance(facts.get("unimodal_labels", False), bool):
        raise UsageError(f"{where}: unimodal_labels must be true or false, got {facts['unimodal_labels']!r}")
    sha256 = facts.get("sha256")
    if sha256 is not None and not (
            isinstance(sha256, dict) and isinstance(facts["files"], dict) and set(sha256) <= set(facts["files"])
            and all(isinstance(v, str) and len(v) == 64 and set(v) <= set("0123456789abcdef")
                    for v in sha256.values())):
        raise UsageError(f"{where}: sha256 must map a setting of its files (aligned, unaligned) to that file's "
                         f"SHA-256, 64 lowercase hex digits, got {sha256!r}")


def _check_real_layout(where: str, facts: dict) -> None:
    """`real_sizes` and `real_shapes`, which the synthetic generator copies at --size full and a download is capped
    and checked by (`real_layout`): malformed, they were taken for absent without a word, and a block of your own
    with `download: mmsa-drive` learnt of them only from `run.py download`, in a line that said not what to write."""
    sizes, shapes, settings = facts.get("real_sizes"), facts.get("real_shapes"), sorted(facts["files"])
    if sizes is not None and not (isinstance(sizes, dict) and set(sizes) == set(SPLITS)
                                  and all(_count(sizes[split]) for split in SPLITS)):
        raise UsageError(f"{where}: real_sizes must give the samples of each split, as real_sizes: {{train: 1284, "
                         f"valid: 229, test: 686}}, got {sizes!r}")
    if shapes is not None and not (
            isinstance(shapes, dict) and shapes and set(shapes) <= set(settings)
            and all(isinstance(by, dict) and set(by) == set(MODALITY_NAMES) and all(
                isinstance(pair, list) and len(pair) == 2 and all(map(_count, pair)) for pair in by.values())
                for by in shapes.values())):
        raise UsageError(f"{where}: real_shapes must give, for a setting of its files ({', '.join(settings)}), each "
                         f"modality's [padded length, feature dimension], as real_shapes: {{{settings[0]}: {{text: "
                         f"[50, 768], audio: [375, 5], vision: [500, 20]}}}}, got {shapes!r}")
    download = facts.get("download")
    if download is not None and download != "mmsa-drive":
        raise UsageError(f"{where}: download must be mmsa-drive (its files are in MMSA's published folder) or absent, "
                         f"got {download!r}")
    lacking = [s for s in settings if sizes is None or s not in (shapes or {})]
    if download and lacking:
        raise UsageError(f"{where}: download: mmsa-drive needs real_sizes and real_shapes of its "
                         f"{' and '.join(lacking)} file (a download's size cap, and without a published sha256 its "
                         f"check, come from them): add real_sizes: {{train: N, valid: N, test: N}} and real_shapes: "
                         f"{{{lacking[0]}: {{text: [L, D], audio: [L, D], vision: [L, D]}}}} (padded length, feature "
                         f"dimension), or remove download: MMSA's folder holds mosi, mosei, sims and simsv2 only")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_headline(where: str, facts: dict) -> None:
    """`headline` is the metric every table tests and every figure plots: it must be one its metric set
    computes, or runs train, a sweep reports `nan` for it and the leaderboard blames a --key-metric never given."""
    keys = METRIC_KEYS[facts["metrics"]]
    if facts["headline"] not in keys:
        raise UsageError(f"{where}: headline must be a metric of its metric set {facts['metrics']} "
                         f"({', '.join(keys)}), got {facts['headline']!r}")


def dataset_facts(name: str, config_dir: Path = CONFIG_DIR) -> dict:
    """The facts of dataset `name` (any case); one line naming the close ones when it is unknown."""
    table = datasets_table(config_dir)
    key = str(name).strip().lower()
    if key not in table:
        close = difflib.get_close_matches(key, table, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(table)} "
                         f"(your own: a block in a --datasets FILE; from Python, os.environ[{DATASETS_ENV!r}] = FILE)")
    return table[key]


def dataset_names(data_format: str | None = None) -> tuple[str, ...]:
    """Every dataset's name, or those of one format (mmsa | mintrec)."""
    return tuple(n for n, f in datasets_table().items() if data_format in (None, f["format"]))


def declared_in(name: str) -> str:
    """Where dataset `name`'s block is written, as a config error names that layer: the --datasets FILE that
    declares it, else datasets.yaml. An error in `mydata.config` blamed datasets.yaml, which has no mydata."""
    key = str(name).strip().lower()
    for extra in filter(None, os.environ.get(DATASETS_ENV, "").split(os.pathsep)):
        blocks = _own_file(extra).get("datasets")
        if isinstance(blocks, dict) and key in {str(n).lower() for n in blocks}:
            return extra
    return "datasets.yaml"


def own_dataset(name: str, config_dir: Path = CONFIG_DIR) -> bool:
    """Whether dataset `name` is one of your own: a block no configs/datasets.yaml holds (a --datasets FILE's), or a
    name no table read now knows (a leaderboard of its runs without --datasets). Its data is no published file."""
    return str(name).strip().lower() not in read_yaml(config_dir / "datasets.yaml")["datasets"]


def published_sha256(name: str, aligned: bool) -> str | None:
    """The SHA-256 MMSA's README publishes for dataset `name`'s aligned or unaligned file (its block's
    `sha256`; thuiar/MMSA:README.md), None where it publishes none (SIMSv2, MIntRec, your own)."""
    return (dataset_facts(name).get("sha256") or {}).get("aligned" if aligned else "unaligned")


def real_layout(name: str, setting: str) -> dict | None:
    """The real `setting` (aligned | unaligned) file of dataset `name` as its block describes it:
    {'split_sizes': {split: N}, 'seq_lens': {modality: padded length}, 'feature_dims': {modality: D}}
    from `real_sizes` and `real_shapes`; None where the block lacks them or holds them malformed.
    The synthetic generator copies it at --size full, and a download is checked and capped by it."""
    facts = dataset_facts(name)
    sizes, shapes = facts.get("real_sizes"), facts.get("real_shapes")
    try:
        return {"split_sizes": {s: int(sizes[s]) for s in ("train", "valid", "test")},
                "seq_lens": {m: int(shapes[setting][m][0]) for m in ("text", "audio", "vision")},
                "feature_dims": {m: int(shapes[setting][m][1]) for m in ("text", "audio", "vision")}}
    except (KeyError, IndexError, TypeError, ValueError):
        return None



def real_sizes_mismatch(name: str, split_sizes: dict, real_sizes: dict | None = None) -> str | None:
    """How a file whose splits hold `split_sizes` ({split: N}) differs from dataset `name`'s real file, whose splits
    hold `real_sizes` (default: its block's `real_sizes`): the first split whose count differs, as a clause; None where
    they agree or no real sizes are given. The one test of sizes: a download without a published sha256 is refused by
    it, and runs on such a file are not called real data (leaderboard) nor verified against the paper (verify)."""
    real = dataset_facts(name).get("real_sizes") if real_sizes is None else real_sizes
    if not isinstance(real, dict):
        return None
    for split in SPLITS:
        if split_sizes.get(split) != real.get(split):
            return (f"its {split} split has {split_sizes.get(split)} samples, the real {name} file's has "
                    f"{real.get(split)} (configs/datasets.yaml real_sizes)")
    return None
