"""Check one split of a loaded MMSA feature pickle and convert it to tensors (for `mmsa_format`).

`SplitChecker.split` checks a split's keys, sample ids and shapes against the dataset's facts and against the
train split's shapes, and each array's dtype and values (its base, `mmsa_arrays.ArrayChecks`), and returns a
`Split` whose float32 arrays are the file's own memory (`torch.from_numpy`). Every problem is one DataError line
naming the file, the split, the key and what was expected versus found. An array holding -inf (silent
audio frames) is only noted: `array_blocks.zero_neginf` zeroes it once the file's hash is done.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .formula_ids import refuse_formula_ids
from .mmsa_arrays import ArrayChecks
from .spec import MODALITIES, Split

UNIMODAL_LABEL_KEYS = {"label_T": "regression_labels_T", "label_A": "regression_labels_A",
                       "label_V": "regression_labels_V"}


def key_names(mapping: dict, shown: int = 20) -> str:
    """A loaded dict's keys for a message: strings (shortened) by name, anything else by type;
    an arbitrary object's str() could take any time and memory."""
    names = [key[:40] if isinstance(key, str) else f"<{type(key).__name__}>" for key in list(mapping)[:shown]]
    more = f" and {len(mapping) - shown} more" if len(mapping) > shown else ""
    return ", ".join(names) + more if names else "nothing"


class SplitChecker(ArrayChecks):
    """Validates and converts one split at a time; every failure is one DataError line."""

    def __init__(self, path: Path, facts: dict, aligned: bool, strict_ids: bool = False, labels: bool = True):
        super().__init__(path, facts)
        self.aligned = aligned
        # `labels`: a training file's splits must hold labels; predict reads the sentiment labels only where a
        # split holds them (to write beside the predictions), and the unimodal ones never.
        self.need_labels = labels
        # `strict_ids`: ids must be strings, as MMSA writes them, and unique across the file
        # (download's check of a file with no published sha256); a run accepts numbers too.
        self.strict_ids = strict_ids
        self.seen_ids = {}   # id -> (split, sample) where it first appeared (strict_ids)

    # -- one split -------------------------------------------------------------------------

    def split(self, split: str, data, train_shapes: dict | None):
        """-> (Split, shapes). `train_shapes`: None for train itself."""
        import torch     # here, not at the top: download, extract and predict import this module before any split
        self.split_name, self.n, self.ids = split, None, None
        if not isinstance(data, dict):
            raise DataError(f"{self.path}: split '{split}': expected a dict of arrays, "
                            f"found {type(data).__name__}")
        self._require_keys(data)

        # The sentiment labels define N (the ids, in a file without them): the first key counted (`_count`).
        labels = self.array(data, "regression_labels", "vector") if "regression_labels" in data else None
        self.ids = self._ids(data["id"])

        # Shapes first (cheap), so a mismatched file fails before any full pass over it.
        text = self.array(data, "text", 3) if "text" in data else None
        bert = self.array(data, "text_bert", 3) if "text_bert" in data else None
        audio = self.array(data, "audio", 3)
        vision = self.array(data, "vision", 3)
        if bert is not None and bert.shape[1] != 3:
            self.fail("text_bert", "shape (N, 3, L): input ids, attention mask, segment ids",
                      f"shape {bert.shape}")
        shapes = {"text_keys": tuple(k for k in ("text", "text_bert") if k in data),
                  "text_len": bert.shape[2] if bert is not None else text.shape[1],
                  "audio_len": audio.shape[1], "vision_len": vision.shape[1],
                  "text_dim": text.shape[2] if text is not None else None,
                  "audio_dim": audio.shape[2], "vision_dim": vision.shape[2]}
        if text is not None and bert is not None and text.shape[1] != bert.shape[2]:
            self.fail("text", f"{bert.shape[2]} time steps like 'text_bert'", f"shape {text.shape}")
        if self.aligned:
            for key, array in (("audio", audio), ("vision", vision)):
                if array.shape[1] != shapes["text_len"]:
                    self.fail(key, f"{shapes['text_len']} time steps like the text (aligned data)",
                              f"shape {array.shape}")
        if train_shapes is not None:
            self._same_as_train(shapes, train_shapes)

        tensors = {}
        if text is not None:
            text = self.features("text", text)
            tensors["text"] = torch.from_numpy(text)
        # Lengths and masks are computed in numpy and wrapped at the end: the first torch
        # reduction of a process starts torch's thread pool (tens of ms), which belongs to
        # training, not to reading a file.
        if bert is not None:
            bert = self.text_bert(bert)
            tensors["text_bert"] = torch.from_numpy(bert)
            # Row 1 is BERT's attention mask: its sum is the number of real tokens.
            text_lengths = bert[:, 1].sum(axis=1)
        else:
            # Without BERT inputs, a time step is real if its feature row is not all zeros
            # (padding is zeros). max/min along the feature axis find the non-zero rows
            # without a full-size boolean temporary.
            nonzero = (text.max(axis=2) != 0) | (text.min(axis=2) != 0)
            text_lengths = nonzero.sum(axis=1).astype(np.int64)
        for key, array in (("audio", audio), ("vision", vision)):
            tensors[key] = torch.from_numpy(self.features(key, array, neginf_ok=True))

        lengths = {"text": text_lengths}
        for key in ("audio", "vision"):
            # Aligned frames follow the text tokens; MMSA never reads stored lengths there.
            lengths[key] = (text_lengths.copy() if self.aligned
                            else self.lengths(data, f"{key}_lengths", shapes[f"{key}_len"]))
        for m in MODALITIES:
            tensors[f"{m}_lengths"] = torch.from_numpy(lengths[m])
            tensors[f"{m}_mask"] = torch.from_numpy(np.arange(shapes[f"{m}_len"])[None, :] < lengths[m][:, None])

        if labels is not None:
            tensors["label"] = torch.from_numpy(self.labels("regression_labels", labels))
        if self.facts.get("unimodal_labels") and self.need_labels:
            for name, key in UNIMODAL_LABEL_KEYS.items():
                tensors[name] = torch.from_numpy(self.labels(key, self.array(data, key, "vector")))
        return Split(split, tensors, self.ids), shapes

    def _require_keys(self, data: dict):
        required = ["audio", "vision", "id"] + (["regression_labels"] if self.need_labels else [])
        if not self.aligned:
            required += ["audio_lengths", "vision_lengths"]
        if self.facts.get("unimodal_labels") and self.need_labels:
            required += list(UNIMODAL_LABEL_KEYS.values())
        found = f"no such key (keys: {key_names(data)})"
        if "text" not in data and "text_bert" not in data:
            self.fail("text", "'text' (features) or 'text_bert' (BERT inputs)", found)
        for key in required:
            if key not in data:
                if key in UNIMODAL_LABEL_KEYS.values():     # most likely another dataset's file, e.g. extract's
                    self.fail(key, "this key (this dataset's files carry unimodal labels T/A/V)",
                              f"{found}; is it a file of another dataset? (extract writes them only from "
                              f"label_T/A/V columns: train its files without them with -d mosi, or declare a "
                              f"dataset without unimodal_labels in a --datasets FILE)")
                self.fail(key, "this key", found)

    def _ids(self, value) -> list:
        if isinstance(value, np.ndarray):
            value = value.reshape(-1).tolist()
        elif not isinstance(value, (list, tuple)):
            self.fail("id", "a list or array of 'video$_$clip' strings", type(value).__name__)
        self._count("id", len(value))
        # A few thousand short strings: a Python pass over them is cheap.
        for i, item in enumerate(value):
            # str() of anything else could be as large as the object (numbers are fine).
            if not (isinstance(item, (str, bytes, np.integer)) or (type(item) is int and item.bit_length() <= 64)):
                self.fail("id", "'video$_$clip' strings", f"a {type(item).__name__} at sample {i}")
        if self.strict_ids:
            self._strict_ids(value)
        ids = [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in value]
        refuse_formula_ids(ids, lambda i: f"{self.path}: split '{self.split_name}', key 'id', sample {i}",
                           "give the sample another id in the file")
        return ids

    def _strict_ids(self, value) -> None:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail("id", "'video$_$clip' strings, as MMSA writes them", f"a {type(item).__name__} at sample {i}")
            first = self.seen_ids.setdefault(item, (self.split_name, i))
            if first != (self.split_name, i):
                self.fail("id", "a different id for every sample",
                          f"{item[:80]!r} at sample {i} and at sample {first[1]} of split '{first[0]}'")

    def _same_as_train(self, shapes: dict, train: dict):
        # Models size buffers (positional tables, spectral bases) once per padded length, so
        # every split must be padded to the same length, hold the same text keys and, of
        # course, share feature dims.
        for key in ("text", "text_bert"):
            if (key in train["text_keys"]) != (key in shapes["text_keys"]):
                self.fail(key, f"text keys {', '.join(train['text_keys'])} as in train "
                               f"(every split must hold the same inputs)",
                          f"{', '.join(shapes['text_keys'])}")
        text_key = "text_bert" if "text_bert" in train["text_keys"] else "text"
        for what, key in (("text_len", text_key), ("text_dim", "text"), ("audio_len", "audio"),
                          ("audio_dim", "audio"), ("vision_len", "vision"), ("vision_dim", "vision")):
            if shapes[what] != train[what]:
                kind = "padded length" if what.endswith("_len") else "feature dim"
                self.fail(key, f"{kind} {train[what]} as in train (every split must be alike)",
                          f"{kind} {shapes[what]}")
