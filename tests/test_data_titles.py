"""What every table says of the data its rows ran on, and where their MMSA rows go (user-trial findings).

`run.py -m tfn -d mosi --feature-path my.pkl` (the command `extract` prints for your own videos) was headed "real
data" by the leaderboard, with no note, and its row went into normal/mosi.csv among real MOSI runs; a dataset of your
own (`--datasets`) was "real data" too. The expected titles, notes and file names below are written out by hand from
configs/datasets.yaml's published sha256 of MOSI's unaligned file."""
import csv

from mmsa_atsuko.config import DATASETS_ENV
from mmsa_atsuko.leaderboard import leaderboard
from mmsa_atsuko.metrics.names import metric_keys
from mmsa_atsuko.results import append_mmsa_csv, append_record

PUBLISHED = "sha256:78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524"   # MMSA's unaligned MOSI
OWN_VIDEOS = "sha256:" + "bb" * 32                                                    # extract's file of 12 videos
SYN = "synthetic:mosi-small-unaligned-seed0-v2"
# MOSI's columns as the leaderboard prints them: Mult_acc_3 among the multi-class accuracies, as the README lists them
MOSI_ORDER = ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_3", "Mult_acc_5", "Mult_acc_7",
              "MAE", "Corr"]


def record(model, seed, mae, *, data=PUBLISHED, dataset="mosi", preset=None, rate=None):
    metrics = dict.fromkeys(metric_keys(dataset), 0.5) | {"MAE": mae, "Loss": mae}
    return ({"run_id": f"{model}-{dataset}-{seed}-{data[-4:]}-{rate}", "status": "ok", "model": model,
             "dataset": dataset, "aligned": False, "seed": seed, "synthetic": data.startswith("synthetic:"),
             "metrics": metrics, "config_hash": "h-" + "0" * 10, "config": {"key_eval": "Loss"}, "data": data,
             "preset": preset, "best_epoch": 1, "git_commit": "c" * 40, "package_version": "0.1.0",
             "started_at": f"2026-01-01T00:00:{seed:02d}+00:00"}
            | ({"condition": {"missing_rate": rate}} if rate else {}))


def test_runs_on_another_file_than_mmsa_publishes_are_not_headed_real_data(tmp_path):
    for seed, mae in ((1, 0.7), (2, 0.9)):
        append_record(tmp_path, record("tfn", seed, mae, data=OWN_VIDEOS))
        append_record(tmp_path, record("tfn", seed, mae))
    md = leaderboard(tmp_path, fmt="md")
    assert f"### mosi, unaligned: real data ({PUBLISHED})" in md                  # the published file: real data
    own = md[md.index(f"### mosi, unaligned: not the published mosi data ({OWN_VIDEOS})"):]
    first_note = next(line for line in own.splitlines() if line.startswith("- "))
    assert first_note == (f"- Not the published mosi data: {OWN_VIDEOS} is not the file MMSA publishes for mosi "
                          f"unaligned ({PUBLISHED}): these runs are no reproduction of the paper's")
    latex = leaderboard(tmp_path, fmt="latex")
    assert "mosi, unaligned: not the published mosi data" in latex
    rows = list(csv.DictReader(leaderboard(tmp_path, fmt="csv").splitlines()))
    assert {r["data_kind"] for r in rows if r["data"] == OWN_VIDEOS} == {"not published"}
    assert {r["data_kind"] for r in rows if r["data"] == PUBLISHED and r["source"] == "ours"} == {"real"}


def test_a_dataset_of_your_own_is_headed_your_data(tmp_path, monkeypatch):
    blocks = tmp_path / "mine.yaml"
    blocks.write_text("datasets:\n  mydata:\n    format: mmsa\n    task: regression\n    metrics: mosi\n"
                      "    headline: MAE\n    language: en\n    label_range: [-3.0, 3.0]\n"
                      "    files: {unaligned: MyData/features.pkl}\n    config: {key_eval: Loss}\n")
    monkeypatch.setenv(DATASETS_ENV, str(blocks))
    store = tmp_path / "results"
    for seed, mae in ((1, 0.7), (2, 0.9)):
        append_record(store, record("tfn", seed, mae, data=OWN_VIDEOS, dataset="mydata"))
    md = leaderboard(store, fmt="md")
    assert f"### mydata, unaligned: your data ({OWN_VIDEOS})" in md
    assert "real data" not in md.split("### Published")[0] and "reproduction" not in md


def test_mmsa_rows_of_another_file_go_to_a_file_of_their_own(tmp_path):
    """MMSA's row names only its model, and a file MMSA wrote keeps its columns only: a separate file, as synthetic
    data have, keeps the runs on your own videos out of the rows of the real file."""
    real = append_mmsa_csv(tmp_path, [record("tfn", 1, 0.7), record("tfn", 2, 0.9)])
    own = append_mmsa_csv(tmp_path, [record("tfn", 1, 0.7, data=OWN_VIDEOS), record("tfn", 2, 0.9, data=OWN_VIDEOS)])
    assert real.name == "mosi.csv" and own.name == "mosi-not-published-bbbbbbbbbbbb.csv"
    with open(real, newline="", encoding="utf-8") as f:
        assert [row["data"] for row in csv.DictReader(f)] == [PUBLISHED]


def test_the_end_table_names_its_data_and_preset_in_the_leaderboards_column_order(capsys):
    from mmsa_atsuko.leaderboard.end_table import print_table
    print_table([record("tfn", 1, 0.7, data=OWN_VIDEOS, preset="small"),
                 record("tfn", 2, 0.9, data=OWN_VIDEOS, preset="small")], "results", set())
    lines = capsys.readouterr().out.splitlines()
    title = next(line for line in lines if "test metrics" in line)
    assert title.startswith("mosi (not the published mosi data): test metrics of the best-valid epoch")
    header = next(line for line in lines if line.startswith("model"))
    assert header.split()[3:] == MOSI_ORDER
    assert "- trained at --preset small in every row (each model's own preset block, not its full config)" in lines
    assert any(line.startswith("- Not the published mosi data: ") for line in lines)
    print_table([record("tfn", 1, 0.7), record("tfn", 2, 0.9)], "results", set())     # the published file, no preset
    out = capsys.readouterr().out
    assert "\nmosi: test metrics of the best-valid epoch" in out and "\n- " not in out


def test_compare_prints_the_leaderboards_column_order(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    for seed, mae in ((1, 0.7), (2, 0.9)):
        append_record(tmp_path, record("atsuko", seed, mae, data=SYN))
        append_record(tmp_path, record("tfn", seed, mae + 0.1, data=SYN))
    assert main(["compare", "-m", "atsuko", "--against", "tfn", "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    assert [line.split()[0] for line in lines[start + 1:start + 10]] == MOSI_ORDER
    with open(tmp_path / "comparison_atsuko_mosi-synthetic.csv", newline="", encoding="utf-8") as f:
        assert list(dict.fromkeys(row["metric"] for row in csv.DictReader(f))) == MOSI_ORDER


def test_missing_rate_tables_say_the_preset_and_seeds_as_every_table_does(tmp_path):
    for seed, mae in ((1, 0.7), (2, 0.9)):
        for rate in (None, 0.5):
            append_record(tmp_path, record("tfn", seed, mae, data=SYN, preset="small", rate=rate))
    md = leaderboard(tmp_path, fmt="md", by="missing_rate")
    notes = [line for line in md.splitlines() if line.startswith("- ")]
    assert "- seeds 1 2 in every row" in notes
    assert "- trained at --preset small in every row (each model's own preset block, not its full config)" in notes


def test_the_sensitivity_legend_counts_its_seeds_in_english():
    import pandas as pd
    from mmsa_atsuko.plots.analyses import plot_sensitivity

    def legend(seeds):
        table = pd.DataFrame({"param": ["lambda_ent"] * 2, "value": [0.0, 1.0], "metric": ["MAE"] * 2,
                              "mean": [0.7, 0.8], "std": [0.0, 0.1], "seeds": seeds})
        fig = plot_sensitivity(table, "atsuko on sims", "synthetic data", True)
        return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend([1, 1]) == ["mean ± std over 1 seed"]            # was "over 1 seeds"
    assert legend([3, 3]) == ["mean ± std over 3 seeds"] and legend([2, 3]) == ["mean ± std over 2–3 seeds"]


SIMSV2_SUBSET = {"train": 64, "valid": 16, "test": 16}     # configs/datasets.yaml real_sizes: 2722, 647, 1034
SUBSET = "sha256:" + "cd" * 32


def simsv2_record(model, seed, mae):
    """A run on a SIMS v2 file of other split sizes: MMSA publishes no sha256 for SIMS v2, so its sizes tell it."""
    return record(model, seed, mae, data=SUBSET, dataset="simsv2") | {"split_sizes": SIMSV2_SUBSET}


def test_mmsa_rows_of_a_file_of_other_split_sizes_go_to_a_file_of_their_own(tmp_path):
    """The leaderboard heads these runs 'not the real simsv2 data'; their MMSA row went into normal/simsv2.csv."""
    subset = append_mmsa_csv(tmp_path, [simsv2_record("tfn", 1, 0.7), simsv2_record("tfn", 2, 0.9)])
    assert subset.name == "simsv2-not-real-cdcdcdcdcdcd.csv"
    real_sizes = {"train": 2722, "valid": 647, "test": 1034}
    real = append_mmsa_csv(tmp_path, [simsv2_record("tfn", s, 0.7) | {"split_sizes": real_sizes} for s in (1, 2)])
    before_sizes = append_mmsa_csv(tmp_path, [record("tfn", s, 0.7, data=SUBSET, dataset="simsv2") for s in (1, 2)])
    assert real.name == before_sizes.name == "simsv2.csv"       # a record without sizes says nothing, as before


def test_compare_and_the_end_table_head_a_file_of_other_split_sizes_as_the_leaderboard_does(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.leaderboard.end_table import print_table
    for seed, mae in ((1, 0.7), (2, 0.9)):
        append_record(tmp_path, simsv2_record("atsuko", seed, mae))
        append_record(tmp_path, simsv2_record("tfn", seed, mae + 0.1))
    assert f"### simsv2, unaligned: not the real simsv2 data ({SUBSET})" in leaderboard(tmp_path, fmt="md")
    assert main(["compare", "-m", "atsuko", "--against", "tfn", "--results", str(tmp_path)]) == 0
    assert f"simsv2, unaligned: not the real simsv2 data ({SUBSET})" in capsys.readouterr().out.splitlines()
    print_table([simsv2_record("tfn", 1, 0.7), simsv2_record("tfn", 2, 0.9)], "results", set())
    title = next(line for line in capsys.readouterr().out.splitlines() if "test metrics" in line)
    assert title.startswith("simsv2 (not the real simsv2 data): test metrics")


def test_aligned_and_unaligned_sensitivity_figures_do_not_overwrite_each_other(tmp_path, capsys):
    """As leaderboard --figures names its curves: -aligned after the dataset (both were sensitivity_atsuko_mosi)."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.training.trainer_config import resolve_config
    config = resolve_config("atsuko", "mosi", preset="small", max_epochs=1, overrides=[("lambda_ent", 1.0)])
    for aligned in (False, True):
        for seed, mae in ((1, 0.5), (2, 0.7)):
            append_record(tmp_path / "results", record("atsuko", seed, mae + aligned, data=PUBLISHED)
                          | {"run_id": f"r-{seed}-{aligned}", "aligned": aligned, "config": dict(config),
                             "config_hash": config_hash(config), "preset": "small"})
    argv = ["sensitivity", "-d", "mosi", "--param", "lambda_ent", "--values", "1", "-s", "1", "2", "--preset", "small",
            "--max-epochs", "1", "--read-only", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "f")]
    assert main(argv) == 0 and main([*argv, "--aligned"]) == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == sorted(f"sensitivity_atsuko_mosi{a}.{ext}" for a in ("", "-aligned")
                           for ext in ("csv", "json", "pdf", "png"))
    with open(tmp_path / "f" / "sensitivity_atsuko_mosi-aligned.csv", newline="", encoding="utf-8") as f:
        assert [row["mean"] for row in csv.DictReader(f)] == ["1.6"]       # the aligned runs' MAE 1.5 and 1.7


def figure_titles(monkeypatch) -> list[str]:
    """The titles of the figures a command draws, as `plots.common.figure_files` is handed them."""
    import mmsa_atsuko.plots.common as common
    titles, files = [], common.figure_files

    def keep_title(fig, table, name):
        titles.append(fig._suptitle.get_text())
        return files(fig, table, name)
    monkeypatch.setattr(common, "figure_files", keep_title)
    return titles


def test_figures_on_another_file_than_the_real_one_say_so_as_their_tables_do(tmp_path, monkeypatch, capsys):
    """Figure titles were tagged on synthetic data only: a figure on your own videos under -d mosi, or on a SIMS v2
    subset, was titled as one on the paper's data."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.config import config_hash
    from mmsa_atsuko.leaderboard.commands import missing_rate_figures
    from mmsa_atsuko.training.trainer_config import resolve_config
    titles = figure_titles(monkeypatch)
    for seed, mae in ((1, 0.7), (2, 0.9)):
        for rate in (None, 0.5):
            append_record(tmp_path / "v2", simsv2_record("tfn", seed, mae) | {"run_id": f"v2-{seed}-{rate}"}
                          | ({"condition": {"missing_rate": rate}} if rate else {}))
    missing_rate_figures(tmp_path / "v2", tmp_path / "v2-figures")
    assert titles == ["simsv2, unaligned: sha256:" + "cd" * 32 + ", MAE against the missing rate "
                      "[not the real simsv2 data]"]
    config = resolve_config("atsuko", "mosi", preset="small", max_epochs=1, overrides=[("lambda_ent", 1.0)])
    for data in (PUBLISHED, OWN_VIDEOS):
        for seed, mae in ((1, 0.5), (2, 0.7)):
            append_record(tmp_path / data[-4:], record("atsuko", seed, mae, data=data) | {
                "config": dict(config), "config_hash": config_hash(config), "preset": "small"})
        assert main(["sensitivity", "-d", "mosi", "--param", "lambda_ent", "--values", "1", "-s", "1", "2",
                     "--preset", "small", "--max-epochs", "1", "--read-only", "--results", str(tmp_path / data[-4:]),
                     "--out", str(tmp_path / "f" / data[-4:])]) == 0, capsys.readouterr().err
    assert titles[1:] == ["Hyperparameter sensitivity — atsuko on mosi",          # MMSA's file: no tag
                          "Hyperparameter sensitivity — atsuko on mosi [not the published mosi data]"]
    # explain, robustness and tsne tag their titles with the same words, of their runs' records
    from mmsa_atsuko.plots.common import runs_data_tag
    assert runs_data_tag([record("tfn", 1, 0.7, data=SYN), record("tfn", 2, 0.7, data=SYN)]) == "synthetic data"
    assert runs_data_tag([record("tfn", 1, 0.7), simsv2_record("tfn", 1, 0.7)]) == "not the real simsv2 data"
    assert runs_data_tag([record("tfn", 1, 0.7, data=OWN_VIDEOS)]) == "not the published mosi data"
    assert runs_data_tag([record("tfn", 1, 0.7)]) == ""


def test_a_missing_rate_figure_of_another_file_is_named_as_its_csv_is(tmp_path):
    """The curves of runs on your own videos under -d mosi were drawn to missing_rate_mosi, the published file's
    name: drawn alone they overwrote its figure, drawn beside it one of the two was missing_rate_mosi-2. Named now as
    normal/ names their CSV: mosi-not-published-<the first 12 hex digits of the file's sha256>."""
    from mmsa_atsuko.leaderboard.commands import missing_rate_figures
    store, figures = tmp_path / "results", tmp_path / "figures"

    def add(data):
        for seed, mae in ((1, 0.7), (2, 0.9)):
            for rate in (None, 0.5):
                append_record(store, record("tfn", seed, mae, data=data, rate=rate))
    add(OWN_VIDEOS)
    missing_rate_figures(store, figures)
    own = {f"missing_rate_mosi-not-published-bbbbbbbbbbbb.{ext}" for ext in ("csv", "pdf", "png")}
    assert {p.name for p in figures.iterdir()} == own
    add(PUBLISHED)
    missing_rate_figures(store, figures)
    assert {p.name for p in figures.iterdir()} == own | {f"missing_rate_mosi.{ext}" for ext in ("csv", "pdf", "png")}
    with open(figures / "missing_rate_mosi.csv", newline="", encoding="utf-8") as f:
        assert {row["data"] for row in csv.DictReader(f)} == {PUBLISHED}
