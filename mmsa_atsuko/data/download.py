"""Fetch MMSA's published feature files, verify them, and check what a data root holds.

`download(names)` gets MMSA feature pickles (MOSI, MOSEI, CH-SIMS, CH-SIMS v2) from the
public Google Drive folder named in MMSA's README (thuiar/MMSA:README.md) and puts it where
`load_dataset` looks: `<data root>/<datasets.yaml files entry>`, e.g.
`~/MMSA/datasets/MOSI/Processed/unaligned_50.pkl`. The file is written under a temporary
name next to its final one, checked, and only then renamed, so an interrupted, truncated or
mismatching download never leaves anything under the final name:

- where MMSA publishes a SHA-256 (MOSI and MOSEI both settings, SIMS), it must match;
- where it publishes none (SIMSv2), the file must load as the loader loads it (restricted
  unpickler, every split's keys, shapes and values validated), have the real file's split
  sizes and padded shapes (datasets.yaml `real_sizes`, `real_shapes`), unique string ids, and
  no generator's stamp: a truncated, wrong or synthetic file is not taken for the dataset;
- no file may be a web page (Google Drive answers a quota or permission problem with an
  HTML page, which would otherwise be saved as the dataset).

A download is capped: it may not bring more than a bound derived from the same facts (see
`size_bounds`), a server announcing more is refused at its first chunk, and the free space
of the destination's disk is checked before fetching and while the bytes arrive. Two
downloads of one file take turns (a lock beside it, `.<file>.download.lock`): the second
waits, then finds the file there and verified. The file gets the permissions a plain
`open()` would give it (gdown's temporary file is 0600). A folder (or anything but a
regular file) where the file goes is reported before anything is fetched.

Without a network, `download` fails at once with one line saying where to get the file by
hand (the Drive folder, or MMSA's BaiduYun mirror) and where to put it.

`check(data_root)` reports, for every dataset in configs/datasets.yaml, whether its files
are there and, where a checksum is published, whether they match it. MIntRec is not in
MMSA's folder; the check reports its folder all the same, and where to get it.

The network sits behind `Downloader` (two methods), so tests swap in a fake that serves
local files: `download(name, downloader=fake)`. `GdownDownloader` is the real one.
"""
from __future__ import annotations

import inspect
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from filelock import FileLock, Timeout

from ..atomic import plain_file_mode
from ..cache import file_version, sha256_of
from ..config import datasets_table
from ..errors import DataError, UsageError
from . import mmsa_format
from .mmsa_format import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, resolve_feature_path
from .spec import MODALITIES

MMSA_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1A2S4pqCHryGmiqnNSPLv7rEg63WvjCSk"
MMSA_BAIDU = "https://pan.baidu.com/s/1a1bDX5htPsZjsRyHcvCKHw?pwd=qq0b, extraction code qq0b"
MINTREC_HOME = "https://github.com/thuiar/MIntRec"



def _published_sha256() -> dict[str, str]:
    """path inside MMSA's folder (= the datasets.yaml `files` entry) -> the SHA-256 its README
    publishes (datasets.yaml `sha256`; thuiar/MMSA:README.md). SIMSv2 has none."""
    return {facts["files"][setting]: digest for facts in datasets_table().values()
            for setting, digest in (facts.get("sha256") or {}).items()}


PUBLISHED_SHA256 = _published_sha256()


def _real_layout() -> dict[str, dict]:
    """path inside MMSA's folder -> {'split_sizes', 'seq_lens', 'feature_dims'} of the real file,
    from datasets.yaml `real_sizes` and `real_shapes` (the facts the synthetic generator copies at
    --size full). A block without them, or with them malformed, has no entry: downloading it is
    refused (see `_layout`), never done unchecked."""
    out = {}
    for facts in datasets_table().values():
        if facts["format"] != "mmsa":
            continue
        sizes, shapes = facts.get("real_sizes"), facts.get("real_shapes")
        for setting, relpath in facts["files"].items():
            try:
                out[relpath] = {"split_sizes": {s: int(sizes[s]) for s in mmsa_format.SPLITS},
                                "seq_lens": {m: int(shapes[setting][m][0]) for m in MODALITIES},
                                "feature_dims": {m: int(shapes[setting][m][1]) for m in MODALITIES}}
            except (KeyError, IndexError, TypeError, ValueError):
                continue
    return out


REAL_LAYOUT = _real_layout()

# A download may bring at most SIZE_SLACK times the real file's features as 4-byte floats plus
# SIZE_MARGIN: room for float64 arrays, BERT ids, raw text, labels and ids, far below what a
# broken or hostile server could send (see `size_bounds`).
FLOAT_BYTES = 4
SIZE_SLACK = 3
SIZE_MARGIN = 256 << 20
# Keep this much of the disk free: a download that would go below it stops.
DISK_RESERVE = 256 << 20
DISK_CHECK_EVERY = 64 << 20    # bytes between free-space checks while a file arrives


def _layout(relpath: str) -> dict:
    if relpath not in REAL_LAYOUT:
        name, aligned = _setting_of(relpath)
        raise DataError(f"configs/datasets.yaml (or your --datasets file) gives {name} no usable real_sizes and "
                        f"real_shapes{' for its aligned file' if aligned else ''}: a download's size cap and, "
                        f"without a published sha256, its check come from them; add them to its block")
    return REAL_LAYOUT[relpath]


def size_bounds(relpath: str) -> tuple[int, int]:
    """(about, at_most) in bytes for the file at `relpath`: its features as 4-byte floats at the
    real split sizes and shapes, and the most a download of it may bring."""
    layout = _layout(relpath)
    per_sample = sum(layout["seq_lens"][m] * layout["feature_dims"][m] for m in MODALITIES) * FLOAT_BYTES
    about = per_sample * sum(layout["split_sizes"].values())
    return about, SIZE_SLACK * about + SIZE_MARGIN


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _downloadable() -> tuple[str, ...]:
    """The datasets in MMSA's published folder (datasets.yaml `download: mmsa-drive`)."""
    return tuple(name for name, facts in datasets_table().items() if facts.get("download") == "mmsa-drive")


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class Offline(Exception):
    """The downloader cannot reach its host at all."""


class FetchFailed(Exception):
    """The host answered, but the file could not be fetched (moved, quota, permission...)."""


class TransferLimit(Exception):
    """A download refused or stopped for its size or the disk's free space; the message is the
    one line to print."""


class SizeLimit:
    """A download's progress hook, `limit(bytes_so_far, bytes_announced_or_None)`, raising
    TransferLimit once the file is bigger than `at_most`, when the size the server announces is,
    or does not fit on the disk of `folder`, or when that disk is down to DISK_RESERVE."""

    def __init__(self, relpath: str, at_most: int, folder: Path, manual: str):
        self.relpath, self.at_most, self.folder, self.manual = relpath, at_most, folder, manual
        self.announced_checked, self.next_disk_check = False, 0

    def __call__(self, so_far: int, announced: int | None) -> None:
        if announced is not None and not self.announced_checked:
            self.announced_checked = True
            if announced > self.at_most:
                raise TransferLimit(
                    f"the server announced {_size(announced)} for {self.relpath}, more than the real file can hold "
                    f"(at most {_size(self.at_most)}, from its sizes and shapes in configs/datasets.yaml): refused; "
                    f"try again later, or {self.manual}")
            free = shutil.disk_usage(self.folder).free
            if announced - so_far > free - DISK_RESERVE:
                raise TransferLimit(
                    f"{self.relpath} is {_size(announced)} and the disk holding {self.folder} has {_size(free)} "
                    f"free: free some space or choose another --data-root")
        self.check_size(so_far)
        if so_far >= self.next_disk_check:
            self.next_disk_check = so_far + DISK_CHECK_EVERY
            free = shutil.disk_usage(self.folder).free
            if free < DISK_RESERVE:
                raise TransferLimit(
                    f"stopped downloading {self.relpath} at {_size(so_far)}: the disk holding {self.folder} "
                    f"has only {_size(free)} left; free some space or choose another --data-root")

    def check_size(self, size: int) -> None:
        if size > self.at_most:
            raise TransferLimit(
                f"stopped downloading {self.relpath} at {_size(size)}: more than the real file can hold "
                f"(at most {_size(self.at_most)}, from its sizes and shapes in configs/datasets.yaml); "
                f"try again later, or {self.manual}")


class Downloader(Protocol):
    """Where the bytes come from. `fetch` writes the file at `relpath` of MMSA's published
    folder (e.g. 'MOSI/Processed/unaligned_50.pkl') to `dest`, calling `progress(bytes so far,
    bytes announced or None)` as bytes arrive and letting what it raises (TransferLimit) stop
    the transfer; it raises Offline or FetchFailed. Anything it leaves at `dest` after raising
    is deleted by the caller."""

    def check_online(self) -> None: ...

    def fetch(self, relpath: str, dest: Path, progress: Callable[[int, int | None], None]) -> None: ...


# ------------------------------------------------------------------------------ gdown

class GdownDownloader:
    """MMSA's public Google Drive folder, through gdown.

    gdown's `download_folder` lists a folder's whole tree before anything else, and MMSA's
    folder also holds the raw videos, so the file is found by listing one level at a time
    along its path (Drive's public folder view, the page gdown itself parses); the file is
    then fetched with `gdown.download`.
    """

    HOST = "drive.google.com"

    def __init__(self, folder_url: str = MMSA_DRIVE_FOLDER, timeout: float = 10.0):
        self.folder_id = folder_url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        self.timeout = timeout

    def check_online(self) -> None:
        if any(os.environ.get(v) for v in PROXY_VARIABLES):
            return          # behind a proxy only a real request can tell; fetch reports its failure
        try:
            socket.create_connection((self.HOST, 443), timeout=self.timeout).close()
        except OSError as e:
            raise Offline(f"cannot reach {self.HOST} ({e.strerror or type(e).__name__})") from None

    def _list(self, folder_id: str) -> dict:
        """{name: (id, is_folder)} of one public Drive folder."""
        import requests
        try:
            page = requests.get("https://drive.google.com/embeddedfolderview", params={"id": folder_id},
                                timeout=self.timeout)
        except requests.RequestException as e:
            raise FetchFailed(f"listing a Drive folder failed ({type(e).__name__})") from None
        if page.status_code != 200:
            raise FetchFailed(f"Drive answered {page.status_code} when listing a folder of MMSA's share")
        return parse_folder_view(page.text)

    def fetch(self, relpath: str, dest: Path, progress: Callable[[int, int | None], None]) -> None:
        try:
            import gdown
        except ImportError:
            raise FetchFailed("gdown is not installed (pip install gdown)") from None
        if "progress" not in inspect.signature(gdown.download).parameters:
            raise FetchFailed(f"gdown {getattr(gdown, '__version__', '?')} has no progress hook, which caps a "
                              f"download's size: pip install 'gdown>=6.0'")
        node, parts = self.folder_id, relpath.split("/")
        for depth, part in enumerate(parts):
            listing = self._list(node)
            if part not in listing:
                raise FetchFailed(f"MMSA's Drive folder has no {relpath} (no {part!r} where it should be; "
                                  f"found {', '.join(sorted(listing))[:120] or 'nothing'})")
            node, is_folder = listing[part]
            if is_folder != (depth < len(parts) - 1):
                raise FetchFailed(f"in MMSA's Drive folder, {part!r} of {relpath} is "
                                  f"{'a folder' if is_folder else 'a file'}")
        try:
            # gdown calls `progress` after each chunk, and what it raises stops the transfer.
            gdown.download(id=node, output=str(dest), quiet=False, timeout=self.timeout, progress=progress)
        except TransferLimit:
            raise
        except Exception as e:   # gdown raises its own errors and requests' ones
            raise FetchFailed(f"gdown failed: {type(e).__name__}: {' '.join(str(e).split())[:160]}") from None


def parse_folder_view(html: str) -> dict:
    """{name: (id, is_folder)} from Drive's public folder view (`embeddedfolderview`)."""
    import re

    from bs4 import BeautifulSoup
    entries = {}
    for link in BeautifulSoup(html, "html.parser").find_all("a"):
        href, name = link.get("href") or "", link.get_text(strip=True)
        file_match = re.search(r"/file/d/([-\w]{20,})", href)
        folder_match = re.search(r"/folders/([-\w]{20,})", href)
        if name and file_match:
            entries[name] = (file_match.group(1), False)
        elif name and folder_match:
            entries[name] = (folder_match.group(1), True)
    return entries


def default_downloader() -> Downloader:
    return GdownDownloader()


# ------------------------------------------------------------------------------ download

def data_root_of(data_root=None) -> tuple[Path, str]:
    """The data root and where it came from: --data-root, $MMSA_DATA_ROOT, else the default."""
    if data_root is not None:
        return Path(data_root).expanduser(), "--data-root"
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser(), f"${DATA_ROOT_ENV}"
    return Path(DEFAULT_DATA_ROOT).expanduser(), "the default; set --data-root or $MMSA_DATA_ROOT"


def manual_steps(relpaths, root: Path) -> str:
    """Where to get files by hand and where to put them (one line)."""
    where = (f"put it at {root / relpaths[0]}" if len(relpaths) == 1 else
             f"put them under {root} at the same relative paths")
    return (f"download {', '.join(relpaths)} by hand from MMSA's Google Drive folder {MMSA_DRIVE_FOLDER} "
            f"(or its BaiduYun mirror {MMSA_BAIDU}) and {where}, then run `python run.py download --check`")


def _relpath(name: str, aligned: bool) -> str:
    """The file's path in MMSA's folder and under the data root (datasets.yaml `files`)."""
    return datasets_table()[name]["files"]["aligned" if aligned else "unaligned"]


def _check_name(name: str) -> str:
    name = str(name).lower()
    if name == "mintrec":
        raise UsageError(f"mintrec is not in MMSA's folder: get the MIntRec folder as {MINTREC_HOME} "
                         f"describes and put it at <data root>/MIntRec")
    if name not in _downloadable():
        raise UsageError(f"cannot download {name!r}: choose from {', '.join(_downloadable())}")
    return name


def _setting_of(relpath: str) -> tuple[str, bool]:
    """(dataset, aligned) of a datasets.yaml `files` entry."""
    for name, facts in datasets_table().items():
        for setting, path in facts["files"].items():
            if path == relpath:
                return name, setting == "aligned"
    raise KeyError(relpath)


def _check_structure(path: Path, relpath: str) -> str | None:
    """None if `path` loads as the dataset of `relpath` (the checks every run makes, ids strings
    and unique) and has the real file's split sizes and padded shapes, else the first mismatch."""
    name, aligned = _setting_of(relpath)
    try:
        layout = _layout(relpath)
    except DataError as e:
        return str(e)
    try:
        spec = mmsa_format.load_dataset(name, aligned=aligned, feature_path=path, strict_ids=True).spec
    except DataError as e:
        return f"it is not a valid {name} feature file: {e}"
    if spec.synthetic:
        return f"it is generated data ({spec.source}), not MMSA's {name} file"
    for split, n in layout["split_sizes"].items():
        if spec.split_sizes[split] != n:
            return (f"its {split} split has {spec.split_sizes[split]} samples, the real {name} file's has {n} "
                    f"(configs/datasets.yaml real_sizes)")
    for m in MODALITIES:
        found = (spec.seq_lens[m], spec.feature_dims[m])
        real = (layout["seq_lens"][m], layout["feature_dims"][m])
        if found != real:
            return (f"its {m} features are {found[0]} steps x {found[1]} dims per sample, the real {name} file's "
                    f"are {real[0]} x {real[1]} (configs/datasets.yaml real_shapes)")
    return None


def _blocked(dest: Path, root: Path) -> str | None:
    """What stands where the file `dest` goes, if anything: a folder, a broken link or a special
    file at `dest`, or a file where one of its folders under `root` goes."""
    if os.path.lexists(dest) and not dest.is_file():
        what = ("a folder, not a file" if dest.is_dir() else "a broken symbolic link" if dest.is_symlink()
                else "not a regular file")
        return f"{dest} is {what}"
    for folder in dest.parents:
        if folder.is_dir():
            return None
        if os.path.lexists(folder):
            return f"{folder} is a file, not a folder"
        if folder == root:
            break
    return None


def _verify(path: Path, relpath: str, *, final: bool = True) -> str | None:
    """None if `path` is a good copy of `relpath`, else what is wrong with it: its published
    sha256, or where none is published, its structure as the loader checks it. `final`: `path`
    is where the file stays, so its sha256 is worth remembering (a download's temporary is not)."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    if not head:
        return "it is empty"
    if head.startswith(b"<"):        # no pickle opcode is '<'; Drive's quota and error pages are HTML
        return "it is a web page, not a pickle (Google Drive's answer when its quota is exceeded or the file moved)"
    expected = PUBLISHED_SHA256.get(relpath)
    if expected is not None:
        actual = sha256_of(path, remember_it=final)
        if actual != expected:
            return f"its sha256 is {actual}, MMSA publishes {expected}"
        return None
    return _check_structure(path, relpath)


def _verified_how(relpath: str) -> str:
    return ("sha256 verified" if relpath in PUBLISHED_SHA256 else
            "structure, sizes and shapes verified; MMSA publishes no sha256")


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

    downloader = downloader or default_downloader()
    try:
        downloader.check_online()
    except Offline as e:
        raise DataError(f"no network ({e}): {manual_steps([r for _, r, _ in todo], root)}") from None
    for dest, relpath, seen in todo:
        _fetch_one(downloader, relpath, dest, root, say, seen)
    return [dest for dest, _ in wanted]


def _download_lock(dest: Path, relpath: str, say) -> FileLock:
    """The lock two downloads of one file take turns on, held; says so when it has to wait. A
    separate `.<file>.download.lock` beside it (as results/folder.py's store_lock); a killed
    holder's lock is dropped by the OS."""
    lock = FileLock(dest.parent / f".{dest.name}.download.lock")
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
            raise DataError(f"{blocked}, where the download of {relpath} goes: move it away, then run the command again")
        if dest.is_file() and file_version(dest) != seen and _verify(dest, relpath) is None:
            say(f"{dest} was put there by another download meanwhile ({_verified_how(relpath)}); nothing to do")
            return
        # Every live attempt holds the lock, so a scratch folder seen now is one a killed attempt left.
        for leftover in dest.parent.glob(f".{dest.name}.part-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        about, at_most = size_bounds(relpath)
        free = shutil.disk_usage(dest.parent).free
        if free - DISK_RESERVE < about:
            raise DataError(f"{relpath} holds about {_size(about)} of features and the disk holding {dest.parent} "
                            f"has {_size(free)} free: free some space or choose another --data-root")
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
    from .mintrec import missing_files, resolve_mintrec_folder
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
                fix = f"python run.py download {name}{' --aligned' if aligned else ''}"
                blocked = _blocked(path, root)
                if blocked:     # a download would fetch the whole file, then fail to put it there
                    out.append(FileStatus(name, setting, path, "bad", f"{blocked}: move it away, then run `{fix}`"))
                else:
                    out.append(FileStatus(name, setting, path, "missing", f"run `{fix}`"))
                continue
            problem = _verify(path, relpath)
            if problem is not None:
                out.append(FileStatus(name, setting, path, "bad", problem))
            elif relpath in PUBLISHED_SHA256:
                out.append(FileStatus(name, setting, path, "verified", "sha256 matches MMSA's README"))
            else:
                out.append(FileStatus(name, setting, path, "verified",
                                      "loads and validates, with the real sizes and shapes; "
                                      "MMSA publishes no sha256 for it"))
    return out
