"""How long a checkpoint and a BERT folder take to load, and the peak memory: one case per process.

    python bench/bench_bert_load.py [--repeats 5]          # the checkout this script is in
    PYTHONPATH=/path/to/other/checkout python bench/bench_bert_load.py --code-from-path

Cases, on files written once to a temporary folder (bert-base's sizes, random weights, 438 MB):
- best.pt: a small model's state dict (50 Linear(64, 64), 862 KB) through `safe_checkpoint.load_weights`;
- bert_best.pt: bert-base's state dict as a torch.save file, through `load_weights`;
- bert .bin / bert .safetensors: a folder of config.json and the weights, through `BertTextEncoder`
  (what a run, predict and MIntRec's text features build), once to import transformers, then timed.
Each case runs in a fresh child: the peak RSS it prints is that case's (ru_maxrss), imports included.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, statistics, sys, time
what, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "weights":
    from mmsa_atsuko.safe_checkpoint import load_weights as load
else:
    from mmsa_atsuko.models.common.bert import BertTextEncoder
    def load(folder):
        return BertTextEncoder(folder, use_finetune=False)
    load(path)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    loaded = load(path)
    times.append(time.perf_counter() - start)
    del loaded
import mmsa_atsuko
print(f"median {statistics.median(times):.3f} s, min {min(times):.3f} s of {repeats}; "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB ({mmsa_atsuko.__file__})")
"""


WRITE = r"""
import shutil, sys, torch
from pathlib import Path
from safetensors.torch import save_file
from transformers import BertConfig, BertModel
folder = Path(sys.argv[1])
torch.manual_seed(0)
small = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(50)])
torch.save(small.state_dict(), folder / "best.pt")
config = BertConfig()
state = BertModel(config).state_dict()
torch.save(state, folder / "bert_best.pt")
for kind in ("bin", "safetensors"):
    (folder / kind).mkdir()
    config.to_json_file(folder / kind / "config.json")
shutil.copy(folder / "bert_best.pt", folder / "bin" / "pytorch_model.bin")
save_file({k: v.contiguous() for k, v in state.items()}, folder / "safetensors" / "model.safetensors")
"""


def write_files(folder: Path) -> dict:
    """The files, written by a child: a parent's peak RSS would carry over into the children it starts."""
    subprocess.run([sys.executable, "-c", WRITE, str(folder)], check=True)
    return {"best.pt": ("weights", folder / "best.pt"), "bert_best.pt": ("weights", folder / "bert_best.pt"),
            "bert .bin": ("bert", folder / "bin"), "bert .safetensors": ("bert", folder / "safetensors")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--code-from-path", action="store_true", help="import mmsa_atsuko from $PYTHONPATH")
    args = p.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if not args.code_from_path:
        env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (what, path) in write_files(Path(tmp)).items():
            # cwd: a child run with -c imports from its working folder before $PYTHONPATH
            done = subprocess.run([sys.executable, "-c", CHILD, what, str(path), str(args.repeats)], env=env,
                                  capture_output=True, text=True, cwd=tmp)
            print(f"{name:18} {done.stdout.strip() or done.stderr.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
