"""normal/<dataset>.csv: MMSA's columns first and unchanged, then the columns that trace a row to its runs; a file
with MMSA's columns only (written before those, or by MMSA) keeps them; any other file is refused in one line.

Every expected row below is worked out by hand from the records built here: two seeds at 0.5 and 0.7 give
MMSA's cell (mean 0.6 -> 60.0, population std 0.1 -> 10.0); 0.8 and 0.82 give (81.0, 1.0)."""
import csv

import pandas as pd
import pytest

from mmsa_atsuko.errors import DataError
from mmsa_atsuko.results import append_mmsa_csv

MOSI = ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7", "MAE", "Corr",
        "Loss"]                          # thuiar/MMSA's regression trainers' keys on MOSI, then the trainer's Loss
SIMS = ["Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr", "Loss"]
TRACE = ["aligned", "condition", "model_selection", "config_hash", "seeds", "run_ids", "data", "code", "run_preset",
         "run_precision", "run_kernels", "run_device"]
HOW = ["", "fp32", "deterministic", "cpu"]      # record()'s: the full config, fp32, deterministic kernels, the CPU
COMMIT = "0123456789abcdef0123456789abcdef01234567"
UNALIGNED, ALIGNED = "synthetic:mosi-small-unaligned-seed0-v2", "synthetic:mosi-small-aligned-seed0-v2"
# The sha256 MMSA publishes for unaligned SIMS: its rows are sims.csv's (another file's have a file of their own).
SIMS_FILE = "sha256:c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f"


def record(seed, value, *, model="tfn", dataset="mosi", aligned=False, data=UNALIGNED, chash="aaaa",
           valid_loss="exact", commit=COMMIT, condition=None, keys=MOSI, preset=None, precision="fp32",
           deterministic=True, device="cpu"):
    """An ok record as the store holds one, by hand: every metric of the run is `value`."""
    r = {"run_id": f"{model}-{dataset}{'-aligned' if aligned else ''}-s{seed}-{chash}", "status": "ok",
         "model": model, "dataset": dataset, "aligned": aligned, "seed": seed, "synthetic": data.startswith("synthetic:"),
         "metrics": dict.fromkeys(keys, value), "config_hash": chash, "data": data, "git_commit": commit,
         "package_version": "0.1.0", "config": {"key_eval": "Loss", "valid_loss": valid_loss}, "preset": preset,
         "precision": precision, "deterministic": deterministic, "device": device}
    return r | ({"condition": condition} if condition else {})


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_aligned_unaligned_and_mmsa_selected_runs_are_rows_that_trace_to_their_runs(tmp_path):
    """The reviewer's case: three TFN calls on synthetic MOSI with the same numbers were three identical 'tfn' rows."""
    told = []
    unaligned = [record(1111, 0.5), record(1112, 0.7)]
    aligned = [record(s, v, aligned=True, data=ALIGNED, chash="bbbb") for s, v in ((1111, 0.5), (1112, 0.7))]
    mmsa_rule = [record(1112, 0.7, chash="cccc", valid_loss="mmsa"),
                 record(1111, 0.5, chash="cccc", valid_loss="mmsa", commit="fedcba9876543210+dirty")]
    for group in (unaligned, aligned, mmsa_rule):
        path = append_mmsa_csv(tmp_path, group, echo=told.append)
    assert path == tmp_path / "normal" / "mosi-synthetic.csv" and told == []
    cells = ["(60.0, 10.0)"] * 9
    assert rows(path) == [
        ["Model", *MOSI, *TRACE],
        ["tfn", *cells, "False", "", "valid Loss, valid_loss: exact", "aaaa", "1111 1112",
         "tfn-mosi-s1111-aaaa tfn-mosi-s1112-aaaa", UNALIGNED, "0123456789", *HOW],
        ["tfn", *cells, "True", "", "valid Loss, valid_loss: exact", "bbbb", "1111 1112",
         "tfn-mosi-aligned-s1111-bbbb tfn-mosi-aligned-s1112-bbbb", ALIGNED, "0123456789", *HOW],
        # seeds and run ids in seed order, pairwise, whatever the records'; two commits, sorted as the leaderboard's
        ["tfn", *cells, "False", "", "valid Loss, valid_loss: mmsa (MMSA's rule)", "cccc", "1111 1112",
         "tfn-mosi-s1111-cccc tfn-mosi-s1112-cccc", UNALIGNED, "0123456789 fedcba9876+dirty", *HOW],
    ]
    # A reader of MMSA's files: columns picked by name, or the first ones, are MMSA's as they were.
    frame = pd.read_csv(path)
    assert list(frame.columns[:10]) == ["Model", *MOSI]
    assert frame[["Model", "MAE"]].values.tolist() == [["tfn", "(60.0, 10.0)"]] * 3


def test_two_calls_that_trained_the_same_runs_between_them_write_their_row_once(tmp_path):
    """Two run.py's in one folder, `-s 1111 1112` and `-s 1112 1111`, each trained one seed and took the other's
    record from the other process: each wrote the row of both runs, seeds in its own order (two rows of the same
    runs). The row is now in seed order and written once; a row of other runs (a third seed) is still written."""
    first, second = record(1111, 0.5), record(1112, 0.7)
    path = append_mmsa_csv(tmp_path, [first, second])
    append_mmsa_csv(tmp_path, [second, first])
    assert [row[TRACE.index("seeds") + 10] for row in rows(path)[1:]] == ["1111 1112"]
    append_mmsa_csv(tmp_path, [second, record(1113, 0.6), first])
    assert [row[TRACE.index("seeds") + 10] for row in rows(path)[1:]] == ["1111 1112", "1111 1112 1113"]


def test_a_condition_is_named_in_the_model_cell_and_its_own_column(tmp_path):
    condition = {"missing_rate": 0.3, "drop_modality": None, "modalities": "TAV", "text_spared": "bert_cls_sep"}
    group = [record(1111, 0.8, dataset="sims", data=SIMS_FILE, condition=condition, keys=SIMS),
             record(1112, 0.82, dataset="sims", data=SIMS_FILE, condition=condition, keys=SIMS)]
    path = append_mmsa_csv(tmp_path, group)
    assert path.name == "sims.csv"
    assert rows(path)[1] == ["tfn [missing_rate=0.3]", *["(81.0, 1.0)"] * 7, "False", "missing_rate=0.3",
                             "valid Loss, valid_loss: exact", "aaaa", "1111 1112",
                             "tfn-sims-s1111-aaaa tfn-sims-s1112-aaaa", SIMS_FILE, "0123456789", *HOW]


def mmsa_appends(path, model):
    """thuiar/MMSA's own append (src/MMSA/run.py, MMSA_run): read the file, add a row by position, write it back.
    MMSA's cells are (mean, std) tuples, which to_csv writes as str() does; given as that str here, since pandas 3
    deprecates a tuple in a column read as strings."""
    df = pd.read_csv(path)
    df.loc[len(df)] = [model] + [str((50.0, 0.0))] * (len(MOSI))
    df.to_csv(path, index=None)


def test_a_file_with_mmsa_columns_only_keeps_them_and_says_so_once_per_call(tmp_path):
    """A file this toolkit wrote before the trace columns (or MMSA itself): new rows take its header, with MMSA's
    cells only; one line per file and call says so. MMSA can still append to it, as it cannot to a traced file."""
    (tmp_path / "normal").mkdir()
    path = tmp_path / "normal" / "mosi-synthetic.csv"
    old = "Model," + ",".join(MOSI) + "\n" + "lmf," + ",".join(['"(70.0, 1.0)"'] * 9) + "\n"
    path.write_text(old)
    said, told = [], set()
    append_mmsa_csv(tmp_path, [record(1111, 0.5), record(1112, 0.7)], echo=said.append, told=told)
    append_mmsa_csv(tmp_path, [record(1111, 0.5, model="lmf")], echo=said.append, told=told)
    assert said == [f"{path} has MMSA's columns only: this call's rows there (tfn first) go in without "
                    f"{','.join(TRACE)} (runs.jsonl has them); move the file away for rows that trace to their runs"]
    assert path.read_text() == (old + "tfn," + ",".join(['"(60.0, 10.0)"'] * 9) + "\n"
                                + "lmf," + ",".join(['"(50.0, 0.0)"'] * 9) + "\n")
    append_mmsa_csv(tmp_path, [record(1111, 0.5)], echo=said.append)     # another call is told again
    assert len(said) == 2 and len(rows(path)) == 5 and {len(r) for r in rows(path)} == {10}
    mmsa_appends(path, "misa")
    assert [r[0] for r in rows(path)] == ["Model", "lmf", "tfn", "lmf", "tfn", "misa"]

    traced = append_mmsa_csv(tmp_path, [record(1111, 0.5, dataset="sims", keys=SIMS)])
    with pytest.raises(ValueError, match="mismatched columns"):        # why an MMSA-only file keeps its header
        mmsa_appends(traced, "misa")


@pytest.mark.parametrize("header", ["Model,Acc", "Model," + ",".join(MOSI) + ",aligned,seeds",
                                    "Model," + ",".join(MOSI[:-1])])
def test_a_file_with_other_columns_is_one_line_and_left_as_it_was(tmp_path, header):
    """It was a ValueError traceback after the runs had trained and been recorded; a header of neither layout
    (another tool's, a part of the trace) would have been two headers in one file."""
    (tmp_path / "normal").mkdir()
    mine = tmp_path / "normal" / "mosi-synthetic.csv"
    mine.write_text(header + "\nmine,1\n")
    with pytest.raises(DataError, match=rf"mosi-synthetic.csv has columns {header}, not MMSA's Model,Has0_acc_2,.*,"
                                        r"Loss \(with or without aligned,condition,.*,run_device after them\): its row "
                                        r"for tfn was not written \(the runs are recorded in runs.jsonl\)"):
        append_mmsa_csv(tmp_path, [record(1111, 0.5)])
    assert mine.read_text() == header + "\nmine,1\n"


def test_a_bf16_or_preset_row_says_so_beside_the_fp32_full_config_one(tmp_path):
    """A `--precision bf16` call's row and a `--preset small` one were the fp32 full-config row's twins (the same
    numbers here): now each says how its seeds ran, and a row whose seeds mix them counts each, the most first."""
    fp32 = [record(1111, 0.5), record(1112, 0.7)]
    bf16 = [record(1111, 0.5, precision="bf16", deterministic=False, device="cuda:0"),
            record(1112, 0.7, precision="bf16", deterministic=False, device="cuda:1")]
    small = [record(1111, 0.5, preset="small"), record(1112, 0.7, preset="small")]
    mixed = [record(1111, 0.5, preset="small"), record(1112, 0.7, precision="bf16"),
             record(1113, 0.6, precision="bf16", deterministic=False, device="cuda")]
    for group in (fp32, bf16, small, mixed):
        path = append_mmsa_csv(tmp_path, group)
    assert [r[-4:] for r in rows(path)] == [["run_preset", "run_precision", "run_kernels", "run_device"], HOW,
                                            ["", "bf16", "nondeterministic", "cuda"], ["small", *HOW[1:]],
                                            ["2 none, 1 small", "2 bf16, 1 fp32",
                                             "2 deterministic, 1 nondeterministic", "2 cpu, 1 cuda"]]


def test_a_file_of_the_earlier_trace_columns_keeps_them_and_says_so(tmp_path):
    """A file this toolkit wrote before the preset, precision, kernels and device columns: refused as a file of
    other columns would have been every training call's error. Its rows keep its header, and one line says so."""
    (tmp_path / "normal").mkdir()
    path = tmp_path / "normal" / "mosi-synthetic.csv"
    earlier = ",".join(["Model", *MOSI, *TRACE[:8]]) + "\r\n"
    path.write_bytes(earlier.encode())
    said = []
    for _ in range(2):                                  # the second call's row is the first's: written once
        append_mmsa_csv(tmp_path, [record(1111, 0.5), record(1112, 0.7)], echo=said.append)
    assert rows(path) == [["Model", *MOSI, *TRACE[:8]],
                          [*TFN, "False", "", "valid Loss, valid_loss: exact", "aaaa", "1111 1112",
                           "tfn-mosi-s1111-aaaa tfn-mosi-s1112-aaaa", UNALIGNED, "0123456789"]]
    assert said == [f"{path} has the trace columns of an earlier version: this call's rows there (tfn first) go in "
                    f"without run_preset,run_precision,run_kernels,run_device (runs.jsonl has them); move the file away for rows "
                    f"that say how their seeds ran"]


def test_a_hand_made_record_among_the_seeds_is_one_line_and_writes_nothing(tmp_path):
    bad = record(1112, 0.7) | {"run_id": 7}
    with pytest.raises(DataError, match=r"^runs.jsonl: record \(no run_id\) is no run record: it has no run_id string; "
                                        r"remove or fix that line$"):
        append_mmsa_csv(tmp_path, [record(1111, 0.5), bad])
    assert not (tmp_path / "normal" / "mosi-synthetic.csv").exists()


def test_files_by_data(tmp_path):
    """Synthetic data never shares a file with real data, nor a stress recipe with the standard one."""
    sims = dict(dataset="sims", keys=SIMS)
    real = append_mmsa_csv(tmp_path, [record(1111, 0.5, data=SIMS_FILE, **sims)])
    standard = append_mmsa_csv(tmp_path, [record(1111, 0.5, data="synthetic:sims-small-unaligned-seed0-v2", **sims)])
    corrupt = append_mmsa_csv(tmp_path, [record(1111, 0.5, data="synthetic:corrupt-s2-sims-small-unaligned-seed0-v2",
                                                **sims)])
    assert [p.name for p in (real, standard, corrupt)] == ["sims.csv", "sims-synthetic.csv", "sims-synthetic-corrupt.csv"]


LMF = "lmf," + ",".join(['"(70.0, 1.0)"'] * 9)     # a whole MMSA-only row, by hand
TFN = ["tfn", *["(60.0, 10.0)"] * 9]                # record(1111, 0.5) and record(1112, 0.7)'s row there


@pytest.mark.parametrize("ending", ["", "\r"])      # a hand edit's file; a write killed between csv's \r and \n
def test_a_last_row_without_its_newline_is_kept_and_the_next_row_starts_its_own_line(tmp_path, ending):
    """The next row was joined onto it: one line of 19 cells, both rows lost to a reader (pandas read one row)."""
    (tmp_path / "normal").mkdir()
    path = tmp_path / "normal" / "mosi-synthetic.csv"
    path.write_bytes(("Model," + ",".join(MOSI) + "\n" + LMF + ending).encode())
    append_mmsa_csv(tmp_path, [record(1111, 0.5), record(1112, 0.7)], echo=lambda line: None)
    assert rows(path) == [["Model", *MOSI], ["lmf", *["(70.0, 1.0)"] * 9], TFN]
    assert pd.read_csv(path)["Model"].tolist() == ["lmf", "tfn"]


@pytest.mark.parametrize("torn", ['lmf,"(70.0, 1.0)","(70', 'lmf,"(70.0, 1.0)","(70.0, 1.0)"', "lmf,\"(70.0, 1.0)\xe2\x82"])
def test_a_torn_last_row_is_cut_off_before_the_next_row(tmp_path, torn):
    """A write killed inside a quoted cell, between cells, or inside a UTF-8 character: the fragment is no row
    (its cells are not the header's), so it goes, and the rows before it and the new one are whole."""
    (tmp_path / "normal").mkdir()
    path = tmp_path / "normal" / "mosi-synthetic.csv"
    path.write_bytes(("Model," + ",".join(MOSI) + "\n" + LMF + "\n").encode() + torn.encode("latin-1"))
    append_mmsa_csv(tmp_path, [record(1111, 0.5), record(1112, 0.7)], echo=lambda line: None)
    assert rows(path) == [["Model", *MOSI], ["lmf", *["(70.0, 1.0)"] * 9], TFN]


def test_a_traced_row_without_its_newline_is_kept(tmp_path):
    """The toolkit's own layout (csv's \r\n endings), its last row's ending lost: both rows whole after the append."""
    path = append_mmsa_csv(tmp_path, [record(1111, 0.5), record(1112, 0.7)])
    path.write_bytes(path.read_bytes().removesuffix(b"\r\n"))
    append_mmsa_csv(tmp_path, [record(1111, 0.8, model="lmf")])
    assert [r[:2] + r[-8:-6] for r in rows(path)[1:]] == [["tfn", "(60.0, 10.0)", "1111 1112", "tfn-mosi-s1111-aaaa "
                                                           "tfn-mosi-s1112-aaaa"], ["lmf", "(80.0, 0.0)", "1111",
                                                                                    "lmf-mosi-s1111-aaaa"]]


def test_a_run_whose_corr_is_undefined_still_writes_its_row(tmp_path):
    """A run with constant predictions has no Corr: NaN in the record a run hands over, null once in the store. The
    row's check refused the NaN (a store holds null), and every such run, a one-epoch run on tiny data among them,
    stopped after training. MMSA's cell of a NaN is NaN: mean and std of NaN."""
    runs = [record(1111, 0.5), record(1112, 0.7)]
    for r in runs:
        r["metrics"]["Corr"] = float("nan")
    path = append_mmsa_csv(tmp_path, runs, echo=lambda _: None)
    header, row = rows(path)
    assert dict(zip(header, row))["Corr"] == "(nan, nan)" and dict(zip(header, row))["MAE"] == "(60.0, 10.0)"


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe\x00Model,Acc\r\n", "is no UTF-8 text, not a CSV of MMSA's columns: its row for tfn was not written"),
    (b"x" * (1 << 20), "has columns " + "x" * 200 + ", not MMSA's"),          # a first line of 1 MiB, read in part
    (None, "is 65 MiB, more than a file of MMSA rows may hold (64 MiB): its row for tfn was not written"),
])
def test_a_file_at_the_csvs_name_that_is_no_csv_of_ours_is_one_line_and_left_as_it_was(tmp_path, content, expected):
    """Bytes that are no UTF-8 were a UnicodeDecodeError traceback after training; a huge file's header and last line
    were read whole. Each is one DataError line now, and the file is left as it was."""
    path = tmp_path / "normal" / "mosi-synthetic.csv"
    path.parent.mkdir()
    if content is None:
        with open(path, "wb") as f:                  # 65 MiB, sparse: nothing of it is read
            f.truncate(65 << 20)
    else:
        path.write_bytes(content)
    before = path.stat()
    with pytest.raises(DataError) as err:
        append_mmsa_csv(tmp_path, [record(1111, 0.5)], echo=lambda _: None)
    assert str(err.value).startswith(f"{path} {expected}") and "\n" not in str(err.value)
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_no_trace_column_is_named_as_a_metric_column_of_any_dataset():
    """A row is a dict of MMSA's cells and the trace's: MIntRec's metric `precision` and a trace column `precision`
    were one key, and the row's precision cell read "fp32"."""
    from mmsa_atsuko.config import datasets_table
    from mmsa_atsuko.results.mmsa_csv import TRACE_COLUMNS, mmsa_columns
    for dataset in datasets_table():
        assert not set(TRACE_COLUMNS) & set(mmsa_columns(dataset)), dataset
