"""mmsa_atsuko.atomic: a file is replaced whole or not at all, and a failed write leaves nothing behind."""
import pickle

import numpy as np
import pytest

from mmsa_atsuko.atomic import replace_with, temp_sibling, write_pickle


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "store.json"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_with(target, half_then_fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["store.json"]
    replace_with(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["store.json"]


def test_temporaries_are_hidden_unique_siblings_unless_named(tmp_path):
    target = tmp_path / "best.pt"
    a, b = temp_sibling(target), temp_sibling(target)
    assert a != b and a.parent == b.parent == tmp_path and a.name.startswith(".best.pt.tmp-")
    seen = []
    replace_with(target, lambda tmp: (seen.append(tmp), tmp.write_bytes(b"x")), tmp=tmp_path / ".best.pt.tmp")
    assert seen == [tmp_path / ".best.pt.tmp"] and target.read_bytes() == b"x"


def test_write_pickle_makes_the_folder_and_round_trips_arrays(tmp_path):
    data = {"train": {"audio": np.arange(12, dtype=np.float32).reshape(3, 4), "id": ["a", "b", "c"]}}
    path = tmp_path / "new" / "folder" / "x.pkl"
    write_pickle(data, path)
    with open(path, "rb") as f:
        back = pickle.load(f)
    assert back["train"]["id"] == ["a", "b", "c"] and np.array_equal(back["train"]["audio"], data["train"]["audio"])
    assert [p.name for p in path.parent.iterdir()] == ["x.pkl"]
