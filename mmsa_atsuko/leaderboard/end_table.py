"""The table `run.py -m MODEL -d DATASET` prints at its end: per dataset, one line per seed and, per model with
several seeds, their mean ± std as the leaderboard's cells have it (`results.Cell`), the leaderboard's notes of the
rows' data and preset, and how many of the records this command appended to the store."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ..data.conditions import condition_of
from ..data.stamp import data_kind_text, is_synthetic
from ..data.synthetic_stress import synthetic_kind_text
from ..metrics.names import metric_keys, table_order
from ..results import Cell, json_safe
from .full_config import full_config_note
from .notes import preset_note, trainer_overrides_note
from .real_data import not_real_data, not_real_note


def print_table(records, out, appended: set, stored_before: set | None = None, rerun: bool = False) -> None:
    """Per dataset: one line per seed, then, per model with several seeds, their mean ± sample std
    (ddof 1, as the leaderboard's cells); then how many of them this command appended to the store (`appended`,
    their run ids, as the call that trained them says: the others were recorded before, or by another process
    while this one ran, which a look at the store before and after counted as this call's). `stored_before`: the
    run ids in the store before the call, which tell the records another process appended meanwhile apart (a
    run.py that waited on another's run said nothing of it: "every run was already recorded"). With `rerun` a record
    not appended is one another process started after this command began (`results.serves`)."""

    def row_name(r):           # one row group per model and protocol condition
        key = condition_of(r).key()
        return f"{r['model']} [{key}]" if key else r["model"]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        keys = list(table_order(metric_keys(dataset)))          # the leaderboard's column order
        data_id, aligned = rows[0].get("data"), bool(rows[0]["aligned"])
        sizes = next((r["split_sizes"] for r in rows if r.get("split_sizes") is not None), None)
        kind = (synthetic_kind_text(data_id) if is_synthetic(data_id)
                else data_kind_text(data_id, dataset, aligned, sizes))
        label = "" if kind == "real data" else f" ({kind})"
        print(f"\n{dataset}{' aligned' if rows[0]['aligned'] else ''}{label}: test metrics of the best-valid epoch "
              f"(mean ± std: sample std, ddof 1, over seeds)")
        # As wide as the longest name, so that one past 12 characters (`tfn [modalities=TA]`) shifts no column.
        width = max(12, *(len(row_name(r)) for r in rows))
        groups = {model: [r for r in rows if row_name(r) == model] for model in dict.fromkeys(map(row_name, rows))}
        # Each model's mean ± std as the leaderboard's cell has it (`results.Cell`), in stored units; a cell over fewer
        # seeds than its row (a metric an older record lacks) ends "(n=k)", so a column is as wide as its widest.
        means = {model: {k: _mean_std(runs, k) for k in keys} for model, runs in groups.items() if len(runs) > 1}
        widths = {k: max([15, *(len(cells[k]) for cells in means.values())]) for k in keys}
        # best_epoch, as the record names it: "epoch 1" read as a run of one epoch.
        print(f"{'model':<{width}} {'seed':>5} {'best_epoch':>10} " + " ".join(f"{k:>{widths[k]}}" for k in keys))
        for model, runs in groups.items():
            for r in runs:
                cells = " ".join(f"{_fmt(r['metrics'].get(k)):>{widths[k]}}" for k in keys)
                print(f"{model:<{width}} {r['seed']:>5} {r.get('best_epoch', '?'):>10} {cells}")
            if model in means:
                cells = " ".join(f"{means[model][k]:>{widths[k]}}" for k in keys)
                print(f"{model:<{width}} {'mean ± std':>16} {cells}")
        # What the leaderboard notes of these rows' data and preset (leaderboard/notes.py, real_data.py): a table of
        # runs at --preset small, or on another file than MMSA's, read as the models' own numbers on the paper's data.
        # As the store holds them: a constant predictor's NaN Corr is null there, and check_ok_record refuses a NaN.
        unreal = not_real_data([json_safe(r) for r in rows]).get((dataset, aligned, data_id), "")
        labelled = [SimpleNamespace(label=model, records=runs) for model, runs in groups.items()]
        # and the keys set apart from the preset or the full config (`--max-epochs 1`): run.py said nothing of a cap
        for note in (not_real_note(unreal) + preset_note(labelled) + trainer_overrides_note(labelled)
                     + full_config_note(labelled)):
            print(f"- {note}")
    new = sum(1 for r in records if r.get("run_id") in appended)
    store = Path(out) / "runs.jsonl"
    theirs = 0 if stored_before is None else sum(1 for r in records if r.get("run_id") not in appended
                                                 and r.get("run_id") not in stored_before)
    if new:
        print(f"\n{new} record(s) appended to {store}"
              + (f"; {theirs} more by another process while this one ran" if theirs else ""))
    elif rerun:
        print(f"\nnothing appended: every run was recorded in {store} by another process after this command began")
    elif theirs == len(records):
        print(f"\nnothing appended: another process recorded every run in {store} while this one ran "
              f"(--rerun trains them again)")
    else:
        print(f"\nnothing appended: every run was already recorded in {store}"
              + (f", {theirs} of them by another process while this one ran" if theirs else "")
              + " (--rerun trains them again)")


def _fmt(v) -> str:
    return "nan" if v is None or v != v else f"{v:.4f}"


def _mean_std(runs: list[dict], key: str) -> str:
    return Cell.of(runs, key).text(pm="±", of=len(runs))
