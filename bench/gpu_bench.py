"""Issue 17's GPU figures in one process, as ratios against a peer measured in the same run.

    python bench/gpu_bench.py                        # a lent GPU: about 4 minutes (see bench/README.md)
    python bench/gpu_bench.py --device cpu --tiny    # the plumbing only, on a CPU

Data: synthetic MOSI, unaligned, full size (500 vision / 375 audio frames); atsuko at its full
config with `use_bert=true` on a BERT-base-size encoder with random weights (transformers'
BertConfig() defaults, written once to <out>/bert-base-random). `--tiny`: small synthetic data, the
small preset and the synthetic one-layer BERT, two seeds, for checking the script on a CPU.

1. step     atsuko's training step (forward + loss + backward + clip + Adam, as the trainer does
            them) against the floor: the bare encoder's forward + backward + Adam on the same
            batches. Also bf16 autocast against fp32, and non-deterministic against deterministic
            kernels. Each figure is the median of alternating blocks of steps, one sync per block.
            `--compile MODE` adds the same step through torch.compile(model, mode=MODE) (the
            issue's "only where a measurement shows they pay"; the trainer never compiles), with
            the compilation's own time printed apart.
2. seeds    wall time of N seeds of atsuko (`--epochs` each) one after another in this process
            (`run`, jobs 1) against `--jobs auto` (the sweep's local backend); the average GPU
            utilisation over each (NVML through nvidia-ml-py, else nvidia-smi); steps/s and peak
            memory from the records.
3. repeat   per model, two runs with one seed and deterministic kernels (the default): identical
            test predictions or not. atsuko's pairs are the sequential and packed runs of 2.

The issue's targets are printed beside each figure. Nothing here is part of the tests.
`--sections` runs some of the three (e.g. `--sections step --compile reduce-overhead` on a second
call of a lease), and RESULTS then has the lines those sections give.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gpu_determinism import _predictions  # noqa: E402  (bench/ is the script's folder)


class Utilisation:
    """Average GPU utilisation (%) while the block runs, sampled every 0.2 s: NVML (nvidia-ml-py),
    else nvidia-smi, else not measured (None)."""

    def __init__(self, device):
        self.index = _nvml_index(device) if device.type == "cuda" else None
        self.samples, self.stop = [], threading.Event()
        self.read = self._reader() if self.index is not None else None

    def _reader(self):
        try:
            import pynvml  # optional: nvidia-ml-py
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            return lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception:
            pass
        if shutil.which("nvidia-smi"):
            def smi():
                out = subprocess.run(["nvidia-smi", "-i", str(self.index), "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            return smi
        return None

    def __enter__(self):
        if self.read is not None:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.2):
            try:
                self.samples.append(self.read())
            except Exception:
                return

    def __exit__(self, *exc):
        self.stop.set()
        if self.read is not None:
            self.thread.join()

    @property
    def mean(self):
        return statistics.mean(self.samples) if self.samples else None


def _nvml_index(device) -> int:
    """NVML's and nvidia-smi's number of a CUDA device. CUDA numbers only the GPUs CUDA_VISIBLE_DEVICES shows, NVML
    every GPU: under CUDA_VISIBLE_DEVICES=3, cuda:0 is NVML's GPU 3, and reading GPU 0 averaged another GPU's
    utilisation (an idle one, or another user's). torch maps the two (`torch.cuda.utilization` asks NVML so)."""
    import torch
    try:
        return torch.cuda._get_nvml_device_index(device)
    except Exception:            # a GPU list it cannot map: CUDA's number, as before
        return device.index or 0


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def setup(args):
    """(overrides, preset, size, BERT folder) of the runs; writes the data and the random BERT once."""
    from mmsa_atsuko.cache import synthetic_bert_folder, synthetic_bert_name, synthetic_cache_dir
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    size, preset = ("small", "small") if args.tiny else ("full", None)
    _, tiny_bert = ensure_synthetic("mosi", synthetic_cache_dir(), size=size, aligned=False)
    if args.tiny:
        bert = synthetic_bert_name(tiny_bert)
        folder = synthetic_bert_folder(bert)
    else:
        from transformers import BertConfig, BertModel
        folder = Path(args.out) / "bert-base-random"
        if not (folder / "config.json").is_file():
            import torch
            torch.manual_seed(0)
            BertModel(BertConfig()).save_pretrained(folder)
        bert = str(folder)
    return [("use_bert", True), ("pretrained", bert)], preset, size, folder


def _blocks(fns: dict, steps: int, rounds: int, sync) -> dict:
    """Median seconds per step of each fn(n) over `rounds` alternating blocks of `steps` steps."""
    times = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in (fns.items() if r % 2 == 0 else reversed(fns.items())):
            sync()
            t0 = time.perf_counter()
            fn(steps)
            sync()
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(v) for name, v in times.items()}


def bench_step(args, device, overrides, preset, size, bert_folder) -> dict:
    import torch
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    from mmsa_atsuko.api.jobs import prepare_job
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.hardware import autocast
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer, clip_and_step
    from profile_step import dispatched_ops           # a sibling script: bench/ is on sys.path

    job = prepare_job("atsuko", "mosi", aligned=False, data_root=None, feature_path=None, synthetic=True,
                      synthetic_size=size, preset=preset, overrides=overrides, max_epochs=None, loaded={})
    config = job.config
    train = job.data.train.to(device)
    set_seed(1111)
    model = build_model("atsuko", config, job.data.spec).to(device)
    model.on_fit_start(train)
    model.train()
    optimizer = build_optimizer(model, config)
    batches = [train.batch(torch.arange(i * config.batch_size, (i + 1) * config.batch_size) % len(train))
               for i in range(8)]

    hf_logging.set_verbosity_error()                   # no load report for the pooler the encoder leaves out
    hf_logging.disable_progress_bar()
    encoder = BertModel.from_pretrained(bert_folder, add_pooling_layer=False, local_files_only=True).to(device)
    encoder.train()
    encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=config.learning_rate, fused=True)

    def atsuko(n, precision="fp32", forward=model):      # forward: the model, or its compiled forward
        for i in range(n):
            batch = batches[i % len(batches)]
            with autocast(device, precision):
                losses = model.loss(forward(batch), batch)
            losses["total"].backward()
            clip_and_step(model, optimizer, config)

    def floor(n):
        for i in range(n):
            tokens = batches[i % len(batches)]["text_bert"]
            hidden = encoder(input_ids=tokens[:, 0].long(), attention_mask=tokens[:, 1],
                             token_type_ids=tokens[:, 2].long()).last_hidden_state
            hidden.float().square().mean().backward()
            encoder_optimizer.step()
            encoder_optimizer.zero_grad(set_to_none=True)

    def nondeterministic(n):
        torch.use_deterministic_algorithms(False)
        try:
            atsuko(n)
        finally:
            torch.use_deterministic_algorithms(True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fns = {"atsuko fp32": atsuko, "floor": floor, "atsuko bf16": lambda n: atsuko(n, "bf16"),
           "atsuko nondeterministic": nondeterministic}
    compile_s = None
    if args.compile != "none":
        compiled = torch.compile(model, mode=args.compile)     # shares model's parameters and optimizer

        def atsuko_compiled(n):
            atsuko(n, forward=compiled)

        sync()
        t0 = time.perf_counter()
        atsuko_compiled(3)           # compiles (and, for reduce-overhead, records the CUDA graphs)
        sync()
        compile_s = time.perf_counter() - t0
        fns[f"atsuko compiled ({args.compile})"] = atsuko_compiled
    for name, fn in fns.items():
        if not name.startswith("atsuko compiled"):
            fn(3)                                       # warm-up: kernels chosen, memory cached
    # Ops dispatched per step: what a launch-bound step pays, counted the same on any device.
    ops = {name: sum(dispatched_ops(lambda: fns[name](1)).values()) for name in ("atsuko fp32", "floor")}
    # The models and batches go with this frame; the caller then frees their memory.
    return {"times": _blocks(fns, args.steps, args.rounds, sync), "compile_s": compile_s,
            "batch_size": config.batch_size, "ops": ops, "syncs": host_syncs(lambda: atsuko(1), device)}


def host_syncs(step, device) -> list | None:
    """Where our code made `step()` wait for the GPU (the issue's "no host synchronisation per step"): the
    innermost line under mmsa_atsuko/ of each wait CUDA's sync debug mode reports, one entry per wait; None on
    a CPU, where nothing waits."""
    import traceback
    import warnings

    import torch
    if device.type != "cuda":
        return None
    package = str(ROOT / "mmsa_atsuko")
    found = []

    def note(message, *_):
        if "synchroniz" in str(message):
            ours = [f for f in traceback.extract_stack() if f.filename.startswith(package)]
            found.append(f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "outside mmsa_atsuko")

    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = note
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return found


def bench_seeds(args, device, overrides, preset, size) -> dict:
    import torch

    import mmsa_atsuko
    from mmsa_atsuko.sweep import LocalBackend, run_packed

    seeds = list(range(1111, 1111 + args.seeds))
    kw = dict(synthetic=True, synthetic_size=size, preset=preset, max_epochs=args.epochs)
    out = Path(args.runs)
    with Utilisation(device) as sequential_use:
        t0 = time.perf_counter()
        sequential = mmsa_atsuko.run("atsuko", "mosi", seeds, config=dict(overrides), device=args.device,
                                     out=out / "sequential", quiet=True, threads=1, **kw)
        sequential_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.empty_cache()
    lines = []
    with Utilisation(device) as packed_use:
        t0 = time.perf_counter()
        packed = run_packed(["atsuko"], ["mosi"], seeds, out=out / "auto", config=overrides,
                            backend=LocalBackend("auto", args.device, threads=1, echo=lines.append),
                            echo=lines.append, **kw)
        packed_s = time.perf_counter() - t0
    for line in lines:
        if "--jobs auto" in line or line.startswith("sweep:"):
            print(f"    {line}", flush=True)
    return {"sequential": sequential, "packed": packed, "sequential_s": sequential_s, "packed_s": packed_s,
            "sequential_util": sequential_use.mean, "packed_util": packed_use.mean}


def bench_repeat(args, size, preset) -> dict:
    """model -> (identical, max |diff|) of two runs with one seed (deterministic kernels)."""
    import numpy as np

    import mmsa_atsuko
    found = {}
    for model in args.models:
        runs = []
        for k in range(2):
            out = Path(args.runs) / "repeat" / f"{model}-{k}"
            try:
                (record,) = mmsa_atsuko.run(model, "mosi", [1111], synthetic=True, synthetic_size=size,
                                            preset=preset, max_epochs=1, device=args.device, threads=1,
                                            out=str(out), quiet=True)
                runs.append(_predictions(out, record))
            except RuntimeError as error:      # strict mode: an op without a deterministic version
                found[model] = ("RAISES", " ".join(str(error).split())[:300])
                break
        else:
            found[model] = (bool(np.array_equal(*runs)), float(np.abs(runs[0] - runs[1]).max()))
        print(f"    {model:<8} {found[model]}", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda[:i], or cpu to check the script")
    parser.add_argument("--tiny", action="store_true", help="small data, small preset, tiny BERT, 2 seeds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds in section 2 (default 5; --tiny 2)")
    parser.add_argument("--epochs", type=int, default=1, help="max epochs of each run in section 2 (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block in section 1")
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per figure in section 1")
    parser.add_argument("--models", nargs="*", default=None,
                        help="section 3's models (default mult emoe misa self_mm tfn lmf; --tiny tfn lmf)")
    parser.add_argument("--sections", nargs="+", choices=("step", "seeds", "repeat"),
                        default=["step", "seeds", "repeat"], help="which of the three to run (default all)")
    parser.add_argument("--compile", choices=("none", "default", "reduce-overhead", "max-autotune"),
                        default="none", help="also time atsuko's step with torch.compile in this mode (section 1)")
    parser.add_argument("--out", default=None, help="folder for data, runs and the random BERT (default: a temp one)")
    args = parser.parse_args()
    if args.compile != "none" and "step" not in args.sections:
        parser.error("--compile times section 1: add step to --sections")
    args.seeds = args.seeds or (2 if args.tiny else 5)
    if args.models is None:
        args.models = ["tfn", "lmf"] if args.tiny else ["mult", "emoe", "misa", "self_mm", "tfn", "lmf"]
    if args.tiny:
        args.steps, args.rounds = min(args.steps, 4), min(args.rounds, 2)
    args.out = str(Path(args.out or tempfile.mkdtemp(prefix="gpu-bench-")).resolve())
    os.environ.setdefault("MMSA_ATSUKO_CACHE", str(Path(args.out) / "cache"))
    # Each call trains into a folder of its own: a second call of a lease with the same --out
    # would otherwise find every run recorded, skip it, and time nothing (and compare a run with itself).
    args.runs = str(Path(args.out) / time.strftime("runs-%Y%m%dT%H%M%S"))

    import torch
    from mmsa_atsuko.training.hardware import device_name
    from mmsa_atsuko.training.seed import resolve_device
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    start = time.perf_counter()
    print(f"gpu_bench: {device_name(device)}, torch {torch.__version__}, out {args.out}", flush=True)
    overrides, preset, size, bert_folder = setup(args)
    print(f"  data: synthetic MOSI {size}, unaligned; atsuko preset {preset or 'none (full config)'}; "
          f"encoder {bert_folder}  [{time.perf_counter() - start:.0f} s]", flush=True)

    step = seeds = repeat = None
    if "step" in args.sections:
        print("1. step", flush=True)
        step = bench_step(args, device, overrides, preset, size, bert_folder)
        torch._dynamo.reset()                            # compiled graphs (and CUDA-graph pools) go too
        if device.type == "cuda":
            torch.cuda.empty_cache()                     # leave the memory to the seeds' workers
        for name, seconds in step["times"].items():
            print(f"    {name:<30} {seconds * 1e3:8.2f} ms/step", flush=True)
        print(f"  [{time.perf_counter() - start:.0f} s]", flush=True)
    if "seeds" in args.sections:
        print("2. seeds", flush=True)
        seeds = bench_seeds(args, device, overrides, preset, size)
        print(f"  [{time.perf_counter() - start:.0f} s]", flush=True)
    if "repeat" in args.sections:
        print("3. repeat", flush=True)
        repeat = bench_repeat(args, size, preset)
    elapsed = time.perf_counter() - start

    print(f"\nRESULTS ({device_name(device)}; {elapsed:.0f} s in all; sections {' '.join(args.sections)})")
    if step is not None:
        t = step["times"]
        print(f"  step atsuko / floor          {t['atsuko fp32'] / t['floor']:.2f}  (target <= 2; "
              f"{t['atsuko fp32'] * 1e3:.1f} vs {t['floor'] * 1e3:.1f} ms at batch {step['batch_size']})")
        ops = step["ops"]
        print(f"  ops atsuko / floor           {ops['atsuko fp32'] / ops['floor']:.2f}  ({ops['atsuko fp32']} vs "
              f"{ops['floor']} ATen ops (not views) a step: what a launch-bound step pays)")
        syncs = step["syncs"]
        print("  host syncs per atsuko step   " + ("n/a (CUDA only)" if syncs is None else
              f"{len(syncs)}  (target 0; " + ", ".join(f"{where} x{syncs.count(where)}"
                                                       for where in dict.fromkeys(syncs)) + ")"))
        print(f"  step bf16 / fp32             {t['atsuko bf16'] / t['atsuko fp32']:.2f}  (quality not measured here)")
        print(f"  step deterministic / not     {t['atsuko fp32'] / t['atsuko nondeterministic']:.2f}  (target <= 1.10)")
        if step["compile_s"] is not None:
            compiled = t[f"atsuko compiled ({args.compile})"]
            print(f"  step compiled / eager        {compiled / t['atsuko fp32']:.2f}  ({args.compile}; "
                  f"compiled / floor {compiled / t['floor']:.2f}; compilation {step['compile_s']:.0f} s)")
    if seeds is not None:
        first = seeds["sequential"][0]
        print(f"  {args.seeds} seeds auto / sequential   {seeds['packed_s'] / seeds['sequential_s']:.2f}  "
              f"({seeds['packed_s']:.0f} s vs {seeds['sequential_s']:.0f} s, {args.epochs} epoch(s) each)")
        print(f"  GPU utilisation              sequential {_pct(seeds['sequential_util'])}, auto "
              f"{_pct(seeds['packed_util'])}  (target >= 70% over a 5-seed run)")
        print(f"  one run: {first['steps_per_s']:.1f} steps/s, peak {first['peak_memory_mb']:.0f} MB, "
              f"wall {first['wall_time_s']:.1f} s, {first['device_name']}")
        # atsuko's repeat pairs are the sequential and packed runs of each seed
        out = Path(args.runs)
        same = [bool((_predictions(out / "sequential", a) == _predictions(out / "auto", b)).all())
                for a, b in zip(seeds["sequential"], seeds["packed"])]
        print(f"  repeat atsuko                {sum(same)}/{len(same)} seeds identical, sequential against packed")
    if repeat is not None:
        print("  repeat (identical twice)     "
              + "; ".join(f"{m} {v[0] if v[0] == 'RAISES' else ('yes' if v[0] else f'NO (max |diff| {v[1]:.3g})')}"
                          for m, v in repeat.items()))

if __name__ == "__main__":
    main()
