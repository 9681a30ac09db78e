"""The checks of a folder a command will write in (it is, or can be made as, a writable folder) and of the entries it
writes there, made before any work and creating nothing: one UsageError line each."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from .links import OWN_COPY


def check_folder(folder, what: str, option: str = "--out") -> Path:
    """`folder`, or one UsageError line unless it is, or can be created as, a folder this user may
    write: the nearest ancestor that exists (where mkdir would start) must be a writable folder.
    Creates nothing, so that a request that fails later leaves no trace."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {folder}: {probe} is a file, not a folder; choose another {option}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {folder}: {probe} is not writable by this user; choose another {option}")
    return folder


def check_output_file(path, option: str) -> Path:
    """`path`, a file the user named for the toolkit to write (leaderboard -o, extract --out), or one
    UsageError line before any work: a folder, a symbolic link (it would be replaced, or its target
    rewritten), an existing file that is no regular one (/dev/full, /proc/version, a named pipe), or a
    folder that cannot be made or written (`check_folder`)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{option} {path} is a folder; give the name of the file to write")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{option} {path} is {'a symbolic link' if path.is_symlink() else 'no regular file'}; "
                         "give the name of a file to write, or of a new one")
    check_folder(path.parent, f"{option} {path}: its folder", option)
    return path


def wrong_kind(folder, entry, kind: str, what: str, option: str) -> UsageError:
    """The one line for `entry` of `folder` that is a folder where the toolkit writes a file (`kind`), or the
    reverse: every writer's check (`check_entries`) and the store's reader (`results.read_records`) say it alike."""
    return UsageError(f"{what} {folder}: {entry} is a {'file' if kind == 'folder' else 'folder'} where the toolkit "
                      f"writes a {kind}; move it away or choose another {option}")


def check_entries(folder, entries, what: str, option: str = "--out", in_place=()) -> None:
    """One UsageError line if one of `entries` (names in `folder` that the caller will write; a folder's
    ends in "/", or has no dot) is a symbolic link, the wrong kind of thing, or a file this user cannot
    write; or if one of `in_place` (those written in place: appended to, or a lock file) is a file of several
    names. `what` names the folder in the message ("results folder"), `option` the one to change. Creates nothing."""
    folder = Path(folder)
    for name in in_place:
        entry = folder / name
        names = entry.lstat().st_nlink if entry.is_file() and not entry.is_symlink() else 1
        if names > 1:
            raise UsageError(f"{what} {folder}: {entry} is a file of {names} names (a hard link), which the toolkit "
                             f"writes in place, changing it under its other names too; {OWN_COPY}, or choose "
                             f"another {option}")
    for name in entries:
        kind = "folder" if name.endswith("/") or "." not in name else "file"
        entry = folder / name.rstrip("/")
        if entry.is_symlink():
            raise UsageError(f"{what} {folder}: {entry} is a symbolic link; the toolkit writes only inside "
                             f"the {what} (replace it with a real {kind})")
        if entry.exists() and entry.is_dir() != (kind == "folder"):
            raise wrong_kind(folder, entry, kind, what, option)
        if entry.is_file() and not os.access(entry, os.W_OK):
            raise UsageError(f"{what} {folder}: {entry} is not writable by this user; fix its permissions "
                             f"or choose another {option}")
