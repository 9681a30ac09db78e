"""Whose runs are on a dataset's real file: what the leaderboard may call real data and verify may judge.

A data id tells generated data from a file (data.stamp); where MMSA publishes the file's sha256 (datasets.yaml
`sha256`), verify compares the id with it. Where it publishes none (SIMSv2, MIntRec, a dataset of your own), the id
proves nothing: a generated file with its stamp removed, or a subset of the real one, is as real by it. Such runs are
told by their file's split sizes (the record's `split_sizes`) against datasets.yaml's `real_sizes`
(`config.real_sizes_mismatch`). A record made before records held their sizes says nothing, and is taken as before.
"""
from __future__ import annotations

from ..config import published_sha256, real_sizes_mismatch
from ..data.stamp import is_synthetic
from ..results import ok_records


def not_real_data(records: list[dict]) -> dict[tuple, str]:
    """(dataset, aligned, data id) -> why the runs of that table are not on the dataset's real file, for the real
    data ids without a published sha256 whose recorded split sizes differ from the dataset's `real_sizes`."""
    reasons: dict[tuple, str] = {}
    for r in ok_records(records):
        key = (r["dataset"], bool(r["aligned"]), r["data"])
        sizes = r.get("split_sizes")
        if key in reasons or sizes is None or is_synthetic(r["data"]) or published_sha256(r["dataset"], r["aligned"]):
            continue
        mismatch = real_sizes_mismatch(r["dataset"], sizes)
        if mismatch:
            reasons[key] = f"not the real {r['dataset']} data: {mismatch}"
    return reasons
