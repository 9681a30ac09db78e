"""Hostile checkpoints: best.pt / last.pt files that would hang torch.load(weights_only=True) or
inflate to gigabytes, refused by `safe_checkpoint.load_weights` in one line, in under 1 s and 200 MB
(in a child process, so that a regression fails instead of hanging pytest); and every model's real
state still loads through it.
"""
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import make_dataset, with_text_bert
from hostile_loads import assert_refused_small_and_in_one_line, load_each_in_a_child
from mmsa_atsuko.config import load_config
from mmsa_atsuko.safe_checkpoint import load_weights
from mmsa_atsuko.errors import DataError
from mmsa_atsuko.registry import build_model, list_models
from mmsa_atsuko.training.trainer import build_optimizer
from mmsa_atsuko.training.training_state import save_training_state

ROOT = Path(__file__).resolve().parents[1]
PROTO2, STOP, NONE, MARK, EMPTY_DICT, EMPTY_LIST = b"\x80\x02", b".", b"N", b"(", b"}", b"]"
EMPTY_TUPLE, TUPLE2, SETITEM, REDUCE, APPENDS = b")", b"\x86", b"s", b"R", b"e"


def put(i):
    return b"q" + bytes([i])


def get(i):
    return b"h" + bytes([i])


def shared_tuple(levels):
    """t[i] = (t[i-1], t[i-1]) through the memo, each level left on the stack (torch's unpickler
    has no POP): hashing or printing t[levels] walks 2**levels paths."""
    return EMPTY_TUPLE + put(0) + b"".join(get(i - 1) + get(i - 1) + TUPLE2 + put(i) for i in range(1, levels + 1))


def checkpoint(data_pkl, zeros=0):
    """torch's zip layout around `data_pkl`; with `zeros`, a deflated storage record of that many zero bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        if zeros:
            info = zipfile.ZipInfo("archive/data/0")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as record:
                for start in range(0, zeros, 1 << 24):
                    record.write(bytes(min(1 << 24, zeros - start)))
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


def one_tensor(numel):
    """data.pkl of {'w': a float tensor of `numel` elements in storage record '0'}, as torch.save writes it."""
    def glob(module, name):
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def text(s):
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    return (PROTO2 + EMPTY_DICT + text("w") + glob("torch._utils", "_rebuild_tensor_v2") + MARK + MARK + text("storage")
            + glob("torch", "FloatStorage") + text("0") + text("cpu") + b"J" + struct.pack("<i", numel) + b"t" + b"Q"
            + b"K\x00" + b"J" + struct.pack("<i", numel) + b"\x85" + b"K\x01" + b"\x85" + b"\x89"
            + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + b"t" + REDUCE + SETITEM + STOP)


def duplicate_names():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", PROTO2 + EMPTY_DICT + STOP)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("archive/data.pkl", PROTO2 + shared_tuple(30) + EMPTY_DICT + get(30) + NONE + SETITEM
                             + STOP)
    return out.getvalue()


HOSTILE = {
    # torch's unpickler hashes the key: 2**30 paths (each ran past 10 s in bench/bench_hostile.py)
    "shared_tuple_key": checkpoint(PROTO2 + shared_tuple(30) + EMPTY_DICT + get(30) + NONE + SETITEM + STOP),
    # torch's error for an unknown REDUCE target formats it: a string of 2**40 characters
    "shared_tuple_reduce": checkpoint(PROTO2 + shared_tuple(40) + EMPTY_TUPLE + REDUCE + STOP),
    # 1 GB of zeros in a 1 MB file: torch inflates deflated records, though it never writes one
    "deflated_storage": checkpoint(one_tensor(1 << 28), zeros=1 << 30),
    # a 1 MB data.pkl of empty sets: 216 bytes each, and seconds of opcodes
    "empty_sets": checkpoint(PROTO2 + EMPTY_LIST + MARK + b"\x8f" * 1_000_000 + APPENDS + STOP),
    # zipfile and torch's reader might each pick another of two records of one name
    "duplicate_names": None,
    "not_a_zip": os.urandom(4096),
}
EXPECTED = {
    "shared_tuple_key": "a dict key or set element (tuple) that holds more than",
    "shared_tuple_reduce": "a call of a tuple of 2 items",
    "deflated_storage": "holds compressed records, which torch.save never writes",
    "empty_sets": "opcodes that build more than",
    "duplicate_names": "names a record twice",
    "not_a_zip": "is not a zip archive as torch.save writes",
}

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-checkpoints")
    paths = []
    for name, blob in HOSTILE.items():
        paths.append(folder / f"{name}.pt")
        paths[-1].write_bytes(duplicate_names() if blob is None else blob)
    return load_each_in_a_child("mmsa_atsuko.safe_checkpoint.load_weights", paths)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_checkpoint_is_refused_small_and_in_one_line(results, name):
    assert_refused_small_and_in_one_line(results, name, f"{name}.pt", EXPECTED[name])


@pytest.mark.parametrize("name", list_models())
def test_every_models_weights_and_optimizer_state_load(name, tmp_path, tiny_bert):
    """What best.pt and last.pt hold for each model, after a training step (optimizer state with
    int keys, BatchNorm counters, calibrated buffers), passes the checks and loads unchanged."""
    data = with_text_bert(make_dataset())
    config = load_config(name, data.spec.name, preset="small", overrides=[("pretrained", tiny_bert)])
    model = build_model(name, config, data.spec)
    if hasattr(model, "on_fit_start"):
        model.on_fit_start(data.train)
    optimizer = build_optimizer(model, config)
    batch = data.train.batch(torch.arange(8))
    model.train().loss(model(batch), batch)["total"].backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1}
    torch.save(state, tmp_path / "last.pt")
    loaded = load_weights(tmp_path / "last.pt")
    assert loaded["model"].keys() == state["model"].keys()
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]


def test_predict_with_a_bad_best_pt_is_one_line(tmp_path):
    """`run.py predict --checkpoint` loaded best.pt with bare torch.load: garbage was a traceback."""
    import mmsa_atsuko
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # The run predict reads is trained in process (a run.py process for it was seconds of imports); predict, fed
    # the hostile files, runs in a process of its own.
    mmsa_atsuko.run("tfn", "mosi", seeds=[1], synthetic=True, preset="small", max_epochs=1, out=out, quiet=True)
    record = json.loads((out / "runs.jsonl").read_text().splitlines()[0])
    run_dir = out / record["run_dir"]
    for content in (os.urandom(4096), HOSTILE["shared_tuple_key"]):
        (run_dir / "best.pt").write_bytes(content)
        done = subprocess.run([sys.executable, "run.py", "predict", "--checkpoint", str(run_dir), "--features",
                               record["data_path"], "--out", str(tmp_path / "pred")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and "best.pt" in done.stderr, done.stderr


def test_a_large_models_last_pt_passes_the_checks(tmp_path):
    """last.pt of a model with 1,000 parameter tensors (BERT-large with its heads has about 400):
    the weights, AdamW's two moments per tensor keyed by int, and a best copy, all as the trainer
    saves them. The checks' budgets scale with data.pkl, which is dense with small calls."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(500)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    best = {k: v.clone() for k, v in model.state_dict().items()}
    save_training_state(tmp_path / "last.pt", model, optimizer, None, torch.Generator(), torch.device("cpu"),
                        epoch=3, history=[], best=(0.5, 2, best, {"MAE": 0.5}))
    loaded = load_weights(tmp_path / "last.pt")
    assert len(loaded["optimizer"]["state"]) == 1000 and sorted(loaded["optimizer"]["state"]) == list(range(1000))
    assert all(torch.equal(loaded["best"]["model"][k], v) for k, v in best.items())
    assert all(torch.equal(loaded["optimizer"]["state"][i]["exp_avg"], optimizer.state[p]["exp_avg"])
               for i, p in enumerate(model.parameters()))


def test_int_keys_are_free_only_below_the_hash_modulus(tmp_path):
    """Ints below sys.hash_info.modulus hash to themselves (never collide); 1,001 ints that are
    multiples of it all hash alike, and stay refused as before."""
    small = tmp_path / "small.pt"
    small.write_bytes(checkpoint(PROTO2 + EMPTY_DICT + b"".join(
        b"J" + struct.pack("<i", k) + NONE + SETITEM for k in range(5000)) + STOP))
    assert sorted(load_weights(small)) == list(range(5000))
    colliding = tmp_path / "colliding.pt"
    modulus = sys.hash_info.modulus
    colliding.write_bytes(checkpoint(PROTO2 + EMPTY_DICT + b"".join(
        b"\x8a\x09" + (k * modulus).to_bytes(9, "little", signed=True) + NONE + SETITEM for k in range(1, 1002))
        + STOP))
    with pytest.raises(DataError, match="more than 1000 dict keys or set elements other than strings"):
        load_weights(colliding)


def test_the_checked_bytes_are_the_bytes_loaded(tmp_path, monkeypatch):
    """load_weights checked best.pt, then torch.load opened the path again: a file renamed over it in between
    was loaded unchecked (a red team's swap hung predict in 3 of 14 tries). The file is read once now; here
    another checkpoint is renamed over the path right after the check, and the checked one must be loaded."""
    from mmsa_atsuko import safe_checkpoint
    path, other = tmp_path / "best.pt", tmp_path / "other.pt"
    torch.save({"w": torch.zeros(3)}, path)
    torch.save({"w": torch.ones(3)}, other)
    checked = safe_checkpoint.safe_pickle.run

    def check_then_swap(*args, **kwargs):
        out = checked(*args, **kwargs)
        os.replace(other, path)
        return out

    monkeypatch.setattr(safe_checkpoint.safe_pickle, "run", check_then_swap)
    loaded = load_weights(path)
    assert not other.exists()                       # the swap happened, after the check
    assert torch.equal(loaded["w"], torch.zeros(3))


class _TwoSubnets(torch.nn.Module):
    """Self-MM's shape of the problem: two named groups of equal size (its audio and video subnets)."""

    def __init__(self, order):
        super().__init__()
        self.order = order
        self.audio, self.video = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    def param_groups(self, config):
        return [{"name": name, "params": list(getattr(self, name).parameters()), "lr": lr}
                for name, lr in zip(self.order, (1e-3, 5e-3))]


def test_resume_refuses_a_last_pt_whose_optimizer_groups_are_in_another_order(tmp_path):
    """--resume matched optimizer groups by position and compared only the kind of their other keys: groups of equal
    size saved as (audio, video) and built by newer code as (video, audio) loaded audio's Adam moments and lr onto
    video's parameters without a word."""
    from types import SimpleNamespace

    from mmsa_atsuko.errors import StateNotResumable
    from mmsa_atsuko.training.training_state import load_training_state

    config, cpu = SimpleNamespace(learning_rate=1e-3, weight_decay=0.0), torch.device("cpu")
    torch.manual_seed(0)
    saved = _TwoSubnets(("audio", "video"))
    optimizer = build_optimizer(saved, config)
    (saved.audio(torch.randn(4, 2)).sum() + saved.video(torch.randn(4, 2)).sum()).backward()
    optimizer.step()
    save_training_state(tmp_path / "last.pt", saved, optimizer, None, torch.Generator(), cpu, epoch=1,
                        history=[{"epoch": 1}], best=(0.5, 1, None, {"MAE": 0.5}))

    def resume(order):
        model = _TwoSubnets(order)
        return load_training_state(tmp_path / "last.pt", model, build_optimizer(model, config), None,
                                   torch.Generator(), cpu)

    assert resume(("audio", "video"))[0] == 1           # the same order resumes
    with pytest.raises(StateNotResumable) as refused:
        resume(("video", "audio"))
    assert str(refused.value) == (f"{tmp_path / 'last.pt'} is not a training state this toolkit wrote (its optimizer "
                                  f"group 1 is not the run's group 'video': the groups are in another order or named "
                                  f"otherwise); remove the run's folder or run without --resume")
