"""Protocol conditions: missing frames, a dropped modality, a modality subset, and a run's identity under one.

A `Condition` is part of a run's identity (`results.run_identity`) and is applied once, at
load, to the tensors of all three splits (`Dataset.under`), so training, model selection and
the test all see the same condition. What each part does:

- `missing_rate` R (MMSA's TFR-Net protocol, `data_loader.generate_m`): each real frame of each
  modality is missing with probability R, independently. A missing audio/vision frame and a
  missing `text` feature row become zeros; a missing BERT token becomes [UNK] (id 100 in
  bert-base and in the synthetic vocab, as TFR-Net writes it) with its attention mask kept.
  In BERT-token text (the split holds `text_bert`: its mask makes the text lengths, and MMSA's
  TFR-Net masks only such text) [CLS] (position 0) and [SEP] (the last real token) are never
  missing; text without `text_bert` (GloVe rows, or any other per-word features) has no such
  rows, and its first and last words are missing as often as the others. Lengths and masks are
  unchanged: the frames are there, their content is not. The text mask is shared by `text`
  and `text_bert`, so both representations lose the same tokens. Runs stored before that rule
  spared the first and last rows of every text: their records carry no `text_spared` mark, and
  unless their data is known to be BERT text (synthetic, or a file MMSA publishes, where both rules
  spare the same rows) `condition_of` reads them as `older_text_missing`, and their key says so
  (`missing_rate=0.3,text_missing=older`), as for a dropped text below; their data is rebuilt
  under the rule they ran with (it is known, unlike the older dropped text's).
- `drop_modality` X: rate 1 for modality X (every real frame of X missing, as above; for text, every
  row of the `text` features, [CLS], [SEP] and padding included, see `masking._feature_rows_missing`). Runs
  stored before that rule zeroed fewer rows: their records carry no `text_rows` mark, `condition_of`
  reads them as `older_text_drop`, and their key says so (`drop=T,text_drop=older`), so they are never
  taken for, skipped as, or averaged with runs under today's dropped text, nor re-tested.
- `modalities` S (T, A, V, TA, TV, AV or TAV): a modality outside S is absent: it becomes an
  empty input, the same for every sample: all frames zero, length 1 and a mask on frame 0 only
  (BERT text: [CLS] [SEP] and padding, length 2). Unlike a dropped modality, nothing about it
  (not even its length) reaches the model. Only models that declare `modality_subsets` in
  their registration accept it (`check_model_allows`).

This module is what a condition is, how a record stores it and how it is read back; masking.py applies one to a
split's tensors (`condition_tensors`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import published_sha256
from ..errors import ToolkitError, UsageError
from ..model_names import model_meta
from .stamp import is_synthetic

LETTERS = {"T": "text", "A": "audio", "V": "vision"}
SUBSETS = ("T", "A", "V", "TA", "TV", "AV", "TAV")


@dataclass(frozen=True)
class Condition:
    missing_rate: float = 0.0
    drop_modality: str | None = None      # "T", "A" or "V"
    modalities: str = "TAV"
    older_text_drop: bool = False         # a drop=T record without the text_rows mark (see the docstring)
    older_text_missing: bool = False      # a missing-rate record without the text_spared mark (the docstring)

    @property
    def plain(self) -> bool:
        return self.key() == ""

    def key(self) -> str:
        """The condition's part of a run identity: "" for the plain condition (so records made
        before conditions existed stay the plain runs they are), else e.g. "missing_rate=0.3"."""
        parts = []
        if self.missing_rate:
            parts.append(f"missing_rate={self.missing_rate:g}")
        if self.older_text_missing:
            parts.append("text_missing=older")
        if self.drop_modality:
            parts.append(f"drop={self.drop_modality}")
        if self.older_text_drop:
            parts.append("text_drop=older")
        if self.modalities != "TAV":
            parts.append(f"modalities={self.modalities}")
        return ",".join(parts)

    def as_dict(self) -> dict:
        out = {"missing_rate": float(self.missing_rate), "drop_modality": self.drop_modality,
               "modalities": self.modalities}
        if self.drop_modality == "T" and not self.older_text_drop:   # tells today's dropped text from older ones
            out["text_rows"] = "all"
        if self.masks_text_at_missing_rate and not self.older_text_missing:   # ... and today's missing text
            out["text_spared"] = "bert_cls_sep"
        return out

    @property
    def masks_text_at_missing_rate(self) -> bool:
        """Whether the text's words go missing at `missing_rate` (the case whose spared rows changed)."""
        return bool(self.missing_rate) and "T" in self.modalities and self.drop_modality != "T"

    def rate(self, letter: str) -> float:
        return 1.0 if letter == self.drop_modality else float(self.missing_rate)


PLAIN = Condition()


OPTIONS = {"missing_rate": "--missing-rate", "drop_modality": "--drop-modality", "modalities": "--modalities"}


def label_suffix(key: str) -> str:
    """What follows a model's name for a run under the protocol condition `key` (`Condition.key()`):
    " [missing_rate=0.3]" in the lines, tables, CSV rows and figures that show it (MMSA-style rows name only the
    model); "" for the plain condition. The one spelling of it."""
    return f" [{key}]" if key else ""


def make_condition(missing_rate=0.0, drop_modality=None, modalities="TAV", names=OPTIONS) -> Condition:
    """A checked Condition; a bad value is a one-line UsageError naming it as `names` says (the command
    line's options by default; a sweep file's keys where its values came from one)."""
    rate_name, drop_name, subset_name = names["missing_rate"], names["drop_modality"], names["modalities"]
    try:
        rate = float(missing_rate)
    except (TypeError, ValueError):
        raise UsageError(f"{rate_name} must be a number in [0, 1), got {missing_rate!r}") from None
    if not 0.0 <= rate < 1.0:
        raise UsageError(f"{rate_name} must be in [0, 1), got {missing_rate!r} (to remove a whole modality "
                         f"use {drop_name} T|A|V)")
    if drop_modality is not None:
        drop_modality = str(drop_modality).upper()
        if drop_modality not in LETTERS:
            raise UsageError(f"{drop_name} must be T, A or V, got {drop_modality!r}")
    letters = str(modalities).upper()
    canonical = "".join(m for m in "TAV" if m in letters)
    if canonical not in SUBSETS or len(canonical) != len(letters):
        raise UsageError(f"{subset_name} must be one of {' '.join(SUBSETS)}, got {modalities!r}")
    if drop_modality and drop_modality not in canonical:
        raise UsageError(f"{drop_name} {drop_modality} drops a modality that {subset_name} {canonical} "
                         f"already leaves out")
    if drop_modality and len(canonical) == 1:
        raise UsageError(f"{drop_name} {drop_modality} with {subset_name} {canonical} leaves no modality")
    return Condition(rate, drop_modality, canonical)


def conditions(missing_rates=None, drop_modality=None, modalities=None, names=OPTIONS) -> list[Condition]:
    """Every combination of the asked rates, dropped modality and subsets (the sweep axis)."""
    rates = list(missing_rates) if missing_rates else [0.0]
    drops = list(drop_modality) if isinstance(drop_modality, (list, tuple)) else [drop_modality]
    subsets = [modalities] if isinstance(modalities, str) else list(modalities or ["TAV"])
    out = [make_condition(r, d, s, names) for s in subsets for d in drops for r in rates]
    return list(dict.fromkeys(out))


def condition_of(record: dict) -> Condition:
    """The condition a store record ran under (PLAIN for records that carry none)."""
    stored = record.get("condition") or {}
    if not isinstance(stored, dict):
        raise ValueError(f"condition must be a mapping, got {stored!r}")
    today = Condition(float(stored.get("missing_rate") or 0.0), stored.get("drop_modality") or None,
                      stored.get("modalities") or "TAV")
    return _with_older_marks(today, stored, record)


STORED_KEYS = {"missing_rate", "drop_modality", "modalities", "text_rows", "text_spared"}


def stored_condition_fault(stored) -> str | None:
    """What is wrong with a store record's `condition` block (as `as_dict` writes it; null or absent, a record from
    before conditions, is the plain one), or None: a value no `make_condition` makes reached the run identity, and
    the tables that print it, as it was (a drop_modality of '\\x1b[31m' or a newline)."""
    if stored is None:
        return None
    if not isinstance(stored, dict) or not set(stored) <= STORED_KEYS:
        return f"an object of {', '.join(sorted(STORED_KEYS))}"
    rate, drop, subset = stored.get("missing_rate"), stored.get("drop_modality"), stored.get("modalities", "TAV")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1):
        return "a missing_rate in [0, 1)"
    if drop is not None and drop not in tuple(LETTERS) or subset not in SUBSETS:
        return f"a drop_modality of T, A, V or null and modalities of {' '.join(SUBSETS)}"
    if stored.get("text_rows", "all") != "all" or stored.get("text_spared", "bert_cls_sep") != "bert_cls_sep":
        return "text_rows 'all' and text_spared 'bert_cls_sep' where given"
    try:
        make_condition(rate or 0.0, drop, subset)
    except UsageError as e:
        return f"a condition a run can have ({e})"
    return None


def folder_condition_key(key: str, stored, *, data=None, dataset=None, aligned=False) -> str:
    """The condition key of a run folder's run.json, read as `condition_of` reads a record: `key` (its
    identity's `Condition.key()`), with what the marks of its `condition` block `stored` say (None in a
    run.json of a toolkit that kept none): a drop=T one without text_rows is "drop=T,text_drop=older", a
    missing-rate one that masks text without text_spared is "missing_rate=R,text_missing=older" unless its
    data (`data`, `dataset`, `aligned`: its identity's, as a record's) is known to be BERT text
    (`run_folders.identity_of`). A key marked older already is kept. ValueError for a key no Condition makes."""
    parts = dict(part.partition("=")[::2] for part in key.split(",") if part)
    if "text_drop" in parts or "text_missing" in parts:
        return key
    today = Condition(float(parts.get("missing_rate") or 0.0), parts.get("drop") or None,
                      parts.get("modalities") or "TAV")
    read = _with_older_marks(today, stored if isinstance(stored, dict) else {},
                             {"data": data, "dataset": dataset, "aligned": aligned})
    return key if read == today else read.key()


def _with_older_marks(today: Condition, stored: dict, record: dict) -> Condition:
    """`today` as the marks of a stored `condition` block read it (one rule for records and run folders): a
    drop=T without text_rows is the older dropped text, a missing rate that masks text without text_spared the
    older missing text, unless the record's data is known to be BERT text (`_known_bert_text`)."""
    older_drop = today.drop_modality == "T" and stored.get("text_rows") != "all"
    older_missing = today.masks_text_at_missing_rate and stored.get("text_spared") != "bert_cls_sep" \
        and not _known_bert_text(record)
    return dataclasses.replace(today, older_text_drop=older_drop, older_text_missing=older_missing)


def _known_bert_text(record: dict) -> bool:
    """Whether the record's data is known to be BERT-token text, on which the older missing-rate rule spared
    exactly what today's does, so the run keeps its identity: synthetic data (every recipe writes `text_bert`)
    and MMSA's published files (MMSA's own configs train every dataset with use_bert, on `text_bert`), named
    by the checksum MMSA publishes. Any other file may have been GloVe text, and is read as older."""
    data = record.get("data")
    if not isinstance(data, str):
        return False
    if is_synthetic(data):
        return True
    try:
        published = published_sha256(record.get("dataset"), bool(record.get("aligned")))
    except (ToolkitError, TypeError):          # a dataset this session does not declare
        return False
    return published is not None and data == f"sha256:{published}"


def subset_models() -> list[str]:
    """The models that train on a modality subset (declare `modality_subsets`, `model_names.model_meta`), sorted."""
    from ..model_names import registered_names
    return sorted(name for name in registered_names() or () if model_meta(name).get("modality_subsets"))


def check_any_allows(models, condition: Condition, what: str) -> None:
    """UsageError (one line naming the models that can) where `condition` is a modality subset and none of `models`
    trains on one: `what` (a command) reads their runs only, and run.py never trains them under it
    (`check_model_allows`), so there is nothing for it to read, and a hand-made record under it would be drawn."""
    if condition.modalities == "TAV" or any(model_meta(m).get("modality_subsets") for m in models):
        return
    raise UsageError(f"{what} reads runs of {', '.join(models)}, none of which trains on a modality subset "
                     f"(--modalities {condition.modalities}; run.py refuses them), so there are none to draw; only "
                     f"{', '.join(subset_models())} train on subsets: drop --modalities")


def check_model_allows(model: str, condition: Condition) -> None:
    """A modality subset needs a model that declares `modality_subsets` (see README); read without torch where the
    model file says it in a literal (`model_names.model_meta`)."""
    if condition.modalities != "TAV" and not model_meta(model).get("modality_subsets"):
        raise UsageError(f"{model} cannot run on a modality subset (--modalities {condition.modalities}): its "
                         f"architecture needs all three modalities; the README lists the models that can")
