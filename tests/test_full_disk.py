"""A disk that fills while a run writes its folder: torch.save turns the OSError (ENOSPC, or EFBIG under a file
size limit) into a RuntimeError, which was a 50-line traceback. It is one line naming the file and the disk, and
the run is left as any failed run is: its .partial folder, with no half-written file, and no record."""
import errno
import os

import pytest
import torch

from mmsa_atsuko.cli import main


def _full_disk_at(name: str, real_save):
    def save(obj, f, *args, **kwargs):
        if not os.readlink(f"/proc/self/fd/{f.fileno()}").endswith(f"/.{name}.tmp"):    # the file open_new made
            return real_save(obj, f, *args, **kwargs)
        try:      # as torch.save does: its zip writer's OSError, then a RuntimeError while handling it
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 260288 vs 260176")
    return save


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the file torch.save writes by /proc")
def test_a_full_disk_while_saving_best_pt_is_one_line_and_leaves_a_failed_runs_folder(tmp_path, capsys,
                                                                                       monkeypatch):
    monkeypatch.setattr(torch, "save", _full_disk_at("best.pt", torch.save))
    out = tmp_path / "results"
    code = main(["-m", "tfn", "-d", "sims", "--synthetic", "--preset", "small", "--max-epochs", "1", "-s", "1",
                 "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    partial = [p for p in (out / "runs").iterdir() if p.name.endswith(".partial")]
    assert code == 1 and len(partial) == 1, err
    assert err.strip() == (f"error: could not write {partial[0] / 'best.pt'} (No space left on device): free space "
                           f"on the disk mounted at {_mount(tmp_path)}, or train into another --out; the run's "
                           f"folder stays, for --resume to continue")
    assert not (partial[0] / "best.pt").exists() and not (partial[0] / ".best.pt.tmp").exists()
    assert not (out / "runs.jsonl").exists()


def _mount(path):
    path = os.path.abspath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path
