"""The CUDA-only branches, run on the CPU with torch.cuda's answers made up (no GPU needed): what a GPU run would
hit in the random streams of a resumed run, the checks made before a run starts, and the device a run's CUDA
calls go to."""
from types import SimpleNamespace

import pytest
import torch

from mmsa_atsuko.training.trainer import build_optimizer
from mmsa_atsuko.training.training_state import load_training_state, save_training_state


def _fake_cuda_streams(monkeypatch) -> tuple[dict, dict]:
    """Two GPUs' random streams (cuda:0 holds 10s, cuda:1 11s) behind torch.cuda's getters and setters, the old
    every-GPU ones included; returns (the streams, what was restored onto which GPU index)."""
    streams = {0: torch.full((16,), 10, dtype=torch.uint8), 1: torch.full((16,), 11, dtype=torch.uint8)}
    restored = {}

    def index(device) -> int:
        return torch.device(device).index if not isinstance(device, int) else device

    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": streams[index(device)].clone())
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [streams[0].clone(), streams[1].clone()])
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": restored.__setitem__(index(device), state.clone()))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: restored.update({i: s.clone() for i, s in enumerate(states)}))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return streams, restored


def _saved_state(path, device: torch.device):
    config = SimpleNamespace(learning_rate=1e-3, weight_decay=0.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(model, config)
    save_training_state(path, model, optimizer, None, torch.Generator(), device, epoch=1, history=[{"epoch": 1}],
                        best=(0.5, 1, None, {"MAE": 0.5}))
    return lambda on: load_training_state(path, model, build_optimizer(model, config), None, torch.Generator(), on)


def test_a_run_resumed_on_another_gpu_continues_its_own_gpus_random_stream(tmp_path, monkeypatch):
    """A sweep's workers take devices round-robin, so a run that trained its first epoch on cuda:1 may resume on
    cuda:0. last.pt held every GPU's stream (get_rng_state_all), restored by position: cuda:0 got its own unused
    stream back (10s), so the resumed run's dropout drew other numbers than the uninterrupted run's."""
    streams, restored = _fake_cuda_streams(monkeypatch)
    resume = _saved_state(tmp_path / "last.pt", torch.device("cuda:1"))
    assert resume(torch.device("cuda:0"))[0] == 1
    assert list(restored) == [0] and torch.equal(restored[0], streams[1])


def test_a_cuda_runs_state_resumed_on_the_cpu_sets_no_gpu_stream(tmp_path, monkeypatch):
    _, restored = _fake_cuda_streams(monkeypatch)
    resume = _saved_state(tmp_path / "last.pt", torch.device("cuda:0"))
    assert resume(torch.device("cpu"))[0] == 1
    assert restored == {}
