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


@pytest.mark.parametrize("name, says", [
    ("a" * 5000, "names no file (it, or a folder name in it, is longer than the system allows)"),
    ("a/" * 3000 + "x", "names no file (it, or a folder name in it, is longer than the system allows)"),
    ("x\0y", "names no file (it holds a NUL byte)"),
])
def test_a_path_that_names_no_file_is_said_so_not_raised(tmp_path, name, says):
    """A path read from a file (a sweep's data_root, a --datasets files: entry) or typed: not_a_file raised
    OSError (ENAMETOOLONG, from Path.is_symlink) or ValueError, and every command stopped in a traceback."""
    from mmsa_atsuko.atomic import not_a_file
    assert not_a_file(tmp_path / name) == says


def test_a_feature_path_too_long_is_one_line(tmp_path, capsys):
    from mmsa_atsuko.cli import main
    assert main(["-m", "tfn", "-d", "mosi", "-s", "1", "--feature-path", str(tmp_path / ("a" * 5000)),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mosi unaligned features names no file (it, or a folder name in it, is longer" \
        in err and not (tmp_path / "out").exists(), err[:300]
