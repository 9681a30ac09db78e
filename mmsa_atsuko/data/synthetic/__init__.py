"""Synthetic datasets in the exact MMSA pickle format, with a planted signal.

The real feature files and BERT weights cannot be fetched on the machines this project is
built and tested on. This package writes stand-ins that every loader, model and CLI path can
run on:

- `write_synthetic` writes one pickle laid out exactly like MMSA's (thuiar/MMSA:README.md).
  `size='full'` uses the real split sizes and padded shapes from configs/datasets.yaml;
  `size='small'` is a few hundred short samples that any model trains on in seconds on a CPU.
- `ensure_synthetic` caches it with a tiny BERT (tiny_bert.py, shared with synthetic MIntRec:
  one layer, random weights, hidden size 768 like bert-base, and a vocab.txt that matches the
  ids stored in `text_bert` and the words in `raw_text`) under one folder per recipe.

Everything is a pure function of (dataset, size, seed, aligned), named by its recipe
(`mosi-small-unaligned-seed0-v2`); the same call writes the same bytes. The file carries the
generator's stamp (`stamp.py`: the recipe and a hash of the content), which is what makes the
loader name the data `synthetic:<recipe>`; sample ids start with `synthetic:<recipe>` too, so
predictions say where they come from, but they prove nothing.

The parts, each importing only those above it:

- `recipes`: which datasets, sizes and recipes exist, their names and shapes, and the checks of
  a request (`synthetic_recipe`, `synthetic_shapes`, `check_synthetic_request`);
- `planted_signal`: the latent scores and what text, audio, vision and labels make of them;
- `mmsa_file`: a dataset laid out as MMSA's pickle, and written with its stamp (`make_synthetic`,
  `write_synthetic`);
- `cached`: `ensure_synthetic`, a recipe's files under the cache folder.

The stress recipes are synthetic_stress.py's, synthetic MIntRec is synthetic_mintrec.py's.
"""
from .cached import ensure_synthetic, synthetic_cached
from .mmsa_file import make_synthetic, write_synthetic
from .recipes import SYNTHETIC_DATASETS, check_synthetic_request, synthetic_recipe, synthetic_shapes

__all__ = ["ensure_synthetic", "synthetic_cached", "make_synthetic", "write_synthetic", "check_synthetic_request",
           "synthetic_recipe", "synthetic_shapes", "SYNTHETIC_DATASETS"]
