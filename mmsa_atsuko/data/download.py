"""Fetch MMSA's published feature files, verify them, and check what a data root holds.

`download(names)` gets MMSA feature pickles (MOSI, MOSEI, CH-SIMS, CH-SIMS v2) from the
public Google Drive folder named in MMSA's README (thuiar/MMSA:README.md) and puts it where
`load_dataset` looks: `<data root>/<datasets.yaml files entry>`, e.g.
`~/MMSA/datasets/MOSI/Processed/unaligned_50.pkl`. The file is written under a temporary
name next to its final one, checked, and only then renamed, so an interrupted, truncated or
mismatching download never leaves anything under the final name:

- where MMSA publishes a SHA-256 (MOSI and MOSEI both settings, SIMS), it must match;
- where it publishes none (SIMSv2), the file must load as the loader loads it (restricted
  unpickler, every split's keys, shapes and values validated);
- no file may be a web page (Google Drive answers a quota or permission problem with an
  HTML page, which would otherwise be saved as the dataset).

Without a network, `download` fails at once with one line saying where to get the file by
hand (the Drive folder, or MMSA's BaiduYun mirror) and where to put it.

`check(data_root)` reports, for every dataset in configs/datasets.yaml, whether its files
are there and, where a checksum is published, whether they match it. MIntRec is not in
MMSA's folder; the check reports its folder all the same, and where to get it.

The network sits behind `Downloader` (two methods), so tests swap in a fake that serves
local files: `download(name, downloader=fake)`. `GdownDownloader` is the real one.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..cache import sha256_of
from ..config import datasets_table
from ..errors import DataError, UsageError
from . import mmsa_format
from .mmsa_format import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, resolve_feature_path

MMSA_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1A2S4pqCHryGmiqnNSPLv7rEg63WvjCSk"
MMSA_BAIDU = "https://pan.baidu.com/s/1a1bDX5htPsZjsRyHcvCKHw?pwd=qq0b, extraction code qq0b"
MINTREC_HOME = "https://github.com/thuiar/MIntRec"



def _published_sha256() -> dict[str, str]:
    """path inside MMSA's folder (= the datasets.yaml `files` entry) -> the SHA-256 its README
    publishes (datasets.yaml `sha256`; thuiar/MMSA:README.md). SIMSv2 has none."""
    return {facts["files"][setting]: digest for facts in datasets_table().values()
            for setting, digest in (facts.get("sha256") or {}).items()}


PUBLISHED_SHA256 = _published_sha256()


def _downloadable() -> tuple[str, ...]:
    """The datasets in MMSA's published folder (datasets.yaml `download: mmsa-drive`)."""
    return tuple(name for name, facts in datasets_table().items() if facts.get("download") == "mmsa-drive")


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class Offline(Exception):
    """The downloader cannot reach its host at all."""


class FetchFailed(Exception):
    """The host answered, but the file could not be fetched (moved, quota, permission...)."""


class Downloader(Protocol):
    """Where the bytes come from. `fetch` writes the file at `relpath` of MMSA's published
    folder (e.g. 'MOSI/Processed/unaligned_50.pkl') to `dest`, raising Offline or
    FetchFailed; anything it leaves at `dest` after raising is deleted by the caller."""

    def check_online(self) -> None: ...

    def fetch(self, relpath: str, dest: Path) -> None: ...


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

    def fetch(self, relpath: str, dest: Path) -> None:
        try:
            import gdown
        except ImportError:
            raise FetchFailed("gdown is not installed (pip install gdown)") from None
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
            gdown.download(id=node, output=str(dest), quiet=False, timeout=self.timeout)
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
    """None if `path` loads as the dataset of `relpath` (the checks every run makes), else why not."""
    name, aligned = _setting_of(relpath)
    try:
        mmsa_format.load_dataset(name, aligned=aligned, feature_path=path)
    except DataError as e:
        return f"it is not a valid {name} feature file: {e}"
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


def download(names, *, aligned: bool = False, data_root=None, downloader: Downloader | None = None,
             say: Callable[[str], None] = print) -> list[Path]:
    """Fetch MMSA feature files (`names`: one dataset or several) into the data root; return
    their paths. See the module docstring.

    A file already there that verifies is kept; one that fails verification is downloaded
    again (the bad copy is replaced only by a good one). Raises DataError (one line) when
    offline, before fetching anything, or when a download fails or does not verify: nothing
    is left under that file's final name then, and no temporary file either.
    """
    names = [names] if isinstance(names, str) else list(names)
    root, _ = data_root_of(data_root)
    wanted = []
    for name in map(_check_name, names):
        dest = resolve_feature_path(name, aligned, data_root=root)     # UsageError for sims --aligned
        wanted.append((dest, _relpath(name, aligned)))

    todo = []
    for dest, relpath in wanted:
        problem = _verify(dest, relpath) if dest.is_file() else "missing"
        if problem is None:
            how = "sha256 verified" if relpath in PUBLISHED_SHA256 else "structure verified; MMSA publishes no sha256"
            say(f"{dest} is already there ({how}); nothing to do")
        else:
            if problem != "missing":
                say(f"{dest} is there but {problem}: downloading a fresh copy")
            todo.append((dest, relpath))
    if not todo:
        return [dest for dest, _ in wanted]

    downloader = downloader or default_downloader()
    try:
        downloader.check_online()
    except Offline as e:
        raise DataError(f"no network ({e}): {manual_steps([r for _, r in todo], root)}") from None
    for dest, relpath in todo:
        _fetch_one(downloader, relpath, dest, root, say)
    return [dest for dest, _ in wanted]


def _fetch_one(downloader: Downloader, relpath: str, dest: Path, root: Path, say) -> None:
    """Fetch into a private temporary folder beside `dest`, verify, rename; on any failure or
    interrupt the folder is removed and `dest` is left as it was. A folder, not a file: gdown
    writes its own `<output>XXXX.part` next to the output and keeps it after a failure (to
    resume, which a random name never does), so MOSEI-sized leftovers would pile up."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in dest.parent.glob(f".{dest.name}.part-*"):    # of an attempt killed before its cleanup
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.part-"))
    tmp = scratch / dest.name
    try:
        say(f"downloading {relpath} from MMSA's Google Drive folder to {dest}")
        try:
            downloader.fetch(relpath, tmp)
        except Offline as e:
            raise DataError(f"no network ({e}): {manual_steps([relpath], root)}") from None
        except FetchFailed as e:
            raise DataError(f"could not download {relpath}: {e}; {manual_steps([relpath], root)}") from None
        if not tmp.is_file():
            raise DataError(f"the download of {relpath} produced no file; {manual_steps([relpath], root)}")
        problem = _verify(tmp, relpath, final=False)
        if problem is not None:
            raise DataError(f"the downloaded {relpath} was discarded: {problem}; try again later, or "
                            f"{manual_steps([relpath], root)}")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)    # after a failure or interrupt; empty after os.replace
    say(f"{dest}: " + ("sha256 verified" if relpath in PUBLISHED_SHA256
                      else "structure verified (MMSA publishes no sha256 for it)"))


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
                out.append(FileStatus(name, setting, path, "missing", f"run `{fix}`"))
                continue
            problem = _verify(path, relpath)
            if problem is not None:
                out.append(FileStatus(name, setting, path, "bad", problem))
            elif relpath in PUBLISHED_SHA256:
                out.append(FileStatus(name, setting, path, "verified", "sha256 matches MMSA's README"))
            else:
                out.append(FileStatus(name, setting, path, "verified",
                                      "loads and validates; MMSA publishes no sha256 for it"))
    return out
