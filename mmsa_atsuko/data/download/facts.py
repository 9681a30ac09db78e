"""What MMSA's published feature files are, and what fetching one may cost.

Every fact comes from configs/datasets.yaml (or a --datasets file): which datasets are in
MMSA's folder (`download: mmsa-drive`), each file's path there and under the data root
(`files`), the SHA-256 MMSA's README publishes (`sha256`), and the real file's split sizes and
padded shapes (`real_sizes`, `real_shapes`). A download may not bring more than a bound derived
from those facts (`size_bounds`), and must leave DISK_RESERVE of its disk free.
"""
from __future__ import annotations

from ...config import datasets_table, real_layout
from ...config import published_sha256 as config_published_sha256
from ...errors import DataError, UsageError
from ..spec import MODALITIES

MINTREC_HOME = "https://github.com/thuiar/MIntRec"


def published_sha256(relpath: str) -> str | None:
    """The SHA-256 MMSA's README publishes for the file at `relpath` in its folder (`config.published_sha256`),
    read from the table as it is now; None for SIMSv2's."""
    return config_published_sha256(*_setting_of(relpath))


def real_layout_of(relpath: str) -> dict:
    """The real split sizes and padded shapes of the file at `relpath` (`config.real_layout`). A block
    without them, or with them malformed, is refused: a download is never done unchecked."""
    name, aligned = _setting_of(relpath)
    layout = real_layout(name, "aligned" if aligned else "unaligned")
    if layout is None:
        raise DataError(f"configs/datasets.yaml (or your --datasets file) gives {name} no usable real_sizes and "
                        f"real_shapes{' for its aligned file' if aligned else ''}: a download's size cap and, "
                        f"without a published sha256, its check come from them; add them to its block")
    return layout


# A download may bring at most SIZE_SLACK times the real file's features as 4-byte floats plus
# SIZE_MARGIN: room for float64 arrays, BERT ids, raw text, labels and ids, far below what a
# broken or hostile server could send (see `size_bounds`).
FLOAT_BYTES = 4
SIZE_SLACK = 3
SIZE_MARGIN = 256 << 20
# Keep this much of the disk free: a download that would go below it stops.
DISK_RESERVE = 256 << 20
DISK_CHECK_EVERY = 64 << 20    # bytes between free-space checks while a file arrives


def size_bounds(relpath: str) -> tuple[int, int]:
    """(about, at_most) in bytes for the file at `relpath`: its features as 4-byte floats at the
    real split sizes and shapes, and the most a download of it may bring."""
    layout = real_layout_of(relpath)
    per_sample = sum(layout["seq_lens"][m] * layout["feature_dims"][m] for m in MODALITIES) * FLOAT_BYTES
    about = per_sample * sum(layout["split_sizes"].values())
    return about, SIZE_SLACK * about + SIZE_MARGIN


def size_text(n: int) -> str:
    """A number of bytes as a line says it: 1.2 GB, 3.4 MB, 5.6 kB or 789 bytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _downloadable() -> tuple[str, ...]:
    """The datasets in MMSA's published folder (datasets.yaml `download: mmsa-drive`)."""
    return tuple(name for name, facts in datasets_table().items() if facts.get("download") == "mmsa-drive")


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
