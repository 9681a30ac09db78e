"""The cache folder, and file hashes remembered in it.

A leaf: it imports nothing of ours, so the data loaders, the BERT encoder and the API can
all use it without importing each other.

- `cache_dir()`: $MMSA_ATSUKO_CACHE, else ~/.cache/mmsa_atsuko. Generated synthetic data and
  tiny BERTs live in its `synthetic/` folder; a run config names such a BERT
  `synthetic:<recipe>/bert-synthetic-en`, relative to that folder, so that the config hash
  (and so whether a sweep counts a run as done) does not depend on where the cache lives. A tiny
  BERT's folder is always `bert-synthetic-<en|cn>` (`tiny_bert_folder_name`), in the cache or in a
  folder `run.py synth -d mintrec` writes.
- `sha256_of(path)`: a file's sha256, remembered in `sha256.json` per version of the file.
  A version is (size, mtime_ns, ctime_ns, inode, device): mtime can be set back by anyone
  (`touch -d`, `os.utime`), ctime cannot, and any write, chmod or rename moves it, so an
  in-place edit is never mistaken for the file that was hashed. `remember` reads, adds to and
  rewrites the file holding `sha256.json.lock` (a `filelock.FileLock`, as the store's), so two
  processes hashing at once never drop each other's entry.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from filelock import FileLock

from .atomic import replace_with, sparse_problem
from .errors import DataError
from .lock_files import shared_mode

CACHE_ENV = "MMSA_ATSUKO_CACHE"
DEFAULT_CACHE = "~/.cache/mmsa_atsuko"
SYNTHETIC_BERT_PREFIX = "synthetic:"
TINY_BERT_LANGUAGES = ("en", "cn")
_HASHES_FILE = "sha256.json"
# How long `remember` waits for another process's update of the hashes file (a read and a small write): past it
# the entry is skipped, which costs a later hash of the file, never a wrong one.
HASHES_LOCK_S = 10.0


def cache_dir() -> Path:
    """$MMSA_ATSUKO_CACHE, else ~/.cache/mmsa_atsuko (read on every call: tests and workers set it)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def synthetic_cache_dir() -> Path:
    """Where generated data and tiny BERTs are kept: `<cache_dir()>/synthetic`."""
    return cache_dir() / "synthetic"


def synthetic_bert_name(bert_dir) -> str:
    """The `pretrained` value of a tiny BERT in the cache: 'synthetic:<recipe>/bert-synthetic-en'."""
    return SYNTHETIC_BERT_PREFIX + Path(bert_dir).resolve().relative_to(synthetic_cache_dir().resolve()).as_posix()


def tiny_bert_folder_name(language: str) -> str:
    """The folder name of the toolkit's tiny synthetic BERT of a language: 'bert-synthetic-en'."""
    return f"bert-synthetic-{language}"


def names_tiny_bert(pretrained) -> bool:
    """Whether a `pretrained` value names the toolkit's tiny synthetic BERT: 'synthetic:...', or a folder
    named as one (which no download has: only a --synthetic run or `run.py synth -d mintrec` writes it)."""
    text = str(pretrained or "")
    return (text.startswith(SYNTHETIC_BERT_PREFIX)
            or Path(text).name in {tiny_bert_folder_name(language) for language in TINY_BERT_LANGUAGES})


def synthetic_bert_folder(name: str) -> Path:
    """The folder a 'synthetic:...' `pretrained` value names in this process's cache."""
    return synthetic_cache_dir() / name[len(SYNTHETIC_BERT_PREFIX):]


# -- file hashes ------------------------------------------------------------------------------

def file_version(path) -> list:
    """[size, mtime_ns, ctime_ns, inode, device]: changes whenever the file's bytes can have."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_entries() -> dict:
    try:
        entries = json.loads((cache_dir() / _HASHES_FILE).read_text())
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}


def remembered(path, version: list) -> dict:
    """What was remembered about this version of `path` ({} if nothing): always 'sha256', and
    whatever else the caller stored with it."""
    entry = _read_entries().get(str(Path(path).resolve()))
    if isinstance(entry, dict) and entry.get("version") == version and isinstance(entry.get("facts"), dict):
        return entry["facts"]
    return {}


def remember(path, version: list, facts: dict) -> None:
    """Add `facts` (JSON) about `path` as it was at `version`, taken before it was read. Nothing
    is stored if the file changed since (it was written while being read); entries of files that
    are gone are dropped; a cache that cannot be written is skipped."""
    path = Path(path)
    try:
        if file_version(path) != version:
            return
        cache = cache_dir() / _HASHES_FILE
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Held from the read to the rename: another process's entry written in between would be lost.
        with FileLock(f"{cache}.lock", timeout=HASHES_LOCK_S, mode=shared_mode(cache.parent)):
            entries = _read_entries()
            entries = {key: entry for key, entry in entries.items() if os.path.exists(key)}
            key = str(path.resolve())
            old = entries.get(key)
            if isinstance(old, dict) and old.get("version") == version and isinstance(old.get("facts"), dict):
                facts = {**old["facts"], **facts}
            entries[key] = {"version": version, "facts": facts}
            replace_with(cache, lambda tmp: tmp.write_text(json.dumps(entries, indent=0)))
    except (OSError, ValueError):       # filelock's Timeout is an OSError: skipped as an unwritable cache is
        pass


def sha256_of(path, *, remember_it: bool = True) -> str:
    """The file's sha256, from the cache when this version of it was hashed before.
    `remember_it=False` for files about to be renamed or deleted (their entry would be junk)."""
    version = file_version(path)
    known = remembered(path, version).get("sha256")
    if known is not None:
        return known
    with open(path, "rb") as f:
        # A stamped MIntRec folder's files are hashed before they are read: a 1 TB hole took 12 minutes.
        sparse = sparse_problem(f.fileno(), os.fstat(f.fileno()).st_size)
        if sparse:
            raise DataError(f"{path} is {sparse}")
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if remember_it:
        remember(path, version, {"sha256": digest})
    return digest
