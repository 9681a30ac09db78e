"""A recipe's files under the cache folder: written once, found again, shared by racing processes.

`ensure_synthetic` is what `run --synthetic`, the analyses and the benchmarks call; it decides only
where a recipe's pickle and tiny BERT live and whether what is there is complete. What is written is
mmsa_file.py's (the MMSA datasets), synthetic_mintrec.py's (MIntRec) and tiny_bert.py's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ...cache import tiny_bert_folder_name
from ..stamp import STAMP_KEY
from ..synthetic_stress import STANDARD
from ..tiny_bert import MARKER_JSON, write_tiny_bert
from .mmsa_file import write_synthetic
from .recipes import check_args, check_synthetic_request, facts_of, synthetic_recipe

log = logging.getLogger("mmsa_atsuko")


def is_stamped(path: Path) -> bool:
    """Whether a cached pickle was written with a stamp (older generators wrote none): the
    stamp's key sits in the first bytes. The loader still checks the stamp itself."""
    with open(path, "rb") as f:
        return STAMP_KEY.encode() in f.read(64)


def ensure_synthetic(dataset: str, cache_dir, *, size: str = "small", seed: int = 0,
                     aligned: bool = False, recipe: str = STANDARD) -> tuple[Path, Path]:
    """(feature pickle, tiny-BERT folder) for a recipe under `cache_dir`, written only if missing.

    Layout: `cache_dir/<recipe>/<MMSA file name, e.g. MOSI/Processed/unaligned_50.pkl>` and
    `cache_dir/<recipe>/bert-synthetic-<en|cn>`. Both appear by atomic rename, so a reader
    never sees half a file and two processes racing to create them both end up with a
    complete copy. For mintrec: (MIntRec folder, its tiny BERT), see synthetic_mintrec.
    """
    check_synthetic_request(dataset, size, aligned, recipe)
    if str(dataset).lower() == "mintrec":
        from ..synthetic_mintrec import ensure_synthetic_mintrec    # lazy: for mintrec alone
        return ensure_synthetic_mintrec(cache_dir, size=size, seed=seed)
    dataset, size, seed, aligned = check_args(dataset, size, seed, aligned)
    facts = facts_of(dataset)
    pkl, bert = _paths(dataset, cache_dir, size, seed, aligned, recipe)
    if not pkl.is_file() or not is_stamped(pkl):
        write_synthetic(dataset, pkl, size=size, seed=seed, aligned=aligned, recipe=recipe)
    if not (bert / MARKER_JSON).is_file():
        # The first --synthetic run of a cache folder sat silent here for 14 s (importing transformers'
        # BertModel, on a busy 2-core CPU) before its first line: say why.
        log.info("writing the tiny synthetic BERT to %s, once per cache folder (importing transformers "
                 "takes 10-20 s on a busy CPU)", bert)
        # A folder without the marker is a broken leftover (the marker is written inside the
        # temp folder before the rename), so replace it; a missing folder may be appearing
        # from another process right now, so then keep whichever copy lands first.
        write_tiny_bert(bert, seed=seed, language=facts["language"], replace=bert.exists())
    return pkl, bert


def _paths(dataset: str, cache_dir, size: str, seed: int, aligned: bool, recipe: str) -> tuple[Path, Path]:
    """Where a recipe's pickle and tiny BERT are under `cache_dir` (arguments checked by `check_args`)."""
    facts = facts_of(dataset)
    root = Path(cache_dir) / synthetic_recipe(dataset, size, seed, aligned, recipe)
    return root / facts["files"]["aligned" if aligned else "unaligned"], root / tiny_bert_folder_name(facts["language"])


def synthetic_cached(dataset: str, cache_dir, *, size: str = "small", seed: int = 0, aligned: bool = False,
                     recipe: str = STANDARD) -> bool:
    """Whether `ensure_synthetic` would find every file of the recipe there and write nothing. Without torch (the
    sweep's planning line asks before it): MIntRec's folder is synthetic_mintrec.py's, which reads none either."""
    check_synthetic_request(dataset, size, aligned, recipe)
    if str(dataset).lower() == "mintrec":
        from ..synthetic_mintrec import synthetic_mintrec_cached
        return synthetic_mintrec_cached(cache_dir, size=size, seed=seed)
    dataset, size, seed, aligned = check_args(dataset, size, seed, aligned)
    pkl, bert = _paths(dataset, cache_dir, size, seed, aligned, recipe)
    return pkl.is_file() and is_stamped(pkl) and (bert / MARKER_JSON).is_file()
