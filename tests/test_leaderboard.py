"""Leaderboards, ablation and comparison tables from hand-made run records.

Every expected number here is worked out in the test from the values it writes (sample std
with ddof=1, Welch's t and degrees of freedom by formula, p from the t distribution), not
by calling the code under test.
"""
import hashlib
import io
import json
import math
import re

import pandas as pd
import pytest
from scipy import stats

from mmsa_atsuko.data.conditions import make_condition
from mmsa_atsuko.errors import UsageError
from mmsa_atsuko.leaderboard import compare, leaderboard
from mmsa_atsuko.metrics.names import metric_keys
from mmsa_atsuko.results import append_record

SYN = "synthetic:mosi-small-unaligned-seed0-v1"
REAL = "sha256:78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524"     # MMSA's unaligned MOSI


def record(model, seed, values, *, dataset="mosi", data=SYN, config_hash="h-" + "0" * 10, status="ok",
           aligned=False, config=None, fill=0.5):
    metrics = {k: fill for k in metric_keys(dataset)}
    metrics.update(values)
    return {"run_id": f"{model}-{dataset}-{seed}-{config_hash}-{len(values)}", "status": status,
            "model": model, "dataset": dataset, "aligned": aligned, "seed": seed,
            "synthetic": data.startswith("synthetic:"), "metrics": metrics if status == "ok" else {},
            "config_hash": config_hash, "config": config or {"learning_rate": 0.001}, "data": data,
            "started_at": f"2026-01-01T00:00:{seed % 60:02d}+00:00"}


@pytest.fixture
def store(tmp_path):
    rows = [
        # tfn on synthetic MOSI: MAE 0.9/1.0/1.1 -> mean 1.0, sample std 0.1
        record("tfn", 1, {"MAE": 0.5, "Has0_acc_2": 0.1}),          # replaced by the later record below
        record("tfn", 2, {"MAE": 1.0, "Has0_acc_2": 0.6}),
        record("tfn", 3, {"MAE": 1.1, "Has0_acc_2": 0.7}),
        record("tfn", 1, {"MAE": 0.9, "Has0_acc_2": 0.5}),          # same identity, later: wins
        # lmf: MAE 0.8/0.85/0.75 -> mean 0.8, std 0.05 (best MAE); Has0_acc_2 0.4/0.5/0.6
        record("lmf", 1, {"MAE": 0.8, "Has0_acc_2": 0.4}),
        record("lmf", 2, {"MAE": 0.85, "Has0_acc_2": 0.5}),
        record("lmf", 3, {"MAE": 0.75, "Has0_acc_2": 0.6}),
        record("lmf", 4, {}, status="failed"),                      # failures never reach a table
        # tfn with another config: a separate, labelled row
        record("tfn", 1, {"MAE": 2.0}, config_hash="h-" + "9" * 10, config={"learning_rate": 0.1}),
        record("tfn", 2, {"MAE": 2.2}, config_hash="h-" + "9" * 10, config={"learning_rate": 0.1}),
        # real data: its own table
        record("tfn", 1, {"MAE": 0.7}, data=REAL),
        record("tfn", 2, {"MAE": 0.9}, data=REAL),
    ]
    for r in rows:
        append_record(tmp_path, r)
    return tmp_path


def frame(text):
    return pd.read_csv(io.StringIO(text))


def test_csv_means_stds_n_best_and_welch_against_hand_values(store):
    df = frame(leaderboard(store, fmt="csv"))
    board = df[df.table == "leaderboard"]
    syn = board[board.data == SYN].set_index("label")
    assert set(syn.index) == {"tfn@h-000000", "tfn@h-999999", "lmf"}

    tfn, lmf, tfn_lr = syn.loc["tfn@h-000000"], syn.loc["lmf"], syn.loc["tfn@h-999999"]
    assert tfn.n == 3 and lmf.n == 3 and tfn_lr.n == 2
    assert tfn.MAE_mean == pytest.approx(1.0) and tfn.MAE_std == pytest.approx(0.1)
    assert lmf.MAE_mean == pytest.approx(0.8) and lmf.MAE_std == pytest.approx(0.05)
    assert tfn_lr.MAE_mean == pytest.approx(2.1) and tfn_lr.MAE_std == pytest.approx(math.sqrt(0.02))
    assert tfn.Has0_acc_2_mean == pytest.approx(0.6) and tfn.Has0_acc_2_std == pytest.approx(0.1)
    assert tfn.MAE_n == 3
    # best: lowest MAE, highest accuracy (tfn 0.6 beats lmf 0.5 and the lr row's filler 0.5)
    assert (lmf.MAE_best, tfn.MAE_best, tfn_lr.MAE_best) == (1, 0, 0)
    assert (tfn.Has0_acc_2_best, lmf.Has0_acc_2_best) == (1, 0)
    assert tfn.Mult_acc_7_best == 1 and lmf.Mult_acc_7_best == 1      # a tie: both marked

    # Welch on MAE. tfn's best other model is lmf; lmf's is the better of tfn's two rows.
    va, vb = 0.1 ** 2 / 3, 0.05 ** 2 / 3
    t = (1.0 - 0.8) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    p = 2 * stats.t.sf(t, dof)
    assert tfn.ttest_against == "lmf" and tfn.ttest_p == pytest.approx(p, rel=1e-6)
    assert tfn.ttest_t == pytest.approx(t, rel=1e-6)
    assert lmf.ttest_against == "tfn@h-000000" and lmf.ttest_p == pytest.approx(p, rel=1e-6)
    assert tfn_lr.ttest_against == "lmf"

    real = board[board.data == REAL]
    assert list(real.label) == ["tfn"] and set(real.data_kind) == {"real"}
    assert real.iloc[0].MAE_mean == pytest.approx(0.8) and real.iloc[0].MAE_std == pytest.approx(math.sqrt(0.02))
    assert set(syn.data_kind) == {"synthetic"}


def test_equal_seeds_are_constant_and_the_csv_keeps_every_digit(tmp_path):
    from mmsa_atsuko.leaderboard import welch

    # In floats, three equal values do not have that value as mean or a zero variance:
    assert sum([0.7] * 3) / 3 != 0.7
    for seed in (1, 2, 3):
        append_record(tmp_path, record("tfn", seed, {"MAE": 0.7, "Corr": 0.712345678912345 + seed}))
        append_record(tmp_path, record("lmf", seed, {"MAE": 0.8}))
    board = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    tfn = board.loc["tfn"]
    assert (tfn.MAE_mean, tfn.MAE_std) == (0.7, 0.0)
    # No spread on either side: no test, rather than p ~ 1e-60 from a variance of 1e-32.
    assert math.isnan(tfn.ttest_p) and math.isnan(tfn.ttest_t)
    w = welch([0.7] * 3, [0.8] * 3)
    assert w.diff == 0.7 - 0.8 and math.isnan(w.p)
    # The CSV holds the stored fractions to the last digit (mean of 1.71..., 2.71..., 3.71...).
    assert tfn.Corr_mean == (1.712345678912345 + 2.712345678912345 + 3.712345678912345) / 3


def test_rows_with_the_same_values_in_another_seed_order_tie(tmp_path):
    """np.mean([.7, .8, .9]) != np.mean([.9, .8, .7]) in floats; both rows must be best."""
    assert sum([0.7, 0.8, 0.9]) != sum([0.9, 0.8, 0.7])
    for seed, (a, b) in enumerate(zip([0.7, 0.8, 0.9], [0.9, 0.8, 0.7]), start=1):
        append_record(tmp_path, record("tfn", seed, {"Has0_acc_2": a}))
        append_record(tmp_path, record("lmf", seed, {"Has0_acc_2": b}))
    board = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    assert board.loc["tfn"].Has0_acc_2_mean == board.loc["lmf"].Has0_acc_2_mean
    assert board.loc["tfn"].Has0_acc_2_best == board.loc["lmf"].Has0_acc_2_best == 1


def test_dataset_names_are_checked_and_latex_says_what_markdown_says(store):
    with pytest.raises(UsageError, match="unknown dataset 'foo'"):
        leaderboard(store, datasets=["mosi", "foo"], paper=True)
    assert leaderboard(store, datasets=["MOSI"]) == leaderboard(store, datasets=["mosi"])
    latex = leaderboard(store, fmt="latex", datasets=["mosi"], paper=True)
    assert "Published by the seed paper (the Atsuko paper, Complementarity-Supervised Spectral-Band Routing for Multimodal Emotion Recognition, Table 1), mosi, unaligned; real data" in latex
    assert r"tfn@h-999999: learning\_rate=0.1" in latex                # which config each row is
    assert "p < " not in latex and "p $<$ " in latex                     # a bare < prints as ¡
    # Counts stay integers in a CSV that also holds published rows (which have none).
    csv_text = leaderboard(store, fmt="csv", datasets=["mosi"], paper=True)
    lmf = next(line for line in csv_text.splitlines() if ",lmf," in line)
    assert ",3," in lmf and ",3.0," not in lmf
    published = [line for line in csv_text.splitlines() if "(published)" in line]
    assert published and all(len(v.split(".")[1]) <= 4 for line in published      # 74.16 % is 0.7416,
                             for v in line.split(",") if v.replace(".", "").isdigit() and "." in v)  # not 0.74159999


def test_config_notes_name_the_labels_of_their_runs(tmp_path):
    # A tune study's runs carry its label; the note of their config says so, the other config's does not.
    for seed in (1, 2):
        append_record(tmp_path, record("tfn", seed, {"MAE": 1.0}))
        tuned = record("tfn", seed, {"MAE": 0.9}, config_hash="h-" + "7" * 10, config={"learning_rate": 0.01})
        append_record(tmp_path, tuned | {"label": "tune-tfn-mosi"})
    text = leaderboard(tmp_path, fmt="md")
    assert "- tfn@h-777777: learning_rate=0.01 (runs labelled tune-tfn-mosi)" in text
    assert "- tfn@h-000000: learning_rate=0.001\n" in text


def test_a_tuned_row_names_its_study_and_trial_in_the_notes_and_the_csv(tmp_path):
    """tune's final runs carry the study (`label`) and the trial whose config they ran (`tune_trial`), but a model
    with one config in its table showed neither: nothing said the row was a study's best trial."""
    for seed in (1, 2):
        append_record(tmp_path, record("tfn", seed, {"MAE": 0.9}) | {"label": "tune-tfn-mosi", "tune_trial": 7})
        append_record(tmp_path, record("lmf", seed, {"MAE": 1.0}))
        tuned = record("lmf", seed, {"MAE": 0.8}, config_hash="h-" + "3" * 10, config={"learning_rate": 0.01})
        append_record(tmp_path, tuned | {"label": "tune-lmf-mosi", "tune_trial": 3})
    text = leaderboard(tmp_path, fmt="md")
    assert "\n- tfn: runs labelled tune-tfn-mosi trial 7\n" in text
    # A model of several configs says it in its config note, once.
    assert "- lmf@h-333333: learning_rate=0.01 (runs labelled tune-lmf-mosi trial 3)" in text
    assert "- lmf@h-000000: learning_rate=0.001\n" in text and text.count("tune-lmf-mosi") == 1
    board = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    assert board.run_label.fillna("").to_dict() == {"tfn": "tune-tfn-mosi trial 7", "lmf@h-000000": "",
                                                    "lmf@h-333333": "tune-lmf-mosi trial 3"}


@pytest.mark.parametrize("field,value,what", [
    ("label", "tune-x\n### a heading of its own", "label is 'tune-x\\n### a heading of its own', not a string of "
                                                  "one line (at most 200 characters)"),
    ("label", "x" * 201, "label is 'xxxxxxx"),
    ("package_version", "1.0\r\n| a | row |", "package_version is '1.0\\r\\n| a | row |', not a string of one line"),
    ("git_commit", ["abc"], "git_commit is a JSON array, not a string of one line"),
    ("tune_trial", "7", "tune_trial is '7', not a trial number (an integer, 0 or more)"),
    ("tune_trial", -3, "tune_trial is -3, not a trial number"),
    ("tune_trial", True, "tune_trial is True, not a trial number"),
    ("tune_trial", 10 ** 4000, "tune_trial is a huge integer, not a trial number (an integer, 0 or more)"),
])
def test_a_label_trial_or_code_field_that_a_table_cannot_show_skips_its_line(tmp_path, caplog, field, value, what):
    """label, tune_trial and the code fields are written as they are into the notes and CSVs (run_label,
    code_version): before, a label's newline wrote a Markdown heading of its own into the leaderboard, a 4,000-digit
    trial a 4,000-digit note, and a tune_trial of '7' or -3 was shown or dropped without a word; then such a line
    stopped the leaderboard. Now it is no run: skipped with the store's warning, and the good seed is shown alone."""
    import logging
    append_record(tmp_path, record("tfn", 1, {"MAE": 0.9}) | {"label": "tune-tfn-mosi"})
    append_record(tmp_path, record("tfn", 2, {"MAE": 0.7}) | {"label": "tune-tfn-mosi", field: value})
    with caplog.at_level(logging.WARNING, logger="mmsa_atsuko"):
        text = leaderboard(tmp_path, fmt="md")
    (warning,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"skipped 1 line(s) that hold no run record, the first line 2 (its {what}" in warning, warning
    assert "\n" not in warning and "| tfn | 1 | 50.00 ± – |" in text and "| 0.9000 ± – |" in text
    assert "- seeds 1 in every row" in text and "a heading" not in text and "| a | row |" not in text


def test_markdown_marks_best_separates_real_and_synthetic_and_labels_configs(store):
    text = leaderboard(store, fmt="md")
    real_title = f"### mosi, unaligned: real data ({REAL})"
    syn_title = f"### mosi, unaligned: synthetic data ({SYN})"
    assert text.index(real_title) < text.index(syn_title)          # real tables first, never merged
    syn_part = text[text.index(syn_title):]
    lmf_line = next(line for line in syn_part.splitlines() if line.startswith("| lmf |"))
    assert "**0.8000 ± 0.0500**" in lmf_line                         # MAE best, shown as stored
    assert "40.00 ± 10.00" not in lmf_line and "50.00 ± 10.00" in lmf_line   # Has0 in %, not bold
    tfn_line = next(line for line in syn_part.splitlines() if line.startswith("| tfn@h-000000 |"))
    assert "**60.00 ± 10.00**" in tfn_line and "vs lmf: p=" in tfn_line
    assert "- tfn@h-999999: learning_rate=0.1" in syn_part and "- tfn@h-000000: learning_rate=0.001" in syn_part
    real_part = text[text.index(real_title):text.index(syn_title)]
    assert "lmf" not in real_part and "n<2 or no spread" not in real_part


def test_latex_bolds_best_and_escapes(store):
    text = leaderboard(store, fmt="latex", datasets=["mosi"])
    assert r"\textbf{0.8000 $\pm$ 0.0500}" in text
    assert r"Has0\_acc\_2" in text and r"\begin{tabular}" in text and text.count(r"\begin{table}") == 2


def test_paper_rows_are_separate_and_marked_published(store):
    md = leaderboard(store, fmt="md", paper=True)
    # Every published block and CSV row names the paper its numbers are printed in, not only "Table 1".
    paper = "the Atsuko paper, Complementarity-Supervised Spectral-Band Routing for Multimodal Emotion Recognition"
    block = md[md.index(f"### Published by the seed paper: mosi, unaligned ({paper}, Table 1; real data"):]
    atsuko = next(line for line in block.splitlines() if line.startswith("| Atsuko"))
    assert atsuko == "| Atsuko (published) | 49.4 | 86.0 | 85.9 | 0.691 |"
    assert f"Published by the seed paper: ablation ({paper}, Table 4; aligned" in md
    # LaTeX's Table 4 caption says what Markdown's heading does: before, only "(...Table 4); not our runs."
    ablation = f"Published by the seed paper: ablation ({paper}, Table 4; aligned, real data, not our runs)"
    assert f"### {ablation}\n" in md
    assert f"\\caption{{{ablation}.}}" in leaderboard(store, fmt="latex", paper=True)
    df = frame(leaderboard(store, fmt="csv", paper=True, datasets=["mosi"]))
    pub = df[df.table == "published"]
    assert (pub.label.str.endswith("(published)")).all() and (pub.source == f"published ({paper}, Table 1)").all()
    assert (pub.data_kind == "real").all() and not (df[df.table == "leaderboard"].source != "ours").any()
    row = pub[(pub.label == "Atsuko (published)") & (pub.aligned == False)].iloc[0]   # noqa: E712
    assert row.model == "atsuko" and row.MAE_mean == pytest.approx(0.691) and row.Mult_acc_7_mean == pytest.approx(0.494)
    # asked for a dataset we have no runs on: its published rows still come, ours do not exist
    mintrec = frame(leaderboard(store, fmt="csv", paper=True, datasets=["mosi", "mintrec"]))
    m = mintrec[(mintrec.dataset == "mintrec") & (mintrec.label == "Atsuko (published)")].iloc[0]
    assert (m.acc_mean, m.f1_mean, m.precision_mean, m.recall_mean) == pytest.approx((0.7416, 0.7122, 0.7293, 0.7086))
    ablation = df[df.table == "published ablation"]
    neither = ablation[(ablation.dataset == "mosei") & (ablation.use_sbn == False) & (ablation.use_mcm == False)]  # noqa: E712
    assert neither.iloc[0].MAE_mean == pytest.approx(0.558)
    assert (ablation.source == f"published ({paper}, Table 4)").all()


def test_ablation_in_table4_order_from_the_switches(tmp_path):
    flags = {"atsuko_base": (False, False), "atsuko_sbn": (True, False), "atsuko_mcm": (False, True),
             "atsuko": (True, True)}
    acc7 = {"atsuko": (0.40, 0.50), "atsuko_mcm": (0.30, 0.36), "atsuko_sbn": (0.2, 0.2), "atsuko_base": (0.1, 0.3)}
    for model in ("atsuko", "atsuko_mcm", "atsuko_sbn", "atsuko_base"):     # stored out of table order
        sbn, mcm = flags[model]
        for seed, value in zip((1, 2), acc7[model]):
            append_record(tmp_path, record(model, seed, {"Mult_acc_7": value}, aligned=True,
                                           config_hash=f"c-{model}", config={"use_sbn": sbn, "use_mcm": mcm}))
    append_record(tmp_path, record("tfn", 1, {"Mult_acc_7": 0.9}, aligned=True))
    df = frame(leaderboard(tmp_path, fmt="csv"))
    ab = df[df.table == "ablation"]
    assert list(zip(ab.use_sbn, ab.use_mcm)) == [(False, False), (True, False), (False, True), (True, True)]
    assert list(ab.model) == ["atsuko_base", "atsuko_sbn", "atsuko_mcm", "atsuko"]
    assert list(ab.Mult_acc_7_mean) == pytest.approx([0.2, 0.2, 0.33, 0.45])
    assert list(ab.Mult_acc_7_std) == pytest.approx([math.sqrt(0.02), 0.0, math.sqrt(0.0018), math.sqrt(0.005)])
    assert list(ab.Mult_acc_7_best) == [0, 0, 0, 1]
    assert "tfn" not in set(ab.model)
    md = leaderboard(tmp_path, fmt="md")
    section = md[md.index("### Ablation (Table 4 layout), aligned: synthetic data"):]
    lines = [line for line in section.splitlines() if line.startswith("| ✓") or line.startswith("| -")]
    assert [line.split(" | ")[2] for line in lines] == ["atsuko_base", "atsuko_sbn", "atsuko_mcm", "atsuko"]
    assert "**45.00 ± 7.07**" in lines[3]


def test_table4_rows_are_one_mapping_the_leaderboard_and_the_analysis_read():
    """models/atsuko/family.py's TABLE4_ROWS is the one home of Table 4's switches, order and row names (§14)."""
    from mmsa_atsuko import analysis
    from mmsa_atsuko.models.atsuko.family import ABLATIONS, TABLE4_ROWS, switches_of
    assert list(TABLE4_ROWS) == [(False, False), (True, False), (False, True), (True, True)]
    assert analysis.VARIANT_ORDER == ("base (no SBN, no MCM)", "+SBN", "+MCM", "full Atsuko (SBN + MCM)")
    assert analysis.variant_name({"use_sbn": False, "use_mcm": True}) == "+MCM"
    assert (switches_of(None), switches_of({"use_sbn": True}), switches_of({"use_sbn": 1, "use_mcm": True})) == \
        ((False, False), (True, False), (True, True))
    assert sorted(ABLATIONS.values()) + [(True, True)] == sorted(TABLE4_ROWS)    # each variant a row; atsuko the full


def test_ablation_of_several_recipes_of_one_dataset_names_each_column_group(tmp_path):
    """Four synthetic MOSI recipes side by side used to head every group `mosi`: the columns could
    not be told apart. Where a dataset repeats, a group is named by its recipe."""
    data = {"corrupt": "synthetic:corrupt-s2-mosi-full-unaligned-seed0-v2",
            "standard": "synthetic:mosi-full-unaligned-seed0-v2"}
    for recipe, data_id in data.items():
        for model, flags in (("atsuko_base", (False, False)), ("atsuko", (True, True))):
            for seed in (1, 2):
                mae = {"corrupt": 0.5, "standard": 0.4}[recipe] + (0.1 if model == "atsuko_base" else 0) + seed / 100
                append_record(tmp_path, record(model, seed, {"MAE": mae}, data=data_id, config_hash=f"c-{model}",
                                               config={"use_sbn": flags[0], "use_mcm": flags[1]}))
    append_record(tmp_path, record("atsuko", 1, {"MAE": 0.9}, data=data["corrupt"], config_hash="c-what-if",
                                   config={"use_sbn": True, "use_mcm": True, "lambda_comp": 1.0}))
    md = leaderboard(tmp_path, fmt="md")
    section = md[md.index("### Ablation (Table 4 layout)"):]
    assert "- mosi corrupt: 2 configs with SBN=True, MCM=True; showing atsuko@c-atsuko (n=2)" in section
    header = next(line for line in section.splitlines() if line.startswith("| SBN"))
    assert header.count("mosi corrupt MAE ↓") == 1 and header.count("mosi standard MAE ↓") == 1
    assert f"mosi corrupt: {data['corrupt']}" in section.splitlines()[0]
    atsuko = next(line for line in section.splitlines() if line.startswith("| ✓ | ✓"))
    cells = [c.strip() for c in atsuko.strip("|").split("|")]
    order = [c.strip() for c in header.strip("|").split("|")]
    for recipe, base in (("corrupt", 0.5), ("standard", 0.4)):          # atsuko's seeds: base + 0.01, base + 0.02
        values = [base + 0.01, base + 0.02]
        mean, std = sum(values) / 2, abs(values[1] - values[0]) / math.sqrt(2)      # ddof=1 with two values
        assert cells[order.index(f"mosi {recipe} MAE ↓")] == f"**{mean:.4f} ± {std:.4f}**"
    latex = leaderboard(tmp_path, fmt="latex")
    assert "mosi corrupt MAE" in latex and "mosi standard MAE" in latex


def test_compare_writes_welch_ci_per_metric(store, tmp_path):
    append_record(store, record("atsuko", 1, {"MAE": 0.6}))
    append_record(store, record("atsuko", 2, {"MAE": 0.7}))
    append_record(store, record("atsuko", 3, {"MAE": 0.65}))
    messages = []
    paths = compare(store, "atsuko", ["lmf", "mult"], ["mosi"], warn=messages.append)
    assert [p.name for p in paths] == ["comparison_atsuko_mosi-synthetic.csv"]
    assert any("no ok runs of mult" in m for m in messages)
    df = pd.read_csv(paths[0])
    row = df[(df.metric == "MAE") & (df.baseline == "lmf")].iloc[0]
    # atsuko 0.6/0.7/0.65 (mean 0.65, sd 0.05) vs lmf (mean 0.8, sd 0.05)
    va = vb = 0.05 ** 2 / 3
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)            # = 4 for equal variances and n
    half = stats.t.ppf(0.975, dof) * se
    assert dof == pytest.approx(4.0)
    assert row["diff"] == pytest.approx(-0.15)
    assert (row.ci_low, row.ci_high) == pytest.approx((-0.15 - half, -0.15 + half))
    assert row.ci == "Welch 95%" and row.df == pytest.approx(4.0)
    assert row.p_value == pytest.approx(2 * stats.t.sf(0.15 / se, dof), rel=1e-6)
    assert bool(row.model_better) and not bool(row.higher_is_better)
    assert set(df.metric) == set(metric_keys("mosi")) and set(df.baseline) == {"lmf"}
    with pytest.raises(UsageError, match="no ok runs of atsuko on sims"):
        compare(store, "atsuko", ["lmf"], ["sims"])         # the store has no sims run at all
    # A misspelt name is pointed at the stored one it is close to.
    with pytest.raises(UsageError, match=r"no ok runs of atsuk on mosi in .*runs.jsonl \(atsuk: did you mean atsuko\?\); "
                                         r"models with runs on mosi: atsuko, lmf, tfn$"):
        compare(store, "atsuk", ["lmf"], ["mosi"])
    messages = []
    compare(store, "atsuko", ["lmf", "lmff"], ["mosi"], warn=messages.append, echo=lambda _: None)
    (lmff,) = [m for m in messages if "lmff" in m]
    assert lmff.startswith("compare: no ok runs of lmff on mosi unaligned (") and \
        lmff.endswith("); skipped (lmff: did you mean lmf?)")
    with pytest.raises(UsageError, match=r"none of lmff has ok runs .* \(lmff: did you mean lmf\?\)$"):
        compare(store, "atsuko", ["lmff"], ["mosi"])
    # A model with runs on another dataset only: no suggestion of a look-alike name.
    append_record(store, record("atsuko_sbn", 1, {"MAE": 0.6}, dataset="sims"))
    with pytest.raises(UsageError, match=r"no ok runs of atsuko on sims in .*runs.jsonl; models with runs on sims: "
                                         r"atsuko_sbn$"):
        compare(store, "atsuko", ["atsuko_sbn"], ["sims"])


def test_empty_store_is_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no ok runs"):
        leaderboard(tmp_path)


def test_single_seed_rows_are_never_bold_nor_tested_and_show_n(tmp_path):
    # mult has the best mean in every column, but over one seed: lmf and tfn (two seeds each)
    # get the bold and are tested against each other, not against mult.
    for seed, (mae, acc) in enumerate([(0.9, 0.5), (1.0, 0.6)], start=1):
        append_record(tmp_path, record("tfn", seed, {"MAE": mae, "Has0_acc_2": acc}))
    for seed, (mae, acc) in enumerate([(0.8, 0.4), (0.85, 0.5)], start=1):
        append_record(tmp_path, record("lmf", seed, {"MAE": mae, "Has0_acc_2": acc}))
    append_record(tmp_path, record("mult", 1, {"MAE": 0.5, "Has0_acc_2": 0.9, "Corr": 0.9}))

    board = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    mult, lmf, tfn = board.loc["mult"], board.loc["lmf"], board.loc["tfn"]
    assert (mult.n, lmf.n, tfn.n) == (1, 2, 2)
    assert mult.MAE_best == mult.Has0_acc_2_best == mult.Corr_best == 0
    assert (lmf.MAE_best, tfn.MAE_best) == (1, 0) and (tfn.Has0_acc_2_best, lmf.Has0_acc_2_best) == (1, 0)
    assert lmf.Corr_best == tfn.Corr_best == 1                       # 0.5 each: a tie among n >= 2
    # lmf (0.8, 0.85) against tfn (0.9, 1.0) by hand; mult is neither tested nor tested against.
    va, vb = 0.05 ** 2 / 2 / 2, 0.1 ** 2 / 2 / 2                    # sample variances 0.00125, 0.005, over n=2
    t = (0.825 - 0.95) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 + vb ** 2)
    assert lmf.ttest_against == "tfn" and tfn.ttest_against == "lmf"
    assert lmf.ttest_t == pytest.approx(t, rel=1e-6) and lmf.ttest_p == pytest.approx(2 * stats.t.sf(-t, dof), rel=1e-6)
    assert pd.isna(mult.ttest_against) and math.isnan(mult.ttest_p)

    md = leaderboard(tmp_path, fmt="md")
    mult_line = next(line for line in md.splitlines() if line.startswith("| mult |"))
    assert mult_line.startswith("| mult | 1 | 90.00 ± – |") and "**" not in mult_line
    assert mult_line.endswith("| not tested (n<2) |")
    lmf_line = next(line for line in md.splitlines() if line.startswith("| lmf |"))
    assert lmf_line.startswith("| lmf | 2 |") and "**0.8250 ± 0.0354**" in lmf_line and "vs tfn: p=" in lmf_line
    assert "\n\n- mult: one seed (n=1), so never bold and not Welch-tested\n" in md
    latex = leaderboard(tmp_path, fmt="latex")
    mult_tex = next(line for line in latex.splitlines() if line.startswith("mult & 1 &"))
    assert r"\textbf" not in mult_tex and "mult: one seed (n=1), so never bold and not Welch-tested." in latex


def test_a_table_of_one_row_bolds_nothing(tmp_path):
    """Bold marks the best among rows: a table of one model (two seeds) bolded every cell of its one row."""
    for seed, (mae, acc) in enumerate([(0.9, 0.5), (1.0, 0.6)], start=1):
        append_record(tmp_path, record("tfn", seed, {"MAE": mae, "Has0_acc_2": acc}))
    tfn = frame(leaderboard(tmp_path, fmt="csv")).set_index("label").loc["tfn"]
    assert tfn.MAE_best == tfn.Has0_acc_2_best == tfn.Corr_best == 0
    md_row = next(line for line in leaderboard(tmp_path, fmt="md").splitlines() if line.startswith("| tfn |"))
    tex_row = next(line for line in leaderboard(tmp_path, fmt="latex").splitlines() if line.startswith("tfn &"))
    assert "**" not in md_row and r"\textbf" not in tex_row
    # A second row with two seeds: the best of the two is bold again.
    for seed, mae in enumerate([0.8, 0.85], start=1):
        append_record(tmp_path, record("lmf", seed, {"MAE": mae, "Has0_acc_2": 0.4}))
    board = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    assert (board.loc["lmf"].MAE_best, board.loc["tfn"].MAE_best) == (1, 0)


def test_a_single_seed_ablation_row_is_not_bold_and_latex_shows_n(tmp_path):
    for seed, value in ((1, 0.4), (2, 0.5)):
        append_record(tmp_path, record("atsuko", seed, {"Mult_acc_7": value}, aligned=True, config_hash="c-full",
                                       config={"use_sbn": True, "use_mcm": True}))
    append_record(tmp_path, record("atsuko_base", 1, {"Mult_acc_7": 0.9}, aligned=True, config_hash="c-base",
                                   config={"use_sbn": False, "use_mcm": False}))
    ab = frame(leaderboard(tmp_path, fmt="csv")).query("table == 'ablation'").set_index("model")
    assert (ab.loc["atsuko_base"].n, ab.loc["atsuko"].n) == (1, 2)
    assert (ab.loc["atsuko_base"].Mult_acc_7_best, ab.loc["atsuko"].Mult_acc_7_best) == (0, 1)
    md = leaderboard(tmp_path, fmt="md")
    assert "- mosi: atsuko_base: one seed (n=1), so never bold and not Welch-tested" in md
    latex = leaderboard(tmp_path, fmt="latex")
    assert "SBN & MCM & mosi n & mosi Acc7 & mosi Acc2 & mosi F1 & mosi MAE" in latex
    assert r"- & - & 1 & 90.00 $\pm$ -- & " in latex and r"\checkmark & \checkmark & 2 & \textbf{45.00 $\pm$ 7.07}" in latex


def _stamped(rec, stamp):
    rec["started_at"] = stamp
    return rec


def test_compare_takes_each_models_latest_config_unless_all_configs(tmp_path):
    # Stored out of time order: the later atsuko config comes first in the store, so the
    # choice follows started_at, not the store's order.
    for seed, mae in ((1, 0.5), (2, 0.55)):
        append_record(tmp_path, _stamped(record("atsuko", seed, {"MAE": mae}, config_hash="a-new"),
                                         f"2026-03-01T00:00:0{seed}+00:00"))
    for seed, mae in ((1, 0.6), (2, 0.7)):
        append_record(tmp_path, _stamped(record("atsuko", seed, {"MAE": mae}, config_hash="a-old"),
                                         f"2026-01-01T00:00:0{seed}+00:00"))
    # lmf: one config's latest run (seed 2, February) is later than anything of the other
    append_record(tmp_path, _stamped(record("lmf", 1, {"MAE": 0.8}, config_hash="l-old"), "2026-01-05T00:00:00+00:00"))
    append_record(tmp_path, _stamped(record("lmf", 1, {"MAE": 0.9}, config_hash="l-new"), "2026-01-02T00:00:00+00:00"))
    append_record(tmp_path, _stamped(record("lmf", 2, {"MAE": 1.0}, config_hash="l-new"), "2026-02-01T00:00:00+00:00"))
    append_record(tmp_path, _stamped(record("lmf", 2, {"MAE": 0.85}, config_hash="l-old"), "2026-01-06T00:00:00+00:00"))

    messages = []
    path, = compare(tmp_path, "atsuko", ["lmf"], warn=messages.append, echo=lambda text: None)
    df = pd.read_csv(path)
    assert len(df) == len(metric_keys("mosi"))                    # one pair of configs, one row per metric
    assert set(df.model_config_hash) == {"a-new"} and set(df.baseline_config_hash) == {"l-new"}
    mae = df[df.metric == "MAE"].iloc[0]
    assert (mae.model, mae.baseline) == ("atsuko@a-new", "lmf@l-new")
    assert (mae.model_mean, mae.baseline_mean, mae["diff"]) == pytest.approx((0.525, 0.95, -0.425))
    assert any("atsuko has 2 configs" in m and "atsuko@a-new" in m for m in messages)
    assert any("lmf has 2 configs" in m and "lmf@l-new" in m for m in messages)

    path, = compare(tmp_path, "atsuko", ["lmf"], all_configs=True, warn=messages.append, echo=lambda text: None)
    df = pd.read_csv(path)
    assert len(df) == 4 * len(metric_keys("mosi"))
    assert set(zip(df.model_config_hash, df.baseline_config_hash)) == {
        ("a-new", "l-new"), ("a-new", "l-old"), ("a-old", "l-new"), ("a-old", "l-old")}


def test_compare_after_a_missing_rate_sweep_compares_the_plain_rows(tmp_path):
    """`sweep -m tfn lmf --missing-rate 0 0.3` then `compare -m tfn --against lmf` said 'none of lmf has
    ok runs where tfn has': each model's latest config was picked among all its rows, the missing-rate
    row (run last) won, and it is not a plain row, so nothing was left to compare."""
    def at(rate, rec, stamp):
        rec["condition"] = make_condition(rate).as_dict()
        rec["run_id"] += f"-mr{rate}"
        return _stamped(rec, stamp)
    for r in (at(0.0, record("tfn", 1, {"MAE": 1.0}), "2026-01-01T00:00:01+00:00"),
              at(0.0, record("tfn", 2, {"MAE": 1.2}), "2026-01-01T00:00:02+00:00"),
              at(0.0, record("lmf", 1, {"MAE": 0.8}), "2026-01-01T00:00:03+00:00"),
              at(0.0, record("lmf", 2, {"MAE": 0.9}), "2026-01-01T00:00:04+00:00"),
              at(0.3, record("tfn", 1, {"MAE": 2.0}), "2026-01-01T00:00:05+00:00"),
              at(0.3, record("tfn", 2, {"MAE": 2.2}), "2026-01-01T00:00:06+00:00"),
              at(0.3, record("lmf", 1, {"MAE": 1.8}), "2026-01-01T00:00:07+00:00"),
              at(0.3, record("lmf", 2, {"MAE": 1.9}), "2026-01-01T00:00:08+00:00")):
        append_record(tmp_path, r)
    messages = []
    path, = compare(tmp_path, "tfn", ["lmf"], warn=messages.append, echo=lambda text: None)
    mae = pd.read_csv(path).set_index("metric").loc["MAE"]
    # the plain rows: tfn 1.0/1.2 -> 1.1, lmf 0.8/0.9 -> 0.85
    assert (mae.model_mean, mae.baseline_mean, mae["diff"]) == pytest.approx((1.1, 0.85, 0.25))
    assert (mae.model_n, mae.baseline_n) == (2, 2)
    assert messages == []


def test_compare_prints_a_table_with_the_difference_and_welch_ci(tmp_path, capsys):
    from mmsa_atsuko.cli import main

    for seed, (mae, acc) in enumerate([(0.6, 0.7), (0.7, 0.8)], start=1):
        append_record(tmp_path, record("atsuko", seed, {"MAE": mae, "Has0_acc_2": acc}))
    for seed, mae in enumerate([0.8, 0.9, 1.0], start=1):
        append_record(tmp_path, record("lmf", seed, {"MAE": mae, "Has0_acc_2": 0.6}))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in out if line}
    assert table["metric"] == ["metric", "atsuko", "lmf", "difference", "95% CI", "p"]
    # MAE: atsuko 0.6/0.7 (mean 0.65, var 0.005), lmf 0.8/0.9/1.0 (mean 0.9, var 0.01)
    va, vb = 0.005 / 2, 0.01 / 3
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 1 + vb ** 2 / 2)
    half = stats.t.ppf(0.975, dof) * se
    p = 2 * stats.t.sf(0.25 / se, dof)
    assert table["MAE"] == ["MAE", "0.6500 ± 0.0707", "0.9000 ± 0.1000", "-0.2500",
                            f"[{-0.25 - half:+.4f}, {-0.25 + half:+.4f}]", f"{p:#.3g}"]
    # Has0_acc_2 in %: atsuko 70/80 (var 0.005, sd 7.07 %), lmf 60 constant: the interval is atsuko's alone, df = 1
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.005 / 2) * 100
    assert table["Has0_acc_2"][1:5] == ["75.00 ± 7.07", "60.00 ± 0.00", "+15.00", f"[{15 - half:+.2f}, {15 + half:+.2f}]"]
    assert out[-1] == f"wrote {tmp_path / 'comparison_atsuko_mosi-synthetic.csv'}"


def test_compare_says_when_it_replaces_an_earlier_comparison_of_the_model(tmp_path, capsys):
    """One file per model compared: atsuko against lmf, then against tfn, writes the same name. The second line says
    the earlier file was replaced, which "wrote" hid."""
    from mmsa_atsuko.cli import main

    for model, maes in (("atsuko", (0.6, 0.7)), ("lmf", (0.8, 0.9)), ("tfn", (0.9, 1.0))):
        for seed, mae in enumerate(maes, start=1):
            append_record(tmp_path, record(model, seed, {"MAE": mae, "Has0_acc_2": 0.6}))
    path = tmp_path / "comparison_atsuko_mosi-synthetic.csv"
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {path}"
    assert main(["compare", "-m", "atsuko", "--against", "tfn", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"replaced {path}"
    assert set(pd.read_csv(path)["baseline"]) == {"tfn"}


def test_compare_says_which_side_trained_at_a_preset(tmp_path, capsys):
    """The leaderboard notes rows trained at --preset small; compare's header said nothing, so a comparison of two
    plumbing checks (each model's own small budget) read as one of the models."""
    from mmsa_atsuko.cli import main

    def at(preset, rec):
        rec["preset"] = preset
        return rec
    for seed in (1, 2):
        append_record(tmp_path, at("small", record("atsuko", seed, {"MAE": 0.6 + seed / 10})))
        append_record(tmp_path, at("small", record("lmf", seed, {"MAE": 0.8 + seed / 10})))
        append_record(tmp_path, at(None, record("tfn", seed, {"MAE": 0.9 + seed / 10})))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "tfn", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    heads = [i for i, line in enumerate(out) if line.startswith("atsuko (n=2) vs ")]
    assert [out[i].split(",")[0] for i in heads] == ["atsuko (n=2) vs lmf (n=2)", "atsuko (n=2) vs tfn (n=2)"]
    assert [out[i + 1] for i in heads] == [
        "trained at --preset small in every row (each model's own preset block, not its full config)",
        "trained at --preset small: atsuko; the full config: tfn"]
    df = pd.read_csv(tmp_path / "comparison_atsuko_mosi-synthetic.csv")
    assert set(df[df.baseline == "tfn"].preset_note) == {"trained at --preset small: atsuko; the full config: tfn"}
    for seed in (1, 2):                                # no preset anywhere: no line, as the leaderboard has no note
        append_record(tmp_path, at(None, record("atsuko", seed, {"MAE": 0.6})))
    assert main(["compare", "-m", "atsuko", "--against", "tfn", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    (head,) = [i for i, line in enumerate(out) if line.startswith("atsuko (n=2) vs tfn")]
    assert out[head + 1].split()[0] == "metric"


def test_rows_over_different_seeds_are_noted():
    from mmsa_atsuko.leaderboard import build_tables
    same = [record(m, s, {"MAE": 0.5 + s / 100}) for m in ("tfn", "lmf") for s in (1111, 1112, 1113)]
    (table,) = build_tables(same)
    assert not [n for n in table.notes if "different seeds" in n]
    other = same + [record("mult", s, {"MAE": 0.6}) for s in (1111, 1115)] + [record("misa", 7, {"MAE": 0.6})]
    (table,) = build_tables(other)
    # misa has one seed: it is never compared, so only its own one-seed note names it.
    (note,) = [n for n in table.notes if "different seeds" in n]
    head, _, parts = note.partition(": ")
    assert head == "rows over different seeds"
    order = [r.label for r in table.rows if r.model in ("tfn", "lmf")]
    assert sorted(parts.split("; ")) == sorted([f"{', '.join(order)} on seeds 1111-1113", "mult on seeds 1111 1115"])


def test_a_bad_output_file_or_figures_folder_is_one_line_before_any_table(store, tmp_path, capsys):
    """-o naming a folder, or a file below a file, and --figures at a file were tracebacks (after the tables were
    made); now one line each, exit 2, nothing printed. -o in a folder that does not exist yet creates it."""
    from mmsa_atsuko.cli import main
    (tmp_path / "a file").write_text("")
    for args, says in ((["-o", str(tmp_path)], "is a folder; give the name of the file"),
                       (["-o", str(tmp_path / "a file" / "x.md")], "is a file, not a folder; choose another -o"),
                       (["--by", "missing_rate", "--figures", str(tmp_path / "a file")],
                        "is a file, not a folder; choose another --figures")):
        code = main(["leaderboard", "--results", str(store), *args])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and says in err, (args, err)
    assert main(["leaderboard", "--results", str(store), "-o", str(tmp_path / "new" / "board.md")]) == 0
    assert "| lmf |" in (tmp_path / "new" / "board.md").read_text()


def test_welch_tests_a_row_against_the_best_other_model_under_its_own_condition(tmp_path):
    """lmf's missing-rate row happens to beat every plain row; the plain tfn row was tested against it (a
    comparison of data conditions, not of models). Each row is now tested within its condition."""
    def at(rate, rec):
        rec["condition"] = make_condition(rate).as_dict()
        rec["run_id"] += f"-mr{rate}"
        return rec
    for r in (record("tfn", 1, {"MAE": 1.0}), record("tfn", 2, {"MAE": 1.1}),
              record("lmf", 1, {"MAE": 0.9}), record("lmf", 2, {"MAE": 0.95}),
              at(0.3, record("lmf", 1, {"MAE": 0.5})), at(0.3, record("lmf", 2, {"MAE": 0.55})),
              at(0.3, record("tfn", 1, {"MAE": 1.2})), at(0.3, record("tfn", 2, {"MAE": 1.4}))):
        append_record(tmp_path, r)
    rows = frame(leaderboard(tmp_path, fmt="csv")).set_index("label")
    assert rows.loc["tfn", "ttest_against"] == "lmf"
    assert rows.loc["lmf", "ttest_against"] == "tfn"
    assert rows.loc["tfn [missing_rate=0.3]", "ttest_against"] == "lmf [missing_rate=0.3]"
    assert rows.loc["lmf [missing_rate=0.3]", "ttest_against"] == "tfn [missing_rate=0.3]"
    expected = stats.ttest_ind([1.0, 1.1], [0.9, 0.95], equal_var=False).pvalue
    assert rows.loc["tfn", "ttest_p"] == pytest.approx(expected)
    # The best cell too is the best under the row's condition: the plain lmf row's MAE was not bold.
    lines = {line.split(" | ")[0]: line for line in leaderboard(tmp_path).splitlines() if line.startswith("| ")}
    assert "**0.9250 ± 0.0354**" in lines["| lmf"] and "**0.5250 ± 0.0354**" in lines["| lmf [missing_rate=0.3]"]
    assert "| 1.0500 ± 0.0707 |" in lines["| tfn"] and "| 1.3000 ± 0.1414 |" in lines["| tfn [missing_rate=0.3]"]


def test_compare_files_are_per_model_and_all_checked_before_the_first_is_written(store, tmp_path):
    """`compare` wrote comparison_<dataset>.csv, so comparing a second model replaced the first's file; and a
    folder at the second file's name was a traceback after the first file was written."""
    sims = "synthetic:sims-small-unaligned-seed0-v1"
    for seed, mae in ((1, 0.6), (2, 0.7)):
        append_record(store, record("atsuko", seed, {"MAE": mae}))
        append_record(store, record("atsuko", seed, {"MAE": mae}, dataset="sims", data=sims))
        append_record(store, record("lmf", seed, {"MAE": mae + 0.1}, dataset="sims", data=sims))
    (tmp_path / "comparison_atsuko_sims-synthetic.csv").mkdir()
    with pytest.raises(UsageError, match=r"comparison_atsuko_sims-synthetic.csv is a folder where the toolkit writes "
                                         r"a file; move it away or choose another --results"):
        compare(store, "atsuko", ["lmf"], warn=lambda _: None, echo=lambda _: None)
    assert not (tmp_path / "comparison_atsuko_mosi-synthetic.csv").exists()
    (tmp_path / "comparison_atsuko_sims-synthetic.csv").rmdir()
    mine = compare(store, "atsuko", ["lmf"], warn=lambda _: None, echo=lambda _: None)
    theirs = compare(store, "lmf", ["atsuko"], datasets=["mosi"], warn=lambda _: None, echo=lambda _: None)
    assert [p.name for p in mine] == ["comparison_atsuko_mosi-synthetic.csv", "comparison_atsuko_sims-synthetic.csv"]
    assert [p.name for p in theirs] == ["comparison_lmf_mosi-synthetic.csv"]
    assert all(p.is_file() for p in mine + theirs)


def test_compare_on_a_full_disk_is_one_line_and_writes_no_file(store, tmp_path, monkeypatch):
    """A full disk was an OSError traceback (measured on a full 60 KiB tmpfs), and one at the second file
    left the first written; now one line and no file."""
    import errno
    from pathlib import Path
    from mmsa_atsuko.errors import DataError
    sims = "synthetic:sims-small-unaligned-seed0-v1"
    for seed, mae in ((1, 0.6), (2, 0.7)):
        append_record(store, record("atsuko", seed, {"MAE": mae}))
        append_record(store, record("atsuko", seed, {"MAE": mae}, dataset="sims", data=sims))
        append_record(store, record("lmf", seed, {"MAE": mae + 0.1}, dataset="sims", data=sims))
    before = sorted(p.name for p in tmp_path.iterdir())
    real_write_bytes = Path.write_bytes

    def no_space_on_the_second(self, data):
        if any(".comparison_" in p.name for p in tmp_path.iterdir()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)
    monkeypatch.setattr(Path, "write_bytes", no_space_on_the_second)
    with pytest.raises(DataError) as caught:
        compare(store, "atsuko", ["lmf"], warn=lambda _: None, echo=lambda _: None)
    assert str(caught.value) == (f"results folder {store} could not be written (No space left on device); "
                                 "choose another --results")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_row_whose_seeds_ran_on_several_code_versions_says_so(tmp_path, capsys):
    """A row averaged seeds trained before and after a code change without a word: nothing in a table named
    the code its numbers came from. The commit is cut to 10 digits, `+dirty` kept; no commit, the version."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.leaderboard import build_tables
    one = "a" * 40
    rows = [{**record("tfn", s, {"MAE": 0.5}), "git_commit": one} for s in (1, 2, 3)]
    rows += [{**record("lmf", 1, {"MAE": 0.6}), "git_commit": one},
             {**record("lmf", 2, {"MAE": 0.7}), "git_commit": "b" * 40 + "+dirty"},
             {**record("lmf", 3, {"MAE": 0.8}), "git_commit": None, "package_version": "0.4.0"}]
    (table,) = build_tables(rows)
    assert [n for n in table.notes if "code version" in n] == [
        "seeds on several code versions: lmf (1 on aaaaaaaaaa, 1 on bbbbbbbbbb+dirty, 1 of unknown commit)"]
    (table,) = build_tables(rows[:3])
    assert not [n for n in table.notes if "code versions" in n]
    # A seed of no recorded commit (git refused a second user's checkout) beside one of a commit is of unknown code,
    # not of another version. Before: "seeds on several code versions: lmf (1 on aaaaaaaaaa, 1 on version 0.4.0)".
    (table,) = build_tables(rows[:4] + rows[5:])
    assert [n for n in table.notes if "code version" in n] == [
        "seeds of unknown commit (none recorded; not counted as another code version): lmf (1 of 2)"]
    (table,) = build_tables([{**r, "git_commit": None, "package_version": v} for r, v in zip(rows[3:], "112")])
    assert [n for n in table.notes if "code version" in n] == [
        "seeds on several code versions: lmf (2 on version 1, 1 on version 2)"]       # no commit at all: versions
    for r in rows:
        append_record(tmp_path, r)
    assert main(["leaderboard", "--results", str(tmp_path)]) == 0
    assert "\n- seeds on several code versions: lmf (1 on aaaaaaaaaa, " in capsys.readouterr().out
    assert main(["leaderboard", "--results", str(tmp_path), "--format", "csv", "-o", str(tmp_path / "t.csv")]) == 0
    frame = pd.read_csv(tmp_path / "t.csv")
    assert dict(zip(frame.label, frame.code)) == {"tfn": "aaaaaaaaaa",
                                                  "lmf": "aaaaaaaaaa bbbbbbbbbb+dirty version 0.4.0"}


@pytest.mark.parametrize("p, text", [(0.17, "p=0.170"), (0.484, "p=0.484"), (0.0012, "p=0.00120 †"), (1.0, "p=1.00")])
def test_welch_p_values_show_three_significant_digits_each(p, text):
    """`.3g` dropped trailing zeros: p=0.17 stood beside p=0.484 in one column."""
    from types import SimpleNamespace

    from mmsa_atsuko.leaderboard.cells import welch_text
    from mmsa_atsuko.leaderboard.stats import Cell
    row = SimpleNamespace(test=SimpleNamespace(p=p, t=1.0), against="lmf", cells={"MAE": Cell([0.5, 0.6])})
    assert welch_text(row, "MAE") == f"vs lmf: {text}"


def test_seeds_of_two_versions_of_ones_own_model_file_are_two_code_versions(tmp_path):
    """A model of your own lies outside the checkout, so its commit said nothing of it: seeds trained before and
    after an edit to mymodel.py read as one code version, in the note and the CSV's code column alike."""
    from mmsa_atsuko.leaderboard import build_tables
    folder, commit = "/home/me/models", "c" * 40
    old, new, helper = "1" * 64, "2" * 64, "3" * 64

    def mine(seed, files):
        source = {"path": f"{folder}/mymodel.py", "sha256": files["mymodel.py"], "files": files}
        return {**record("mymodel", seed, {"MAE": 0.5}), "git_commit": commit, "model_source": source}

    rows = [mine(1, {"mymodel.py": old}), mine(2, {"mymodel.py": new}),
            mine(3, {"mymodel.py": new, "zlayers.py": helper})]
    # one file: its own digest; with a helper: the sha256 of every file's path and digest, worked out here
    both = hashlib.sha256(json.dumps({"mymodel.py": new, "zlayers.py": helper}, sort_keys=True).encode()).hexdigest()
    (table,) = build_tables(rows)
    assert [n for n in table.notes if "code versions" in n] == [
        f"seeds on several code versions: mymodel (1 on cccccccccc+mymodel@1111111111, 1 on "
        f"cccccccccc+mymodel@2222222222, 1 on cccccccccc+mymodel@{both[:10]})"]
    # a record from before `files` names its model file alone, and reads as the same code as one with it alone
    legacy = {**rows[1], "seed": 4, "run_id": "legacy",
              "model_source": {"path": f"{folder}/mymodel.py", "sha256": new}}
    (table,) = build_tables([rows[1], legacy])
    assert not [n for n in table.notes if "code versions" in n]
    for r in rows:
        append_record(tmp_path, r)
    df = frame(leaderboard(tmp_path, fmt="csv"))
    assert df.loc[df.model == "mymodel", "code"].item() == " ".join(sorted(
        [f"cccccccccc+mymodel@{d}" for d in ("1111111111", "2222222222", both[:10])]))



def test_a_key_metric_of_one_dataset_in_a_store_of_two_says_how_to_show_that_one(tmp_path, capsys):
    """`--key-metric Has0_acc_2` on a store with MOSI and SIMS runs stopped at SIMS without saying that -d mosi
    is the way to rank MOSI by it."""
    from mmsa_atsuko.cli import main
    for dataset in ("mosi", "sims"):
        for seed in (1, 2):
            append_record(tmp_path, record("tfn", seed, {}, dataset=dataset))
    assert main(["leaderboard", "--results", str(tmp_path), "--key-metric", "Has0_acc_2"]) == 2
    assert capsys.readouterr().err == (f"error: --key-metric Has0_acc_2 is not a metric of sims; choose one of "
                                       f"{', '.join(metric_keys('sims'))}, or show only mosi (-d mosi)\n")
    assert main(["leaderboard", "--results", str(tmp_path), "--key-metric", "Has0_acc_2", "-d", "mosi"]) == 0


def test_every_table_says_how_its_rows_chose_their_best_epoch_and_on_which_seeds(tmp_path):
    """A paper's rows select on MMSA's valid Loss (`valid_loss: mmsa`); a row from before the key (no valid_loss in
    its config) selected on the exact Loss; MIntRec selects on f1. The table, its LaTeX caption, the ablation and
    every CSV row say which, and on which seeds; before, nothing did (seeds only when rows differed)."""
    mmsa = {"key_eval": "Loss", "valid_loss": "mmsa", "use_sbn": True, "use_mcm": True}
    older = {"key_eval": "Loss", "use_sbn": False, "use_mcm": False}          # stored before valid_loss existed
    for seed in (1111, 1112, 1113):
        append_record(tmp_path, record("atsuko", seed, {"MAE": 0.7}, config_hash="c-mmsa", config=mmsa))
        append_record(tmp_path, record("atsuko_base", seed, {"MAE": 0.8}, config_hash="c-old", config=older))
        append_record(tmp_path, record("tfn", seed, {}, dataset="mintrec", config={"key_eval": "f1"},
                                       data="synthetic:mintrec-small-unaligned-seed0-v1"))
    md = leaderboard(tmp_path, fmt="md")
    mosi = md[:md.index("### mintrec")]
    assert ("- best epoch chosen on valid Loss, valid_loss: mmsa (MMSA's rule): atsuko; "
            "valid Loss, valid_loss: exact: atsuko_base") in mosi
    assert "- seeds 1111-1113 in every row" in mosi
    mintrec = md[md.index("### mintrec"):md.index("### Ablation")]
    assert "- best epoch chosen on valid f1 in every row" in mintrec and "- seeds 1111-1113 in every row" in mintrec
    ablation = md[md.index("### Ablation"):]
    assert ("- mosi: best epoch chosen on valid Loss, valid_loss: exact: atsuko_base; "      # Table 4's row order
            "valid Loss, valid_loss: mmsa (MMSA's rule): atsuko") in ablation
    assert "- mosi: seeds 1111-1113 in every row" in ablation
    assert "valid\\_loss: mmsa (MMSA's rule): atsuko; " in leaderboard(tmp_path, fmt="latex")
    df = frame(leaderboard(tmp_path, fmt="csv")).set_index(["table", "model"])
    assert df.loc[("leaderboard", "atsuko"), "model_selection"] == "valid Loss, valid_loss: mmsa (MMSA's rule)"
    assert df.loc[("leaderboard", "atsuko_base"), "model_selection"] == "valid Loss, valid_loss: exact"
    assert df.loc[("ablation", "atsuko_base"), "model_selection"] == "valid Loss, valid_loss: exact"
    assert df.loc[("leaderboard", "tfn"), "model_selection"] == "valid f1"
    assert str(df.loc[("leaderboard", "tfn"), "seeds"]) == "1111 1112 1113"
    # Rows on other seeds keep the note that says which ran on which, and no 'every row' line.
    append_record(tmp_path, record("lmf", 1111, {"MAE": 0.9}, config_hash="c-lmf", config=mmsa))
    append_record(tmp_path, record("lmf", 1115, {"MAE": 0.9}, config_hash="c-lmf", config=mmsa))
    mosi = leaderboard(tmp_path, fmt="md", datasets=["mosi"])
    assert "in every row" not in mosi.split("### Ablation")[0].split("seeds")[-1].split("\n")[0]
    assert "lmf on seeds 1111 1115" in mosi and "seeds 1111-1113 in every row" not in mosi.split("### Ablation")[0]


def test_a_config_hash_and_commit_every_row_shares_are_said_once_under_the_table(tmp_path):
    """The CSV names each row's config hash and code; the Markdown and LaTeX tables named neither, so a printed table
    could not be traced to its config or commit. Said once where every row shares it, and only then."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    for seed in (1111, 1112):
        append_record(tmp_path, record("tfn", seed, {}, config_hash="c0ffee123456") | {"git_commit": commit})
    md, tex = leaderboard(tmp_path, fmt="md"), leaderboard(tmp_path, fmt="latex")
    assert "\n- config hash c0ffee123456 and code 0123456789 in every row\n" in md
    assert " config hash c0ffee123456 and code 0123456789 in every row." in tex
    # A second model's row under its own config: the code is still every row's, the hash no longer.
    for seed in (1111, 1112):
        append_record(tmp_path, record("lmf", seed, {}, config_hash="beef00654321") | {"git_commit": commit})
    md = leaderboard(tmp_path, fmt="md")
    assert "\n- code 0123456789 in every row\n" in md and "config hash" not in md
    # A seed on another commit: no row's code is every seed's (the rows' own note names the mix).
    append_record(tmp_path, record("lmf", 1113, {}, config_hash="beef00654321") | {"git_commit": "f" * 40})
    md = leaderboard(tmp_path, fmt="md")
    assert "code 0123456789 in every row" not in md and "seeds on several code versions: lmf" in md


def test_every_table_says_its_cells_are_test_metrics_of_the_best_valid_epoch(store, tmp_path, capsys):
    """An MMSA user reads these beside run.py's table ("test metrics of the best-valid epoch") and the valid
    numbers in history.json; the leaderboard and compare said only "mean ± sample std over seeds"."""
    from mmsa_atsuko.cli import main
    said = "test metrics of each run's best-valid epoch"
    md = leaderboard(store, fmt="md", datasets=["mosi"])
    titles = [line for line in md.splitlines() if line.startswith("### mosi")]
    assert titles and all("\n\nTest metrics of each run's best-valid epoch, mean ± sample std" in
                          md[md.index(t):] for t in titles)
    assert said in leaderboard(store, fmt="latex", datasets=["mosi"]).lower()
    results = tmp_path / "compared"              # not the store fixture's folder
    for seed, mae in enumerate([0.6, 0.7], start=1):
        append_record(results, record("atsuko", seed, {"MAE": mae}))
        append_record(results, record("lmf", seed, {"MAE": mae + 0.2}))
    assert main(["compare", "-m", "atsuko", "--against", "lmf", "--results", str(results)]) == 0
    assert f"atsuko (n=2) vs lmf (n=2), {said};" in capsys.readouterr().out


def test_every_table_says_which_rows_trained_at_a_preset(tmp_path):
    """The paper's protocol at `--preset small` printed its tables, ablation included, as if of the models' full
    configs: the record's `preset` was in no table. Rows at a preset are now named under the table."""
    for seed in (1111, 1112):
        for model, mae, switch in (("tfn", 0.8, None), ("atsuko", 0.75, True), ("atsuko_base", 0.85, False)):
            config = {"key_eval": "Loss"} | ({} if switch is None else {"use_sbn": switch, "use_mcm": switch})
            append_record(tmp_path, {**record(model, seed, {"MAE": mae}, config_hash=f"c-{model}", config=config),
                                     "preset": "small"})
    md = leaderboard(tmp_path, fmt="md")
    note = "trained at --preset small in every row (each model's own preset block, not its full config)"
    assert f"- {note}" in md[:md.index("### Ablation")] and f"- mosi: {note}" in md[md.index("### Ablation"):]
    # LaTeX prints "--" as an en dash: the option keeps its two hyphens
    assert "trained at -{}-preset small in every row" in leaderboard(tmp_path, fmt="latex")
    for seed in (1111, 1112):            # lmf at its full config, the best MAE: the first row
        append_record(tmp_path, {**record("lmf", seed, {"MAE": 0.7}, config_hash="c-lmf"), "preset": None})
    md = leaderboard(tmp_path, fmt="md", datasets=["mosi"])
    table = md[:md.index("### Ablation")]
    assert "- trained at the full config: lmf; --preset small: atsuko, tfn, atsuko_base" in table, table
    assert "in every row (each model" not in table
    plain = tmp_path / "plain"
    append_record(plain, record("tfn", 1111, {"MAE": 0.8}))               # no preset key: no note
    append_record(plain, record("tfn", 1112, {"MAE": 0.8}))
    assert "preset" not in leaderboard(plain, fmt="md")


def test_a_rounded_zero_prints_without_a_minus():
    """-0.00 claimed a sign the digits do not have (a verify delta of -0.0001, a Corr of -0.00001)."""
    from mmsa_atsuko.leaderboard.cells import number_text, signed_text
    assert number_text("Corr", -0.00001) == "0.0000" and number_text("Has0_acc_2", -0.00004) == "0.00"
    assert signed_text("MAE", -0.00004) == "+0.0000" and signed_text("Mult_acc_3", -0.00004) == "+0.00"
    assert number_text("Corr", -0.0001) == "-0.0001" and signed_text("Mult_acc_3", -0.0001) == "-0.01"


@pytest.mark.parametrize("argv", [["leaderboard"], ["leaderboard", "--by", "missing_rate"],
                                  ["compare", "-m", "tfn", "--against", "lmf"]])
def test_a_results_folder_that_does_not_exist_is_said_so(tmp_path, capsys, argv):
    """`leaderboard --results nonexist` said 'no ok runs in nonexist/runs.jsonl', of a folder that is not there."""
    from mmsa_atsuko.cli import main
    missing = tmp_path / "nonexist"
    assert main([*argv, "--results", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: results folder {missing} does not exist: pass --results DIR, the folder your "
                            f"runs were written to (--out of run.py and sweep)\n") and not captured.out
    assert main(["leaderboard", "--paper", "--results", str(missing)]) == 0       # the published tables need no runs
    assert "Published by the seed paper" in capsys.readouterr().out


def test_mult_acc_3_is_printed_among_the_accuracies_of_a_mosi_table(tmp_path):
    """MOSI's Mult_acc_3 (computed by MMSA, not returned: last in METRIC_KEYS) was printed after Corr."""
    for seed in (1, 2):
        append_record(tmp_path, record("tfn", seed, {"MAE": 0.7}))
    header = next(line for line in leaderboard(tmp_path).splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.split("|")[3:-2]] == [
        "Has0_acc_2 ↑", "Has0_F1_score ↑", "Non0_acc_2 ↑", "Non0_F1_score ↑", "Mult_acc_3 ↑", "Mult_acc_5 ↑",
        "Mult_acc_7 ↑", "MAE ↓", "Corr ↑"]
    board = pd.read_csv(io.StringIO(leaderboard(tmp_path, fmt="csv")))
    means = [c[:-len("_mean")] for c in board.columns if c.endswith("_mean")]
    assert means == ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_3", "Mult_acc_5",
                     "Mult_acc_7", "MAE", "Corr"]


def test_the_csv_ablation_rows_hold_the_has0_halves_the_paper_blocks_print(tmp_path):
    """`leaderboard --paper --format csv`: the Markdown/LaTeX ablation blocks print Acc-2 and F1 as Has0/Non0
    pairs, but the CSV's ablation rows had no Has0_* values (found in a new user's trial)."""
    has0 = {"atsuko_base": (0.61, 0.63), "atsuko": (0.71, 0.75)}
    for model, sbn_mcm in (("atsuko_base", (False, False)), ("atsuko", (True, True))):
        for seed, value in zip((1, 2), has0[model]):
            append_record(tmp_path, record(model, seed, {"Has0_acc_2": value, "Has0_F1_score": value / 2},
                                           aligned=True, config_hash=f"c-{model}",
                                           config={"use_sbn": sbn_mcm[0], "use_mcm": sbn_mcm[1]}))
    md = leaderboard(tmp_path, fmt="md", paper=True)
    section = md[md.index("### Ablation (Table 4 layout)"):]
    assert "| **73.00**/**50.00** ± 2.83/0.00 |" in section and "| 31.00/**50.00** ± 0.71/0.00 |" in section
    ab = frame(leaderboard(tmp_path, fmt="csv", paper=True)).query("table == 'ablation'").set_index("model")
    assert ab.loc["atsuko", "Has0_acc_2_mean"] == pytest.approx(0.73)
    assert ab.loc["atsuko", "Has0_acc_2_std"] == pytest.approx(math.sqrt(0.0008))
    assert ab.loc["atsuko_base", "Has0_F1_score_mean"] == pytest.approx(0.31)
    assert list(ab.Has0_acc_2_best) == [0, 1] and list(ab.Has0_acc_2_n) == [2, 2]
    assert ab.loc["atsuko", "Non0_acc_2_mean"] == pytest.approx(0.5)          # the Non0 halves as before


def test_compare_says_when_the_two_rows_ran_on_different_seeds(tmp_path, capsys):
    """tfn on seeds 1111-1114 against lmf on 1111-1112: compare said nothing of it, while the leaderboard notes
    "rows over different seeds" (found in a new user's trial). Its line and CSV column say it now."""
    from mmsa_atsuko.cli import main
    for seed in (1111, 1112, 1113, 1114):
        append_record(tmp_path, record("tfn", seed, {"MAE": 0.9 + seed / 1e4}))
    for seed in (1111, 1112):
        append_record(tmp_path, record("lmf", seed, {"MAE": 0.8 + seed / 1e4}))
    assert "rows over different seeds: lmf on seeds 1111 1112; tfn on seeds 1111-1114" in leaderboard(tmp_path)
    note = "rows over different seeds: tfn on seeds 1111-1114; lmf on seeds 1111 1112"    # its words, mine first
    assert main(["compare", "-m", "tfn", "--against", "lmf", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("tfn (n=4) vs lmf (n=2)"))
    assert out[head + 1] == note
    df = pd.read_csv(tmp_path / "comparison_tfn_mosi-synthetic.csv")
    assert set(df.seeds_note) == {note}
    for seed in (1113, 1114):                          # the same seeds: no line, as the leaderboard's note
        append_record(tmp_path, record("lmf", seed, {"MAE": 0.8 + seed / 1e4}))
    assert main(["compare", "-m", "tfn", "--against", "lmf", "--results", str(tmp_path)]) == 0
    assert "rows over different seeds" not in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "comparison_tfn_mosi-synthetic.csv").seeds_note.isna().all()


def test_rows_at_the_full_config_with_keys_set_apart_from_it_say_which_once(tmp_path):
    """Runs made with `--max-epochs 1` or `-c learning_rate=...` at the full config (no --preset) sat beside the
    published numbers with no word: the notes named the keys set apart only from a preset. One note per table names
    them, the rows with nothing apart and the rows at a preset (said by the preset notes) not named."""
    from mmsa_atsuko.config import load_config

    def full(model, **changed):
        config = json.loads(json.dumps(dict(load_config(model, "mosi")), default=str))
        config.update(changed, pretrained="synthetic:tiny-bert")       # --synthetic's BERT is not named
        return config

    rows = [record("tfn", 1, {"MAE": 0.7}, config=full("tfn", max_epochs=1)),      # the better MAE, the first row
            record("lmf", 1, {"MAE": 0.9}, config=full("lmf", learning_rate=0.01, max_epochs=1)),
            record("misa", 1, {}, config=full("misa")),
            {**record("mult", 1, {}, config=full("mult", max_epochs=1)), "preset": "small"}]
    for r in rows:
        append_record(tmp_path, r)

    def notes():
        return [line for line in leaderboard(tmp_path, fmt="md").splitlines() if "configs/<model>.yaml" in line]

    # held against the YAML as it reads today (a full-config record keeps no other), and the note says so
    assert notes() == ["- set apart from today's configs/<model>.yaml (each model's full config): max_epochs=1 in "
                       "tfn; learning_rate=0.01, max_epochs=1 in lmf"]
    rows[1]["config"]["learning_rate"] = load_config("lmf", "mosi").learning_rate
    (tmp_path / "runs.jsonl").write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1]) + "\n")
    assert notes() == ["- set apart from today's configs/<model>.yaml (each model's full config): max_epochs=1 in "
                       "every row"]
