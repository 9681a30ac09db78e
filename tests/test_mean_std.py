"""One home for a "mean ± std" cell: `stats.Cell.text`, which the leaderboard's cells, run.py's end table and the
bench scripts' tables call. Every expected text is worked out here from the values written (sample std, ddof 1,
by formula), not by calling the code under test."""
import importlib.util
import re
from pathlib import Path

from mmsa_atsuko.leaderboard.stats import Cell

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cell_reads_mean_and_sample_std_and_one_value_has_no_std():
    # 0.7, 0.8, 0.9: mean 0.8, squared deviations 0.01 + 0 + 0.01 over n-1 = 2 -> std 0.1
    assert Cell([0.7, 0.8, 0.9]).text() == "0.8000 ± 0.1000"
    assert Cell([0.7, 0.8, 0.9]).text(lambda v: f"{v:.1f}", pm="±") == "0.8±0.1"
    assert Cell([0.8]).text() == "0.8000 ± –"            # one seed: no spread to show, not a spread of 0
    assert Cell([]).text() == "–"
    assert Cell([0.7, 0.9]).text(of=3) == "0.8000 ± 0.1414 (n=2)"   # sqrt(0.02) = 0.14142
    assert Cell([0.7, 0.9]).text(of=2) == "0.8000 ± 0.1414"


def test_the_bench_tables_print_the_leaderboards_cell():
    """bench_atsuko printed one seed as "± 0.0000" (a spread of 0), atsuko_stress_table as "± nan", parity_mmsa as
    the value alone: three readings of one seed, each its own copy of the mean ± std formula."""
    assert _bench("bench_atsuko")._mean_std([0.8]) == "0.8000 ± –"
    assert _bench("bench_atsuko")._mean_std(v for v in (0.7, 0.8, 0.9)) == "0.8000 ± 0.1000"
    assert _bench("atsuko_stress_table")._mean_std([0.8]) == "0.8000 ± – (n=1)"
    assert _bench("atsuko_stress_table")._mean_std([0.7, 0.8, 0.9]) == "0.8000 ± 0.1000 (n=3)"
    assert _bench("atsuko_stress_table")._mean_std([]) == "–"
    assert _bench("parity_mmsa")._ms([0.8]) == "0.800 ± –"
    assert _bench("parity_mmsa")._ms([0.7, 0.8, 0.9]) == "0.800 ± 0.100"


def test_the_run_table_takes_a_metric_a_seed_lacks_as_the_leaderboard_does(capsys):
    """A seed recorded before a metric existed lacks it: run.py's end table printed "nan" for the model's mean, where
    the leaderboard's cell is the mean over the seeds that have it, with their n."""
    from mmsa_atsuko.leaderboard.end_table import print_table
    from mmsa_atsuko.metrics.names import metric_keys
    keys = metric_keys("sims")
    records = []
    for seed, mae in ((1, 0.7), (2, 0.8), (3, 0.9)):
        metrics = {k: 0.5 for k in keys} | {"MAE": mae, "Corr": {1: 0.2, 2: 0.4}.get(seed)}
        if seed == 3:
            del metrics["Corr"]                            # an older record: no Corr
        records.append({"run_id": f"r{seed}", "model": "tfn", "dataset": "sims", "aligned": False, "synthetic": True,
                        "seed": seed, "best_epoch": 1, "metrics": metrics, "data": "synthetic:sims-small-seed0-v2"})
    print_table(records, "results", set())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("model", "tfn"))]
    header, summary = lines[0], lines[-1]
    ends = {k: header.index(f" {k}") + 1 + len(k) for k in keys}      # every column is right-aligned to its header
    starts = dict(zip(keys, [header.index(" best_epoch") + len(" best_epoch")] + [ends[k] for k in keys[:-1]]))
    cells = {k: summary[starts[k]:ends[k]].strip() for k in keys}
    # Corr over seeds 1 and 2: mean 0.3, std sqrt((0.01 + 0.01) / 1) = 0.1414; MAE over all three as above
    assert cells["Corr"] == "0.3000±0.1414 (n=2)"
    assert cells["MAE"] == "0.8000±0.1000"
    assert len({len(line) for line in lines}) == 1, lines      # the wider cell widened its column, every row alike


def test_compares_cells_read_as_the_leaderboards(tmp_path, capsys):
    """`compare` formatted mean ± std itself from the stored mean, std and n, and printed a side with no value of a
    metric as '– (n=0)' where the leaderboard's cell (Cell.text) reads '–'; it calls Cell.text now."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.metrics.names import metric_keys
    from mmsa_atsuko.results import append_record

    def record(model, seed, **values):
        metrics = {k: 0.5 for k in metric_keys("mosi")} | values
        return {"run_id": f"{model}-{seed}", "status": "ok", "model": model, "dataset": "mosi", "aligned": False,
                "seed": seed, "metrics": metrics, "config_hash": "h", "config": {}, "data": "sha256:" + "ab" * 32,
                "started_at": f"2026-01-01T00:00:0{seed}+00:00"}

    # atsuko: MAE 0.6/0.7 (mean 0.65, std sqrt(0.005) = 0.0707); Mult_acc_7 on seed 1 alone (30 %, no std, n=1 of 2).
    # lmf: MAE 0.8/0.9/1.0 (mean 0.9, std 0.1); no Mult_acc_7 on any seed (a metric its runs predate).
    for seed, (mae, acc7) in enumerate([(0.6, 0.30), (0.7, None)], start=1):
        append_record(tmp_path, record("atsuko", seed, MAE=mae, Mult_acc_7=acc7))
    for seed, mae in enumerate([0.8, 0.9, 1.0], start=1):
        append_record(tmp_path, record("lmf", seed, MAE=mae, Mult_acc_7=None))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in out if line}
    assert table["MAE"][1:3] == ["0.6500 ± 0.0707", "0.9000 ± 0.1000"]
    assert table["Mult_acc_7"][1:3] == ["30.00 ± – (n=1)", "–"]
    assert table["Has0_acc_2"][1:3] == ["50.00 ± 0.00", "50.00 ± 0.00"]


def test_a_seed_whose_metric_is_nan_counts_as_one_without_it_as_in_the_store():
    """A run's NaN Corr (constant predictions) is NaN in memory, where run.py's end table reads it, and null in the
    store, where the leaderboard does: the table printed "–±–" for Corr 0.31, nan, 0.35 and the leaderboard
    "0.3300 ± 0.0283 (n=2)"."""
    from mmsa_atsuko.leaderboard.stats import Cell

    def records(third):
        return [{"metrics": {"Corr": value}} for value in (0.31, third, 0.35)]

    # 0.31 and 0.35: mean 0.33, std sqrt((0.02**2 + 0.02**2) / 1) = sqrt(0.0008) = 0.028284
    for third in (float("nan"), None, float("inf")):
        cell = Cell.of(records(third), "Corr")
        assert cell.values == [0.31, 0.35], third
        assert cell.text(of=3) == "0.3300 ± 0.0283 (n=2)"
