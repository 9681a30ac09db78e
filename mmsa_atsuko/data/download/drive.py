"""Where the bytes come from: MMSA's public Google Drive folder, behind `Downloader`.

The network sits behind `Downloader` (two methods), so tests swap in a fake that serves
local files: `download(name, downloader=fake)`. `GdownDownloader` is the real one.

A download is capped: its progress hook (`SizeLimit`) lets it bring no more than a bound
derived from the real file's sizes and shapes (see `size_bounds`), refuses a server announcing
more at its first chunk, and checks the free space of the destination's disk while the bytes
arrive.
"""
from __future__ import annotations

import inspect
import os
import shlex
import shutil
import socket
from pathlib import Path
from typing import Callable, Protocol

from ...errors import one_line
from .facts import DISK_CHECK_EVERY, DISK_RESERVE, size_text

MMSA_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1A2S4pqCHryGmiqnNSPLv7rEg63WvjCSk"
MMSA_BAIDU = "https://pan.baidu.com/s/1a1bDX5htPsZjsRyHcvCKHw?pwd=qq0b, extraction code qq0b"

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
                    f"the server announced {size_text(announced)} for {self.relpath}, more than the real file can "
                    f"hold (at most {size_text(self.at_most)}, from its sizes and shapes in configs/datasets.yaml): "
                    f"refused; try again later, or {self.manual}")
            free = shutil.disk_usage(self.folder).free
            if announced - so_far > free - DISK_RESERVE:
                raise TransferLimit(
                    f"{self.relpath} is {size_text(announced)} and the disk holding {self.folder} has "
                    f"{size_text(free)} free: free some space or choose another --data-root")
        self.check_size(so_far)
        if so_far >= self.next_disk_check:
            self.next_disk_check = so_far + DISK_CHECK_EVERY
            free = shutil.disk_usage(self.folder).free
            if free < DISK_RESERVE:
                raise TransferLimit(
                    f"stopped downloading {self.relpath} at {size_text(so_far)}: the disk holding {self.folder} "
                    f"has only {size_text(free)} left; free some space or choose another --data-root")

    def check_size(self, size: int) -> None:
        if size > self.at_most:
            raise TransferLimit(
                f"stopped downloading {self.relpath} at {size_text(size)}: more than the real file can hold "
                f"(at most {size_text(self.at_most)}, from its sizes and shapes in configs/datasets.yaml); "
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
            raise FetchFailed(f"gdown failed: {one_line(e)}") from None


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


def root_option(root: Path) -> str:
    """` --data-root ROOT` for a command a line tells the user to type: without it, the command copied as written
    looked in $MMSA_DATA_ROOT or the default, not in the root the line was about."""
    return f" --data-root {shlex.quote(str(root))}"


def manual_steps(relpaths, root: Path) -> str:
    """Where to get files by hand and where to put them (one line)."""
    where = (f"put it at {root / relpaths[0]}" if len(relpaths) == 1 else
             f"put them under {root} at the same relative paths")
    return (f"download {', '.join(relpaths)} by hand from MMSA's Google Drive folder {MMSA_DRIVE_FOLDER} "
            f"(or its BaiduYun mirror {MMSA_BAIDU}) and {where}, then run "
            f"`python run.py download --check{root_option(root)}`")
