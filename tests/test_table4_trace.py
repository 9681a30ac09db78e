"""Table 4 and compare outputs say what made them: the code, seeds and notes every leaderboard row carries.

Hand-made run records (test_leaderboard.record); every expected text is written out here, not built by the code
under test.
"""
import io

import pandas as pd
import pytest

from mmsa_atsuko.leaderboard import leaderboard
from mmsa_atsuko.results import append_record
from test_leaderboard import record

FLAGS = {"atsuko_base": (False, False), "atsuko_sbn": (True, False), "atsuko_mcm": (False, True),
         "atsuko": (True, True)}


def _ablation_store(folder, seeds=(1111, 1112), extra=None, preset=None, one_seed=()):
    """The four Atsuko variants on aligned synthetic MOSI, each seed its own commit: seed 1111 on aaaa..., the
    others on bbbb...; the models of `one_seed` on the first seed alone."""
    for model, (sbn, mcm) in FLAGS.items():
        for seed in seeds[:1] if model in one_seed else seeds:
            rec = record(model, seed, {"MAE": 0.5 + seed / 1e4}, aligned=True, config_hash=f"c-{model}",
                         config={"use_sbn": sbn, "use_mcm": mcm, **(extra or {})})
            rec["git_commit"] = ("a" if seed == 1111 else "b") * 40
            rec["preset"] = preset
            append_record(folder, rec)


def test_ablation_csv_rows_carry_the_code_and_run_label_of_their_leaderboard_rows(tmp_path):
    """The 4 table=ablation lines had an empty `code` column while the leaderboard lines named their commits."""
    _ablation_store(tmp_path)
    df = pd.read_csv(io.StringIO(leaderboard(tmp_path, fmt="csv")), keep_default_na=False)
    ab = df[df.table == "ablation"]
    assert len(ab) == 4
    assert set(ab.code) == {"aaaaaaaaaa bbbbbbbbbb"}
    board = df[df.table == "leaderboard"].set_index("model")
    for _, row in ab.iterrows():
        assert row.code == board.loc[row.model, "code"]
        assert row.run_label == board.loc[row.model, "run_label"] == ""


def _caption(latex: str, starts: str) -> str:
    return next(line for line in latex.splitlines() if line.startswith(r"\caption{" + starts))


def test_the_ablation_latex_caption_says_what_the_markdown_block_says(tmp_path):
    """The caption was only `Ablation, aligned, synthetic data.`: no data id, preset, one-seed, selection or seeds
    note, and without --paper nothing said its Acc2/F1 columns are Non0."""
    _ablation_store(tmp_path, extra={"key_eval": "Loss"}, preset="small", one_seed=("atsuko_mcm",))
    plain = _caption(leaderboard(tmp_path, fmt="latex"), "Ablation")
    assert plain == (
        r"\caption{Ablation (Table 4 layout), aligned: synthetic data (mosi: synthetic:mosi-small-unaligned-seed0-v1). "
        r"Acc2/F1 on MOSI/MOSEI are Non0 (EMOE's convention); test metrics of each run's best-valid epoch, "
        r"mean $\pm$ sample std over seeds; bold: best. "
        r"mosi: atsuko\_mcm: one seed (n=1), so never bold and not Welch-tested. "
        r"mosi: best epoch chosen on valid Loss, valid\_loss: exact in every row. "
        r"mosi: trained at -{}-preset small in every row (each model's own preset block, not its full config).}")
    paper = _caption(leaderboard(tmp_path, fmt="latex", paper=True), "Ablation")
    assert "Acc2/F1 on MOSI/MOSEI as Has0/Non0 pairs; " in paper
    md = leaderboard(tmp_path, fmt="md")
    md_notes = [part[2:].strip() for part in md[md.index("### Ablation"):].split("\n\n") if part.startswith("- ")]
    assert len(md_notes) == 3 and all(f" {note.replace('_', chr(92) + '_')}." in plain.replace("-{}-", "--")
                                      for note in md_notes)


def test_the_stress_table_names_each_recipe_version_and_never_mixes_two(tmp_path):
    """bench/atsuko_stress_table.py labelled its row plain `corrupt` and averaged corrupt s1 and s2 records together:
    the doc's small-size row (s1, RHO 0.5) could not be told from today's command's (s2, RHO 0.9)."""
    from test_mean_std import _bench
    data = {"s1": "synthetic:corrupt-s1-mosi-small-unaligned-seed0-v2",
            "s2": "synthetic:corrupt-s2-mosi-small-unaligned-seed0-v2"}
    maes = {("s1", "atsuko"): (0.8, 0.9), ("s1", "atsuko_base"): (0.9, 1.0),
            ("s2", "atsuko"): (0.5, 0.7), ("s2", "atsuko_base"): (0.6, 0.6)}
    for (version, model), values in maes.items():
        for seed, mae in zip((1111, 1112), values):
            append_record(tmp_path, record(model, seed, {"MAE": mae}, data=data[version], config_hash=f"c-{model}"))
    lines = _bench("atsuko_stress_table").table(tmp_path).splitlines()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:3] for line in lines[2:]}
    assert list(rows) == ["corrupt (s1)", "corrupt (s2)", "bands (s1)", "redundant (s1)", "standard"]
    # s1: atsuko 0.8, 0.9 -> 0.85 ± sqrt(0.005) = 0.0707; base 0.9, 1.0 -> 0.95 ± 0.0707
    assert rows["corrupt (s1)"] == ["0.8500 ± 0.0707 (n=2)", "0.9500 ± 0.0707 (n=2)"]
    # s2: atsuko 0.5, 0.7 -> 0.6 ± sqrt(0.02) = 0.1414; base 0.6, 0.6 -> 0.6 ± 0
    assert rows["corrupt (s2)"] == ["0.6000 ± 0.1414 (n=2)", "0.6000 ± 0.0000 (n=2)"]
    assert rows["standard"] == ["–", "–"]


# The atsuko rows' text: as their runs recorded it, a preset that gave 20 then (today's configs/atsuko.yaml gives 15,
# which a table of them must not print), or, for records from before the field, held against today's YAML.
CAPPED_THEN = {"max_epochs": {"value": 12, "preset": 20}}
RECORDED = {"atsuko": CAPPED_THEN, "atsuko_base": CAPPED_THEN, "tfn": {}}
CAPPED_TEXT = {True: "max_epochs=12 (--preset small: 20)", False: "max_epochs=12 (today's --preset small: 15)"}


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "before-the-field"])
def test_leaderboard_ablation_and_compare_name_a_sweep_files_max_epochs_over_the_preset(tmp_path, capsys, recorded):
    """configs/sweeps/atsuko_stress.yaml sets max_epochs: 12 over the small preset's 15 (configs/atsuko.yaml; tfn's
    is 4): the records hold 12, and no table or comparison said so. The preset's value is the one the run recorded
    (`trainer_overrides`): held against today's YAML, a preset edited after the run changed what the tables said of
    it; a record from before the field is still held against today's YAML, and the text says so."""
    from mmsa_atsuko.cli import main
    from mmsa_atsuko.training.trainer_config import resolve_config
    capped = {"atsuko": 12, "atsuko_base": 12, "tfn": None}          # None: the preset's own max_epochs
    for model, max_epochs in capped.items():
        config = dict(resolve_config(model, "mosi", preset="small", max_epochs=max_epochs))
        for seed, mae in ((1111, 0.6), (1112, 0.7)):
            append_record(tmp_path, {**record(model, seed, {"MAE": mae + len(model) / 100}, config=config,
                                              config_hash=f"c-{model}"), "preset": "small",
                                     **({"trainer_overrides": RECORDED[model]} if recorded else {})})
    assert (config["max_epochs"], config["learning_rate"]) == (4, 1e-3)    # tfn at its preset
    capped_text = CAPPED_TEXT[recorded]
    md = leaderboard(tmp_path, fmt="md")
    board, ablation = md[:md.index("### Ablation")], md[md.index("### Ablation"):]
    # rows by MAE: tfn (0.68), atsuko (0.71), atsuko_base (0.76)
    assert f"\n- trainer keys set apart from the preset: {capped_text} in atsuko, atsuko_base\n" in board
    assert f"\n- mosi: trainer keys set apart from the preset: {capped_text} in every row" in ablation
    assert f"{capped_text} in every row".replace("--", "-{}-").replace("_", r"\_") in leaderboard(tmp_path, fmt="latex")
    assert main(["compare", "-m", "atsuko", "--against", "tfn", "atsuko_base", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    notes = {line.split(" vs ")[1].split(" ")[0]: out[i + 2] for i, line in enumerate(out)
             if line.startswith("atsuko (n=2) vs ")}
    assert notes == {"tfn": f"trainer keys set apart from the preset: {capped_text} in atsuko",
                     "atsuko_base": f"trainer keys set apart from the preset: {capped_text} in every row"}
    df = pd.read_csv(tmp_path / "comparison_atsuko_mosi-synthetic.csv")
    assert list(df.columns[list(df.columns).index("preset_note"):][:2]) == ["preset_note", "trainer_note"]
    assert set(df[df.baseline == "tfn"].trainer_note) == {notes["tfn"]}
    csv = pd.read_csv(io.StringIO(leaderboard(tmp_path, fmt="csv")), keep_default_na=False)
    assert dict(zip(csv.table + " " + csv.model, csv.trainer_overrides)) == {
        "leaderboard tfn": "", "leaderboard atsuko": capped_text, "leaderboard atsuko_base": capped_text,
        "ablation atsuko_base": capped_text, "ablation atsuko": capped_text}


def test_the_compare_csv_names_each_sides_code_and_seeds(tmp_path):
    """The compare CSV had data and config hashes but no code or seeds: which runs, on which commit, made a
    difference could not be found again."""
    from mmsa_atsuko.leaderboard import compare
    for model, seeds, commit in (("atsuko", (1111, 1112, 1113), "c" * 40), ("tfn", (1112, 1111), "d" * 40 + "+dirty")):
        for seed in seeds:
            rec = record(model, seed, {"MAE": 0.5 + seed / 1e4}, config_hash=f"c-{model}")
            rec["git_commit"] = commit if seed != 1113 else "e" * 40
            append_record(tmp_path, rec)
    compare(tmp_path, "atsuko", ["tfn"], warn=lambda line: None, echo=lambda line: None)
    df = pd.read_csv(tmp_path / "comparison_atsuko_mosi-synthetic.csv", keep_default_na=False, dtype=str)
    assert set(zip(df.model_code, df.model_seeds, df.baseline_code, df.baseline_seeds)) == {
        ("cccccccccc eeeeeeeeee", "1111 1112 1113", "dddddddddd+dirty", "1111 1112")}
    columns = list(df.columns)
    assert columns[columns.index("model_config_hash") + 1:][:2] == ["model_code", "model_seeds"]
    assert columns[columns.index("baseline_config_hash") + 1:][:2] == ["baseline_code", "baseline_seeds"]
    assert not [c for c in columns if "run_id" in c]
