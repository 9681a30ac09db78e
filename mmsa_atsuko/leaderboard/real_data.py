"""Whose runs are on a dataset's real file: what the leaderboard may call real data and verify may judge.

A data id tells generated data from a file (data.stamp); where MMSA publishes the file's sha256 (datasets.yaml
`sha256`), verify compares the id with it. Where it publishes none (SIMSv2, MIntRec, a dataset of your own), the id
proves nothing: a generated file with its stamp removed, or a subset of the real one, is as real by it. Such runs are
told by their file's split sizes (the record's `split_sizes`) against datasets.yaml's `real_sizes`
(`config.real_sizes_mismatch`). A record made before records held their sizes says nothing, and is taken as before.
Where it publishes one, a data id that is not it (`-d mosi --feature-path my.pkl` after `extract` on your own videos,
an edited copy) is not the published data (`data.stamp.data_kind`), and its table says so in its title and a note.
"""
from __future__ import annotations

from ..config import published_sha256, real_sizes_mismatch
from ..data.stamp import data_kind, data_kind_text, is_synthetic, kind_text
from ..results import ok_records


def not_real_data(records: list[dict]) -> dict[tuple, str]:
    """(dataset, aligned, data id) -> why the runs of that table are not on the dataset's real file: a data id that is
    not the sha256 MMSA publishes for it, or, without a published sha256, recorded split sizes that differ from the
    dataset's `real_sizes`. A dataset of your own has no real file to be, and no reason."""
    reasons: dict[tuple, str] = {}
    for r in ok_records(records):
        dataset, aligned, data_id = key = (r["dataset"], bool(r["aligned"]), r["data"])
        if key in reasons or is_synthetic(data_id):
            continue
        kind = data_kind(data_id, dataset, aligned, r.get("split_sizes"))
        if kind == "not published":
            reasons[key] = (f"{data_kind_text(data_id, dataset, aligned)}: {data_id} is not the file MMSA publishes "
                            f"for {dataset} {'aligned' if aligned else 'unaligned'} "
                            f"(sha256:{published_sha256(*key[:2])})")
        elif kind == "not real":
            reasons[key] = f"not the real {dataset} data: {real_sizes_mismatch(dataset, r['split_sizes'])}"
    return reasons


def kind_of(dataset: str, aligned: bool, data_id: str, not_real: str) -> str:
    """What a table of runs on `data_id` says of it, in a CSV's `data_kind` column: `data.stamp.data_kind`'s word, or
    'not real' for a real data id with a reason of `not_real_data` (`not_real`: its reason, or "")."""
    kind = data_kind(data_id, dataset, aligned)
    return "not real" if kind == "real" and not_real else kind


def kind_text_of(dataset: str, aligned: bool, data_id: str, not_real: str) -> str:
    """What a table's title says its rows were run on: `data.stamp.data_kind_text`, or 'not the real sims data'."""
    return kind_text(kind_of(dataset, aligned, data_id, not_real), dataset)


def not_real_note(not_real: str) -> list[str]:
    """The first note under a table whose data is not the dataset's real file (`not_real`: the reason), as its title
    says it."""
    return [f"{not_real[0].upper()}{not_real[1:]}: these runs are no reproduction of the paper's"] if not_real else []
