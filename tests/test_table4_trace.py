"""Table 4 and compare outputs say what made them: the code, seeds and notes every leaderboard row carries.

Hand-made run records (test_leaderboard.record); every expected text is written out here, not built by the code
under test.
"""
import io

import pandas as pd

from mmsa_atsuko.leaderboard import leaderboard
from mmsa_atsuko.results import append_record
from test_leaderboard import record

FLAGS = {"atsuko_base": (False, False), "atsuko_sbn": (True, False), "atsuko_mcm": (False, True),
         "atsuko": (True, True)}


def _ablation_store(folder, seeds=(1111, 1112), extra=None):
    """The four Atsuko variants on aligned synthetic MOSI, each seed its own commit: seed 1111 on aaaa..., the
    others on bbbb..."""
    for model, (sbn, mcm) in FLAGS.items():
        for seed in seeds:
            rec = record(model, seed, {"MAE": 0.5 + seed / 1e4}, aligned=True, config_hash=f"c-{model}",
                         config={"use_sbn": sbn, "use_mcm": mcm, **(extra or {})})
            rec["git_commit"] = ("a" if seed == 1111 else "b") * 40
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
