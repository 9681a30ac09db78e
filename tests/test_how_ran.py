"""How the seeds of a table's rows ran: precision (`--precision fp32|bf16`) and kernels (deterministic by default,
`--nondeterministic`), as the records say since issue 17. A row mixing them, or rows differing, is said under the
leaderboard, in its CSV columns `run_precision`, `run_kernels` and `run_device`, and under compare's header (and its
CSV). Kernels count on a GPU only: on the CPU they give the same numbers, so the notes name none there;
the CSVs' cells say what the records say (`results.how_ran_cells`)."""
import io

import pandas as pd
import pytest

from test_leaderboard import record
from mmsa_atsuko.leaderboard import build_tables, leaderboard
from mmsa_atsuko.results import append_record


def ran(rec: dict, precision: str | None = "fp32", deterministic: bool | None = True) -> dict:
    """`rec` as run at `precision` with `deterministic` kernels; None: a record from before the field existed."""
    rec = {k: v for k, v in rec.items() if k not in ("precision", "deterministic")}
    return rec | ({} if precision is None else {"precision": precision}) \
        | ({} if deterministic is None else {"deterministic": deterministic})


def _notes(records) -> list[str]:
    (table,) = build_tables(records)
    return [n for n in table.notes if n.startswith(("precision", "kernels", "device"))]


def on(rec: dict, device: str) -> dict:
    return rec | {"device": device}


def test_a_row_mixing_precisions_or_kernels_says_so_in_a_note_and_the_csv(tmp_path):
    """tfn's mean was over two fp32 seeds and one bf16 seed, lmf's over one nondeterministic seed among
    deterministic ones, and nothing in the table said so."""
    rows = [ran(record("tfn", 1, {"MAE": 0.9})), ran(record("tfn", 2, {"MAE": 1.0})),
            ran(record("tfn", 3, {"MAE": 1.1}), "bf16"),
            ran(record("lmf", 1, {"MAE": 0.8})), ran(record("lmf", 2, {"MAE": 0.85}), deterministic=False),
            ran(record("lmf", 3, {"MAE": 0.75}))]
    for r in rows:
        append_record(tmp_path, r)
    text = leaderboard(tmp_path, fmt="md")                  # rows sorted by MAE: lmf (0.8) before tfn (1.0)
    assert "\n- precision: fp32 in lmf; mixed in tfn (2 fp32, 1 bf16: its mean mixes them)\n" in text
    assert "\n- kernels: mixed in lmf (2 deterministic, 1 nondeterministic: its mean mixes them); deterministic " \
           "in tfn\n" in text
    board = pd.read_csv(io.StringIO(leaderboard(tmp_path, fmt="csv"))).set_index("label")
    assert board.loc[["lmf", "tfn"], "run_precision"].tolist() == ["fp32", "2 fp32, 1 bf16"]
    assert board.loc[["lmf", "tfn"], "run_kernels"].tolist() == ["2 deterministic, 1 nondeterministic", "deterministic"]
    assert "precision: fp32 in lmf" in leaderboard(tmp_path, fmt="latex")


def test_rows_that_differ_or_all_ran_otherwise_are_noted_and_the_usual_runs_are_not():
    fp32 = [ran(record(m, s, {"MAE": 0.5 + s / 100})) for m in ("tfn", "lmf") for s in (1, 2)]
    assert _notes(fp32) == []
    # From before precision and kernels were recorded: fp32, and warn-only deterministic kernels; no note either.
    assert _notes([ran(r, None, None) for r in fp32]) == []
    assert _notes([ran(r, "bf16", False) for r in fp32]) == ["precision: bf16 in every row",
                                                             "kernels: nondeterministic in every row"]
    # Each row alike within, the rows apart (equal means: rows in label order, lmf first).
    differ = [ran(r, "bf16" if r["model"] == "tfn" else "fp32") for r in fp32]
    assert _notes(differ) == ["precision: fp32 in lmf; bf16 in tfn"]
    older = [ran(r, deterministic=None if r["model"] == "lmf" else True) for r in fp32]
    assert _notes(older) == ["kernels: warn-only in lmf; deterministic in tfn"]


def skipped_beside_a_good_run(tmp_path, caplog, bad: dict) -> str:
    """The warning of a leaderboard over seed 1 and, on line 2, seed 2 with `bad` fields: it shows seed 1 alone."""
    import logging
    append_record(tmp_path, record("tfn", 1, {"MAE": 0.9}))
    append_record(tmp_path, record("tfn", 2, {"MAE": 0.7}) | bad)
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        text = leaderboard(tmp_path, fmt="md")
    assert "| tfn | 1 |" in text and "- seeds 1 in every row" in text and "### a heading" not in text
    (warning,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    return warning.split("the first line 2 (", 1)[1]


@pytest.mark.parametrize("field,value,what", [
    ("precision", "bf16\n### a heading", "its precision is 'bf16\\n### a heading', not a string of one line"),
    ("deterministic", "yes", "its deterministic is 'yes', not bool"),
])
def test_a_precision_or_kernels_field_a_table_cannot_show_skips_its_line(tmp_path, caplog, field, value, what):
    assert skipped_beside_a_good_run(tmp_path, caplog, {field: value}).startswith(what)


def test_compare_says_when_the_compared_rows_ran_at_other_precisions_or_kernels(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    for seed in (1, 2):
        append_record(tmp_path, ran(record("atsuko", seed, {"MAE": 0.6 + seed / 10}), "bf16"))
        append_record(tmp_path, ran(record("lmf", seed, {"MAE": 0.8 + seed / 10})))
        append_record(tmp_path, ran(record("tfn", seed, {"MAE": 0.9 + seed / 10}), "bf16", seed == 1))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "tfn", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    heads = [i for i, line in enumerate(out) if line.startswith("atsuko (n=2) vs ")]
    assert [out[i + 1] for i in heads] == ["precision: bf16 in atsuko; fp32 in lmf", "precision: bf16 in every row"]
    assert out[heads[1] + 2] == ("kernels: deterministic in atsuko; mixed in tfn (1 deterministic, 1 nondeterministic: "
                                 "its mean mixes them)")
    assert out[heads[0] + 2].split()[0] == "metric"             # atsuko and lmf: both deterministic, no kernels line
    df = pd.read_csv(tmp_path / "comparison_atsuko_mosi-synthetic.csv", keep_default_na=False)
    assert set(df[df.baseline == "lmf"].precision_note) == {"precision: bf16 in atsuko; fp32 in lmf"}
    assert set(df[df.baseline == "lmf"].kernels_note) == {""}
    assert set(df.device_note) == {""}                        # records without a device: one kind, unknown


def test_kernels_count_only_where_they_can_differ_off_the_cpu():
    """On the CPU a deterministic and a --nondeterministic tfn run were bit-identical, yet the note said the row mixed
    them, and a store topped up over records from before `deterministic` (warn-only) read as mixed too."""
    cpu = [on(ran(record("tfn", s, {"MAE": 0.5 + s / 100}), deterministic=s == 1), "cpu") for s in (1, 2, 3)]
    older = [on(ran(record("lmf", s, {"MAE": 0.6 + s / 100}), deterministic=None if s < 3 else True), "cpu")
             for s in (1, 2, 3)]
    assert _notes(cpu + older) == []
    gpu = [on(r, "cuda:0") for r in cpu]
    assert _notes(gpu) == ["kernels: mixed in tfn (2 nondeterministic, 1 deterministic: its mean mixes them)"]
    # A GPU row against a CPU row: only the GPU's kernels are named, and the CPU row is said to be any.
    nondeterministic = [on(ran(record("atsuko", s, {"MAE": 0.4 + s / 100}), deterministic=False), "cuda")
                        for s in (1, 2)]
    assert _notes(nondeterministic + older) == ["kernels: nondeterministic in atsuko; any on the CPU in lmf",
                                                "device: cuda in atsuko; cpu in lmf"]
    table = pd.read_csv(io.StringIO(_csv(nondeterministic + older)), keep_default_na=False).set_index("label")
    # The CSV's cells say what the records say, the CPU's kernels too (test_both_csvs_say_how_a_row_ran_alike).
    assert table.loc[["atsuko", "lmf"], "run_kernels"].tolist() == ["nondeterministic", "2 warn-only, 1 deterministic"]


def test_both_csvs_say_how_a_row_ran_alike():
    """The MMSA CSV's `run_kernels` said `deterministic` for CPU runs, the leaderboard CSV's cell was empty for the
    same runs: both are `results.how_ran_cells` now, the records' values on the CPU as on a GPU."""
    from mmsa_atsuko.results.mmsa_csv import mmsa_row

    def seeds(model, device, kernels, precisions=("fp32",) * 3):
        return [on(ran(record(model, s, {"MAE": 0.5 + s / 100, "Loss": 0.5}), precision, deterministic), device)
                for s, deterministic, precision in zip((1, 2, 3), kernels, precisions)]
    rows = {"tfn": seeds("tfn", "cpu", (True, True, True)), "lmf": seeds("lmf", "cpu", (None, None, True)),
            "misa": seeds("misa", "cpu", (True, False, True), ("fp32", "bf16", "bf16")),
            "atsuko": seeds("atsuko", "cuda:0", (False, False, True))}
    table = pd.read_csv(io.StringIO(_csv([r for group in rows.values() for r in group])),
                        keep_default_na=False).set_index("label")
    how = ["run_precision", "run_kernels", "run_device"]
    for model, group in rows.items():
        mmsa = mmsa_row(group)
        assert [mmsa[c] for c in how] == table.loc[model, how].tolist(), model
    assert table.loc[list(rows), "run_kernels"].tolist() == [
        "deterministic", "2 warn-only, 1 deterministic", "2 deterministic, 1 nondeterministic",
        "2 nondeterministic, 1 deterministic"]
    assert table.loc["misa", "run_precision"] == "2 bf16, 1 fp32" and table.loc["atsuko", "run_device"] == "cuda"


def _csv(records) -> str:
    from mmsa_atsuko.leaderboard.csv_table import csv_frame
    return csv_frame(build_tables(records)).to_csv(index=False)


def test_a_row_of_seeds_on_several_devices_or_rows_on_other_devices_are_noted():
    """Seeds on cuda:0 and on the CPU in one row gave no note: a GPU and the CPU sum in other orders."""
    tfn = [on(ran(record("tfn", s, {"MAE": 0.5 + s / 100})), "cuda:0" if s < 3 else "cpu") for s in (1, 2, 3)]
    lmf = [on(ran(record("lmf", s, {"MAE": 0.6 + s / 100})), "cuda:1") for s in (1, 2, 3)]
    assert _notes(tfn + lmf) == ["device: mixed in tfn (2 cuda, 1 cpu: its mean mixes them); cuda in lmf"]
    assert _notes(lmf) == []                                # cuda:1 alone, or cuda:0 and cuda:1: one kind, no note
    assert _notes(lmf + [on(r, "cuda:0") for r in tfn]) == []
    assert _notes([on(r, "cpu") for r in tfn + lmf]) == []
    table = pd.read_csv(io.StringIO(_csv(tfn + lmf)), keep_default_na=False).set_index("label")
    assert table.loc[["tfn", "lmf"], "run_device"].tolist() == ["2 cuda, 1 cpu", "cuda"]


def test_the_how_it_ran_columns_of_a_mintrec_csv_are_apart_from_its_precision_metric():
    """MIntRec's metric `precision` has the columns precision_mean/_std/_n/_best; the row's precision (fp32, bf16)
    was a column `precision` beside them."""
    rows = [ran(record("mag_bert", s, {"precision": 0.7 + s / 100}, dataset="mintrec"), "bf16") for s in (1, 2)]
    table = pd.read_csv(io.StringIO(_csv(rows)), keep_default_na=False)
    assert "precision" not in table.columns
    assert table["run_precision"].tolist() == ["bf16"]
    assert table["precision_mean"].tolist() == pytest.approx([0.715])      # (0.71 + 0.72) / 2


def test_a_device_a_table_cannot_show_skips_its_line(tmp_path, caplog):
    assert skipped_beside_a_good_run(tmp_path, caplog, {"device": "cuda\n### a heading"}).startswith(
        "its device is 'cuda\\n### a heading', not a string of one line")


def test_compare_prints_the_device_note_under_a_pairs_header(tmp_path, capsys):
    """compare's CSV had `device_note`, but its printed header named precision and kernels only."""
    from mmsa_atsuko.cli import main
    for seed in (1, 2):
        append_record(tmp_path, on(ran(record("atsuko", seed, {"MAE": 0.6 + seed / 10})), "cuda:0"))
        append_record(tmp_path, on(ran(record("lmf", seed, {"MAE": 0.8 + seed / 10})), "cpu"))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("atsuko (n=2) vs lmf"))
    assert out[head + 1] == "device: cuda in atsuko; cpu in lmf"       # kernels: deterministic on the GPU, no note
    assert out[head + 2].split()[0] == "metric"
