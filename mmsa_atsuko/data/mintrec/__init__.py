"""Load MIntRec (thuiar/MIntRec) from the folder layout it ships into a validated `Dataset`.

The folder, read as it is (folder.py):

    train.tsv, dev.tsv, test.tsv     tab-separated, header `season episode clip text label`
    video_data/video_feats.pkl       {'S05_E16_329': list of (1, 256) arrays, or a (T, 256) array}
    audio_data/audio_feats.pkl       {'S05_E16_329': (T, 768) array}

A sample's key is `season_episode_clip`; `dev` is the valid split. Loading follows
thuiar/MIntRec's data code, with these differences:

- Text: the raw TSV text is tokenized with the BERT tokenizer of the configured local
  folder into `text_bert` (N, 3, 30), as MIntRec's `convert_examples_to_features`; models
  that read pre-extracted `text` get the frozen BERT's last hidden state, cached (text.py).
- Video is cut or zero-padded at the end to 230 frames and audio to 480; the true lengths
  and masks are kept (MIntRec drops them) (frames.py).
- Pickles go through `safe_pickle` (no code in a file can run).
- Every problem is one line naming the file, split and key: a TSV key missing from a
  feature file (all of them counted, the first few named), an unknown label, a bad header,
  a frame array of the wrong shape, NaN or inf.

Labels are indices into the 20 intents in MIntRec's code order (configs/datasets.yaml
`label_names`).

The parts, each importing only those above it:

- `folder`: the layout, where the folder is, the dataset's facts, the folder's digest;
- `tables`: the three TSVs read and checked (keys, texts, labels);
- `text`: token ids, and the frozen BERT's text features with their cache;
- `frames`: a feature pickle read into padded frames;
- `dataset`: `load_mintrec`, the readers in order and the `Dataset` they make.

The names other modules use are importable from here. A name is read where it is used, so patch
it there (e.g. `text._compute_text_features`), not here.
"""
from .folder import (FEATURE_FILES, SYNTHETIC_MARKER, TSV_FILES, TSV_HEADER, folder_digest, label_names, missing_files,
                     mintrec_facts, resolve_mintrec_folder)


def __getattr__(name: str):
    """`load_mintrec` imported on first use (PEP 562): `dataset` reads torch, and the folder's names are read without
    it (the sweep's planning line looks for synthetic MIntRec in its cache before torch is imported)."""
    if name == "load_mintrec":
        from .dataset import load_mintrec
        return load_mintrec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["load_mintrec", "resolve_mintrec_folder", "missing_files", "label_names", "mintrec_facts", "folder_digest",
           "FEATURE_FILES", "SYNTHETIC_MARKER", "TSV_FILES", "TSV_HEADER"]
