"""What a real last.pt costs the checkpoint check (safe_checkpoint.py), per storage record.

    python bench/checkpoint_budget.py [--params 20 800 4000]

For each count, a stack of Linear(2, 2) layers with that many parameter tensors takes one AdamW
step and is saved by the trainer's own `save_training_state` (weights, the optimizer's two moments
and step per tensor, a best copy). The file's data.pkl then runs through the restricted unpickler
with unlimited budgets, to read the work and object bytes it spends, and through `load_weights`
as the toolkit calls it, timed. The per-storage figures set WORK_PER_STORAGE and
OBJECT_BYTES_PER_STORAGE.
"""
import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmsa_atsuko import safe_checkpoint  # noqa: E402
from mmsa_atsuko.training.training_state import save_training_state  # noqa: E402


def last_pt(params: int, folder: Path) -> Path:
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(params // 2)])
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 2)).sum().backward()
    optimizer.step()
    best = {k: v.clone() for k, v in model.state_dict().items()}
    path = folder / f"last-{params}.pt"
    save_training_state(path, model, optimizer, None, torch.Generator(), torch.device("cpu"), epoch=3,
                        history=[{"epoch": i, "valid": {"MAE": 0.5}} for i in range(3)],
                        best=(0.5, 2, best, {"MAE": 0.5}))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=int, nargs="+", default=[20, 800, 4000])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for params in args.params:
            path = last_pt(params, Path(folder))
            data, storages = safe_checkpoint._data_pkl(safe_checkpoint.read_checkpoint(path), path)
            unpickler = safe_checkpoint._CheckpointUnpickler(data, 0)
            unpickler.work_left = unpickler.object_bytes_left = start = 1 << 60
            unpickler.load()
            work, objects = start - unpickler.work_left, start - unpickler.object_bytes_left
            clock = time.perf_counter()
            safe_checkpoint.load_weights(path)
            seconds = time.perf_counter() - clock
            records = len(zipfile.ZipFile(path).infolist())
            print(f"{params} parameters: {path.stat().st_size} bytes, data.pkl {len(data)}, {storages} storages "
                  f"({records} records); work {work} ({work / storages:.1f} per storage), objects {objects} "
                  f"({objects / storages:.0f} B per storage); load_weights {seconds:.2f} s")


if __name__ == "__main__":
    main()
