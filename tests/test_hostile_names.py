"""Names and sizes a hostile file declares, as the toolkit turns them into paths and allocations (k15's findings)."""
import json
import os

import pytest

from mmsa_atsuko.cli import main
from mmsa_atsuko.config import CONFIG_DIR, DATASETS_ENV, read_yaml
from mmsa_atsuko.data.synthetic import ensure_synthetic


def cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of `run.py argv` run in process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def tree(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, ds, fs in os.walk(folder) for f in ds + fs)


@pytest.mark.parametrize("name", ["../../../../../../../../../../{victim}/escaped", "a/b", "..", ".hidden", "mine.v2",
                                  "x" * 65])
def test_a_dataset_name_that_is_no_file_name_is_one_line_before_any_folder(capsys, tmp_path, monkeypatch,
                                                                            synthetic_cache, name):
    """A `--datasets` file naming its dataset `../../../x` made the run folder `runs/.tfn-../../../x-s1111-...`: the
    run trained and wrote best.pt, model.json and the predictions outside the results folder, then a traceback."""
    monkeypatch.setenv(DATASETS_ENV, "")          # main() adds the file to it; monkeypatch restores it afterwards
    victim = tmp_path / "victim"
    victim.mkdir()
    name = name.format(victim=str(victim).lstrip("/"))
    mosi = dict(read_yaml(CONFIG_DIR / "datasets.yaml")["datasets"]["mosi"])
    block = {k: mosi[k] for k in ("format", "task", "metrics", "headline", "language", "label_range", "config")}
    pkl, _ = ensure_synthetic("mosi", synthetic_cache)       # a real file: the old code trained on it
    block["files"] = {"unaligned": pkl.name}
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps({"datasets": {name: block}}))      # JSON is YAML
    out = tmp_path / "out"
    code, err = cli(capsys, "-m", "tfn", "-d", name, "--datasets", path, "--data-root", pkl.parent, "-s", "1111",
                    "--max-epochs", "1", "--out", out, "--quiet")
    assert_one_line(code, err, f"dataset file {path}: dataset name", "is not a name")
    assert not out.exists() and tree(victim) == []


def test_the_toolkits_dataset_names_pass_the_check():
    from mmsa_atsuko.config.datasets import DATASET_NAME
    names = read_yaml(CONFIG_DIR / "datasets.yaml")["datasets"]
    assert names and all(DATASET_NAME.fullmatch(name) for name in names)
