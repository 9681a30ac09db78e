"""What a run records of the code of a model file of your own (`model_source`: no git knows these files), and how a
recorded source compares with the files discovery imported today (`source_changes`, `changed_files`); a recorded
source, which may come from anywhere, is read only by `recorded_files`."""
from __future__ import annotations

import os
import re
from pathlib import Path

# discovery's tables of what it imported, read through the module at each call: one set of tables, which a
# test that makes discovery forget its imports replaces there.
from . import discovery

# A recorded model_source is read back from a store or a model.json, which may come from anywhere: these bound it.
MAX_RECORDED_FILES = 1000                    # more files than a models folder holds: no record this toolkit wrote
MAX_RECORDED_PATH = 4096                     # PATH_MAX
_SHA256_HEX = re.compile("[0-9a-f]{64}")
UNREADABLE_SOURCE = ("the run's model_source cannot be read (not the path, sha256 and files this toolkit records), "
                     "so what changed in its code since is unknown")


def model_source(name: str) -> dict | None:
    """The code of the model file of your own that registered `name`, as it was when imported, for its run
    records (the checkout's git commit says nothing of a file outside it); None for ours. 'path' and 'sha256'
    name the model file; 'files' gives the sha256 of the files that are its code (`_own_files`), by their path
    relative to the model's folder: an edit to a helper beside it changes the record as an edit to the model does,
    and another model's file, or a file of another models folder, does not."""
    file = discovery._USER_MODELS.get(name)
    if file is None:
        return None
    return {"path": str(file), "sha256": discovery._USER_DIGESTS.get(file), "files": _own_files(name, file)}


def _own_files(name: str, file: Path) -> dict[str, str]:
    """The code of model `name`, whose model file is `file`: every file discovery imported from its folder (a
    helper, or a package beside it, which the model may import; discovery cannot tell which it does), except a
    file that registers another model (`_other_model_files`). Files of other models folders are left out: a model
    file imports its own folder's (`from .mylayers import`)."""
    others = _other_model_files(name)
    return {path.relative_to(file.parent).as_posix(): digest for path, digest in sorted(discovery._USER_DIGESTS.items())
            if path.is_relative_to(file.parent) and path not in others}


def _other_model_files(name: str) -> set[Path]:
    """The files that register a model other than `name`, less those defining a class `name`'s derives from (a
    model built on another is that one's code too)."""
    own = discovery._USER_MODELS[name]
    return {file for file in discovery._USER_MODELS.values() if file != own} - discovery._USER_BASES.get(name, set())


def source_changes(recorded, name: str) -> list[str]:
    """How the code of model `name` imported now differs from `recorded`, a run's `model_source`: one
    phrase per file changed, new or gone, naming it; [UNREADABLE_SOURCE] for a record `recorded_files` cannot
    read. [] for the toolkit's models (git_commit covers them) and for a run that recorded no source."""
    if recorded is not None and model_source(name) is not None and recorded_files(recorded) is None:
        return [UNREADABLE_SOURCE]
    changes = []
    for path, old, new in changed_files(recorded, name):
        if old is None:
            changes.append(f"{path} is new since the run was trained")
        elif new is None:
            changes.append(f"{path}, imported when the run was trained, is gone")
        else:
            changes.append(f"{path} changed since the run was trained (sha256 {old[:12]} then, {new[:12]} now)")
    return changes


def changed_files(recorded, name: str) -> list[tuple[Path, str | None, str | None]]:
    """`source_changes` as (path, sha256 then, sha256 now) per file, None where it was not or is not imported:
    for a line over many records (a sweep's plan), which names each file once, not each record's digests.
    [] for a record `recorded_files` cannot read (`source_changes` says so)."""
    now = model_source(name)
    if recorded is None or now is None:
        return []
    then = recorded_files(recorded)
    if then is None:
        return []
    folder = Path(now["path"]).parent
    # A record from before `_own_files` may name other models' files of its folder: not this model's code.
    others = {path.relative_to(folder).as_posix() for path in _other_model_files(name) if path.is_relative_to(folder)}
    then = {key: digest for key, digest in then.items() if key not in others}
    return [(folder / key, then.get(key), now["files"].get(key)) for key in sorted(set(then) | set(now["files"]))
            if then.get(key) != now["files"].get(key)]


def recorded_files(source) -> dict[str, str] | None:
    """The files a run's recorded `model_source` names, path -> sha256, as `model_source` writes them (a record
    from before `files`: its model file alone), less the other models folders' files that records from before
    `_own_files` name by absolute path (no code of the model). None for what is no such record (a hand-edited or
    downloaded store): not a dict, `path` or `sha256` missing or malformed, or `files` not a dict of 1 to
    MAX_RECORDED_FILES printable paths to 64 hex digits. The one reader of a recorded source (`source_changes`,
    `results.user_model_digest`): nothing of an unreadable one is printed."""
    if not (isinstance(source, dict) and _recorded_path(source.get("path")) and _sha256_hex(source.get("sha256"))):
        return None
    files = source.get("files", {Path(source["path"]).name: source["sha256"]})
    if not (isinstance(files, dict) and 0 < len(files) <= MAX_RECORDED_FILES
            and all(_recorded_path(path) and _sha256_hex(digest) for path, digest in files.items())):
        return None
    return {path: digest for path, digest in files.items() if not os.path.isabs(path)} or None


def _recorded_path(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_RECORDED_PATH and value.isprintable()


def _sha256_hex(value) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None
