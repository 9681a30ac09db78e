"""The commands: `download` fetches and verifies MMSA's files, `check` reports what a data root holds.

`download(names)` writes each file under a temporary name next to its final one, checks it
(`verify`), and only then renames it. Two downloads of one file take turns (a lock beside it,
`.<file>.download.lock`): the second waits, then finds the file there and verified. The file
gets the permissions a plain `open()` would give it (gdown's temporary file is 0600). A folder
(or anything but a regular file) where the file goes is reported before anything is fetched,
and the free space of the destination's disk is checked before fetching.

Without a network, `download` fails at once with one line saying where to get the file by
hand (the Drive folder, or MMSA's BaiduYun mirror) and where to put it.

`check(data_root)` reports, for every dataset in configs/datasets.yaml, whether its files
are there and, where a checksum is published, whether they match it. MIntRec is not in
MMSA's folder; the check reports its folder all the same, and where to get it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from ...atomic import not_a_file, plain_file_mode
from ...cache import file_version, remember
from ...lock_files import shared_mode
from ...config import datasets_table
from ...errors import DataError, UsageError
from ..mmsa_format import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, resolve_feature_path
from .drive import (Downloader, FetchFailed, Offline, SizeLimit, TransferLimit, default_downloader, manual_steps,
                    root_option)
from .facts import DISK_RESERVE, MINTREC_HOME, _check_name, _relpath, size_text, published_sha256, size_bounds
from .verify import _blocked, _verified_how, _verify


def data_root_of(data_root=None) -> tuple[Path, str]:
    """The data root and where it came from: --data-root, $MMSA_DATA_ROOT, else the default. One that names no
    folder (a name too long, a NUL byte) is one line: the first look under it (`_blocked`, Path.is_dir) raised."""
    if data_root is not None:
        root, how = Path(data_root).expanduser(), "--data-root"
    elif os.environ.get(DATA_ROOT_ENV):
        root, how = Path(os.environ[DATA_ROOT_ENV]).expanduser(), f"${DATA_ROOT_ENV}"
    else:
        root, how = Path(DEFAULT_DATA_ROOT).expanduser(), "the default; set --data-root or $MMSA_DATA_ROOT"
    what = not_a_file(root)
    if what and what.startswith("names no file"):
        raise UsageError(f"data root {str(root)[:200]} ({how}) {what.replace('file', 'folder', 1)}: give a "
                         f"shorter path")
    return root, how


def download(names, *, aligned: bool = False, data_root=None, downloader: Downloader | None = None,
             say: Callable[[str], None] = print) -> list[Path]:
    """Fetch MMSA feature files (`names`: one dataset or several) into the data root; return
    their paths. See the module docstring.

    A file already there that verifies is kept; one that fails verification is downloaded
    again (the bad copy is replaced only by a good one). Raises DataError (one line) when
    something other than a file stands where one goes, when offline, before fetching
    anything, or when a download fails, is too big or does not verify: nothing is left under
    that file's final name then, and no temporary file either.
    """
    names = [names] if isinstance(names, str) else list(names)
    root, _ = data_root_of(data_root)
    wanted = []
    for name in map(_check_name, names):
        dest = resolve_feature_path(name, aligned, data_root=root)     # UsageError for sims --aligned
        relpath = _relpath(name, aligned)
        _check_under_root(name, relpath, root)
        size_bounds(relpath)                                           # DataError without the facts
        blocked = _blocked(dest, root)
        if blocked:
            raise DataError(f"{blocked}, where the download of {relpath} goes: move it away (or choose another "
                            f"--data-root), then run the command again")
        wanted.append((dest, relpath))

    todo = []
    for dest, relpath in wanted:
        seen = file_version(dest) if dest.is_file() else None
        problem = _verify(dest, relpath) if seen else "missing"
        if problem is None:
            say(f"{dest} is already there ({_verified_how(relpath)}); nothing to do")
        else:
            if problem != "missing":
                say(f"{dest} is there but {problem}: downloading a fresh copy")
            todo.append((dest, relpath, seen))
    if not todo:
        return [dest for dest, _ in wanted]
    for dest, relpath, _ in todo:
        outside = _link_out_of_root(dest, root)
        if outside:
            link, other_root = outside
            instead = (f"--data-root {other_root} writes exactly there" if other_root else "download into a data "
                       "root without such a link (--data-root), then move the file where you want it")
            raise DataError(f"{link}, and the download of {relpath} would write there, outside the data root "
                            f"{root}: {instead}")

    downloader = downloader or default_downloader()
    try:
        downloader.check_online()
    except Offline as e:
        raise DataError(f"no network ({e}): {manual_steps([r for _, r, _ in todo], root)}") from None
    for dest, relpath, seen in todo:
        _fetch_one(downloader, relpath, dest, root, say, seen)
    return [dest for dest, _ in wanted]


def _check_under_root(name: str, relpath: str, root: Path) -> None:
    """A download writes under its data root only (its folders, lock, scratch folder and file): a `files:` entry of
    a --datasets file that was absolute, or left the root by '..', made its folders and lock outside before the
    fetch failed. The table refuses '..' when it is read (config.datasets); an absolute entry names a file of your
    own to read, which nothing fetches for you. Checked on the name, before anything is created; the links the data
    root holds are `_link_out_of_root`'s."""
    if os.path.isabs(relpath):
        raise DataError(f"dataset {name}'s files entry {relpath} is an absolute path, and a download writes only "
                        f"under the data root {root}: put the file there yourself, or give a path relative to the "
                        f"data root")


def _link_out_of_root(dest: Path, root: Path) -> tuple[str, Path | None] | None:
    """The folder between `root` and `dest` that is a symbolic link leading out of the data root, said as a clause,
    with the data root that writes `dest` where the link leads (`_root_at_link_target`, else None); None when no
    link leads out. A download writes its folders, lock, scratch folder and file beside `dest`: a link in a data root
    that came from elsewhere (an unpacked archive, a shared folder: MOSI -> ~/.config) sent them there. A link in the
    root's own path is where the user put the root, and a link to a file at `dest` is replaced, never written
    through (os.replace)."""
    if _inside_root(dest, root):
        return None
    folder = dest.parent
    while folder != root and not os.path.islink(folder) and folder.parent != folder:
        folder = folder.parent
    target = Path(os.path.realpath(folder))
    return f"{folder} is a symbolic link to {target}", _root_at_link_target(dest, root, folder, target)


def _inside_root(dest: Path, root: Path) -> bool:
    inside = os.path.realpath(root)
    return os.path.commonpath([inside, os.path.realpath(dest.parent)]) == inside


def _root_at_link_target(dest: Path, root: Path, link: Path, target: Path) -> Path | None:
    """The data root that puts `dest` where `link` (a folder under `root`) leads, writing through no link out of
    itself: a root of its own on another disk, R/MOSI -> /big/MOSI, is /big. None where the target does not end in
    the link's own path under the root (R/MOSI -> /big/mosi-files), or where that root holds such a link too."""
    try:
        under = link.relative_to(root).parts
    except ValueError:
        return None
    if not under or target.parts[-len(under):] != under or len(target.parts) <= len(under):
        return None
    other = Path(*target.parts[:-len(under)])
    return other if _inside_root(other / dest.relative_to(root), other) else None


def _download_lock(dest: Path, relpath: str, say) -> FileLock:
    """The lock two downloads of one file take turns on, held; says so when it has to wait. A
    separate `.<file>.download.lock` beside it (as results/folder.py's store_lock); a killed
    holder's lock is dropped by the OS."""
    lock = FileLock(dest.parent / f".{dest.name}.download.lock", mode=shared_mode(dest.parent))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"waiting for another download of {relpath} to {dest} to finish")
        lock.acquire()
    return lock


def _fetch_one(downloader: Downloader, relpath: str, dest: Path, root: Path, say, seen: list | None) -> None:
    """Under the file's lock: fetch into a private temporary folder beside `dest`, verify,
    rename; on any failure or interrupt the folder is removed and `dest` is left as it was. A
    folder, not a file: gdown writes its own `<output>XXXX.part` next to the output and keeps
    it after a failure (to resume, which a random name never does), so MOSEI-sized leftovers
    would pile up. `seen`: the file_version of `dest` when it was looked at (None: missing);
    if another download has put a file there since, and it verifies, nothing is fetched."""
    manual = manual_steps([relpath], root)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = _download_lock(dest, relpath, say)
    except OSError as e:
        raise DataError(f"cannot write in {dest.parent} ({e.strerror or type(e).__name__}): choose another "
                        f"--data-root, or {manual}") from None
    try:
        blocked = _blocked(dest, root)
        if blocked:
            raise DataError(f"{blocked}, where the download of {relpath} goes: move it away, then run "
                            f"the command again")
        if dest.is_file() and file_version(dest) != seen and _verify(dest, relpath) is None:
            say(f"{dest} was put there by another download meanwhile ({_verified_how(relpath)}); nothing to do")
            return
        # Every live attempt holds the lock, so a scratch folder seen now is one a killed attempt left.
        for leftover in dest.parent.glob(f".{dest.name}.part-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        about, at_most = size_bounds(relpath)
        free = shutil.disk_usage(dest.parent).free
        if free - DISK_RESERVE < about:
            raise DataError(f"{relpath} holds about {size_text(about)} of features and the disk holding {dest.parent} "
                            f"has {size_text(free)} free: free some space or choose another --data-root")
        say(f"downloading {relpath} from MMSA's Google Drive folder to {dest}")
        _fetch_verified(downloader, relpath, dest, SizeLimit(relpath, at_most, dest.parent, manual), manual)
    finally:
        lock.release()
    say(f"{dest}: {_verified_how(relpath)}")


def _fetch_verified(downloader: Downloader, relpath: str, dest: Path, limit: SizeLimit, manual: str) -> None:
    scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.part-"))
    tmp = scratch / dest.name
    try:
        try:
            downloader.fetch(relpath, tmp, limit)
            if tmp.is_file():
                limit.check_size(tmp.stat().st_size)     # whatever the downloader did with the hook
        except TransferLimit as e:
            raise DataError(str(e)) from None
        except Offline as e:
            raise DataError(f"no network ({e}): {manual}") from None
        except FetchFailed as e:
            raise DataError(f"could not download {relpath}: {e}; {manual}") from None
        if not tmp.is_file():
            raise DataError(f"the download of {relpath} produced no file; {manual}")
        problem = _verify(tmp, relpath, final=False)
        if problem is not None:
            raise DataError(f"the downloaded {relpath} was discarded: {problem}; try again later, or {manual}")
        os.chmod(tmp, plain_file_mode(dest.parent))    # gdown's temporary file is 0600
        os.replace(tmp, dest)
        published = published_sha256(relpath)
        if published:    # just verified equal to it: the next load need not hash gigabytes again
            remember(dest, file_version(dest), {"sha256": published})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)    # after a failure or interrupt; empty after os.replace


# ------------------------------------------------------------------------------ --check

@dataclass
class FileStatus:
    dataset: str
    setting: str          # 'unaligned' | 'aligned'
    path: Path
    state: str            # 'verified' (sha256, or structure where none is published) | 'present' | 'bad' | 'missing'
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("verified", "present")


def check(data_root=None) -> list[FileStatus]:
    """One FileStatus per feature file of every dataset in configs/datasets.yaml."""
    from ..mintrec import missing_files, resolve_mintrec_folder
    root, _ = data_root_of(data_root)
    out = []
    for name, facts in datasets_table().items():
        if facts["format"] == "mintrec":
            folder = resolve_mintrec_folder(root)[0]
            lacking = missing_files(folder)
            if not folder.is_dir():
                out.append(FileStatus(name, "unaligned", folder, "missing", f"get it as {MINTREC_HOME} describes"))
            elif lacking:
                out.append(FileStatus(name, "unaligned", folder, "missing",
                                      f"lacks {', '.join(lacking)}; get it as {MINTREC_HOME} describes"))
            else:
                out.append(FileStatus(name, "unaligned", folder, "present", "no published sha256"))
            continue
        for setting in facts["files"]:
            aligned = setting == "aligned"
            path = resolve_feature_path(name, aligned, data_root=root)
            relpath = _relpath(name, aligned)
            if not path.is_file():
                fix = f"python run.py download {name}{' --aligned' if aligned else ''}{root_option(root)}"
                blocked = _blocked(path, root)
                if blocked:     # a download would fetch the whole file, then fail to put it there
                    out.append(FileStatus(name, setting, path, "bad", f"{blocked}: move it away, then run `{fix}`"))
                else:
                    out.append(FileStatus(name, setting, path, "missing", f"run `{fix}`"))
                continue
            problem = _verify(path, relpath)
            if problem is not None:
                out.append(FileStatus(name, setting, path, "bad", problem))
            elif published_sha256(relpath):
                out.append(FileStatus(name, setting, path, "verified", "sha256 matches MMSA's README"))
            else:
                out.append(FileStatus(name, setting, path, "verified",
                                      "loads and validates, with the real sizes and shapes; "
                                      "MMSA publishes no sha256 for it"))
    return out
