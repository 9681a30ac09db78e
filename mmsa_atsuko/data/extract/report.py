"""What extract skipped: `<out stem>.skipped.txt`, one "id: reason" line a video or row, and the lines printed.

An id or a reason may come from a downloaded CSV or archive, so each is written `printable`, and an id with
a space at either end quoted (`printable_id`).
"""
from __future__ import annotations

from pathlib import Path

from ...atomic import open_new, replace_with


def printable(text: str) -> str:
    """`text` with each character a terminal would act on (a newline, an escape) written as Python escapes it:
    an id or file name from a downloaded CSV or archive is one line of the skipped list, and colours nothing."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def printable_id(video_id: str) -> str:
    """`video_id` as `printable` writes it, quoted as Python quotes a string when a space starts or ends it (or it is
    empty): 'vid01 ' was shown as "vid01 : no video file", and the space that kept it from vid01.mp4 went unseen."""
    shown = printable(video_id)
    return repr(video_id) if shown != shown.strip(" ") or not shown else shown


GROUPED_SKIPS = 3      # videos (or rows) skipped for one reason that are printed as one line (the report lists each)


def skipped_report_path(out: Path) -> Path:
    return out.with_name(out.stem + ".skipped.txt")


def write_report(out: Path, skipped: dict, echo, rows_without_video=frozenset()) -> Path:
    """Write the skipped list beside `out` and print it (`rows_without_video`: the skipped ids that are
    transcript rows, not videos, so that a grouped line counts what they are)."""
    path = skipped_report_path(out)
    skipped = {printable_id(i): printable(r) for i, r in skipped.items()}
    rows_without_video = {printable_id(i) for i in rows_without_video}
    lines = [f"{i}: {r}" for i, r in sorted(skipped.items())]
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open_new(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    replace_with(path, write)        # a link planted at the report's name is replaced, never written through
    by_reason: dict[str, list[str]] = {}
    for video_id, reason in sorted(skipped.items()):
        by_reason.setdefault(reason, []).append(video_id)
    for reason, ids in by_reason.items():
        if len(ids) < GROUPED_SKIPS:
            for video_id in ids:
                echo(f"skipped {video_id}: {reason}")
        else:            # one line, so that a dozen videos without a row do not bury the one that failed
            shown = ", ".join(ids[:GROUPED_SKIPS]) + (", ..." if len(ids) > GROUPED_SKIPS else "")
            what = "transcript rows" if ids[0] in rows_without_video else "videos"    # one reason, one kind
            echo(f"skipped {len(ids)} {what} ({shown}): {reason}")
    echo(f"{len(lines)} skipped; the list is in {path}")
    return path
