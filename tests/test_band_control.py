"""bench/atsuko_band_control.py: Holm's correction and the per-seed control table behind docs/atsuko_evidence.md's
band-router rows. Every expected number is worked out here by hand, not by calling the code under test."""
import pytest

from mmsa_atsuko.results import append_record
from test_leaderboard import record
from test_mean_std import _bench

CORRUPT = "synthetic:corrupt-s2-mosi-full-unaligned-seed0-v2"


def test_holm_multiplies_the_kth_smallest_by_m_minus_k_plus_1_and_never_steps_down():
    holm = _bench("atsuko_band_control").holm
    # sorted 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08, held at 0.09), 0.5 (x1)
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    # the doc's best p of 12 tests: 0.0047 x 12 = 0.0564; the next, 0.011 x 11 = 0.121
    adjusted = holm([0.0047, 0.011] + [0.9] * 10)
    assert adjusted[:2] == pytest.approx([0.0564, 0.121])
    assert adjusted[2:] == [1.0] * 10                    # 0.9 x 10 capped at 1


def test_the_table_prints_every_seed_in_seed_order_and_holm_over_its_tests(tmp_path):
    bench = _bench("atsuko_band_control")
    sbn, base = tmp_path / "sbn", tmp_path / "base"
    for seed, mae in ((1112, 0.52), (1111, 0.50), (1113, 0.54)):      # written out of order
        rec = record("atsuko_sbn", seed, {"MAE": mae}, data=CORRUPT, config_hash="c-sbn")
        rec["routing"] = {"band_weights": {"V": {"mean": [0.3, 0.3, 0.4], "std": [0.01, 0.02, 0.03]},
                                           "A": {"mean": [0.3, 0.3, 0.4], "std": [0.03, 0.04, 0.05]}}}
        append_record(sbn, rec)
    for seed, mae in ((1111, 0.60), (1112, 0.62), (1113, 0.64)):
        append_record(base, record("atsuko_base", seed, {"MAE": mae}, data=CORRUPT, config_hash="c-base"))
    lines = bench.table({"sbn": [sbn], "base": [base]}, [("sbn", "base")]).splitlines()
    # spread: V bands average 0.02, A 0.04 -> 0.03; both rows' std is 0.02 (deviations 0.02, 0, 0.02 over 2)
    assert lines[2] == ("| corrupt s2 | sbn | atsuko_sbn | 1111 1112 1113 | 0.5000 0.5200 0.5400 | 0.5200 ± 0.0200"
                        " | 0.0300 | - |")
    assert lines[3] == ("| corrupt s2 | base | atsuko_base | 1111 1112 1113 | 0.6000 0.6200 0.6400 | 0.6200 ± 0.0200"
                        " | - | - |")
    # diff -0.1; se = sqrt(2 * 0.0004 / 3) = 0.016330, t = -6.1237, df = 4: two-sided p = 0.0036; one test -> Holm p
    assert lines[-1] == "| corrupt s2 | sbn vs base | -0.1000 | 0.0036 | 0.0036 |"


def test_two_configs_in_one_row_are_refused_in_one_line(tmp_path):
    bench = _bench("atsuko_band_control")
    for seed, config_hash in ((1111, "c-a"), (1112, "c-b")):
        append_record(tmp_path, record("atsuko_sbn", seed, {"MAE": 0.5}, data=CORRUPT, config_hash=config_hash))
    with pytest.raises(SystemExit, match="row sbn holds 2 configs on corrupt s2; give each its own --row"):
        bench.table({"sbn": [tmp_path]}, [])


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    bench = _bench("atsuko_band_control")
    for argv, says in ((["--row", "x"], "--row wants LABEL=FOLDER"), (["--holm", "2"], "between 0 and 1"),
                       (["--row", f"x={tmp_path}", "--vs", "x:y"], "--vs names no --row label: y")):
        with pytest.raises(SystemExit) as exit_:
            bench.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and says in err and err.count("\n") == 1
