"""Parity and speed of our TFN, LMF, MulT, MISA and Self-MM against MMSA 2.2.1 (issue 4).

Both sides train on THE SAME synthetic MOSI pickle (`write_synthetic`), with MMSA's MOSI
hyper-parameters, the same seeds, the same randomly initialised local BERT for MISA/Self-MM,
one torch thread each, on CPU. Every (side, model, seed) run is its own subprocess, and the two
sides alternate (ours s1, MMSA s1, ours s2, ...), so machine load hits both alike.

    # 1. once: MMSA 2.2.1 in its own venv (never touches the project venv)
    python bench/parity_mmsa.py setup --venv /tmp/mmsa-venv
    # 2. quality + time per epoch + peak RSS (3 seeds, small synthetic MOSI)
    .venv/bin/python bench/parity_mmsa.py run --venv /tmp/mmsa-venv --size small --max-epochs 10
    # 3. Self-MM RSS with a BERT-base-sized random encoder on full-size synthetic MOSI
    .venv/bin/python bench/parity_mmsa.py rss --venv /tmp/mmsa-venv --batches 30

What is timed: the training part of each epoch, from the end of the previous validation pass
(or the start of training) to the start of the next one, so it includes each trainer's own
per-epoch bookkeeping (MMSA's train metrics, Self-MM's ULGM) but not validation. The figure is
the median over every epoch of every seed after the first epoch of each run.

MMSA runtime patches, applied in the MMSA worker only (site-packages is never edited):
1. `torch.cuda.set_device` is a no-op: `MMSA_run` calls it unconditionally with the CPU device.
2. `ReduceLROnPlateau` in `MMSA.trains.singleTask.MULT` drops `verbose` (MMSA passes
   `verbose=True`, which torch >= 2.7 rejects).
3. `pynvml` comes from `nvidia-ml-py3` (installed by `setup`); `assign_gpu([])` never calls it
   without CUDA, but `MMSA.utils.functions` imports it.
4. An epoch cap: MMSA's loop is `while True` (early stop only). The worker wraps the trainer's
   `do_test`; at the `--max-epochs`-th validation it sets `args.early_stop = 0`, so that epoch
   is the last. Early stopping before the cap behaves as in MMSA.
5. Config the run needs on our data: `featurePath` = the synthetic pickle, `pretrained` = the
   local BERT folder, `train_samples` = the real train size (Self-MM sizes ULGM from it),
   `num_workers=0`, `gpu_ids=[]`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("tfn", "lmf", "mult", "misa", "self_mm")
BERT_MODELS = ("misa", "self_mm")
DEFAULT_SEEDS = (1111, 1112, 1113)
RESULT_TAG = "PARITY_RESULT "


# ------------------------------------------------------------------------------------ setup

def cmd_setup(args) -> None:
    venv = Path(args.venv)
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    # torch first, pinned by the project's constraints: pip takes the local CPU wheel, never CUDA.
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    # MMSA without its deps (they would pull whatever torch/transformers pip likes), then the
    # ones it really imports, at the project's pinned versions.
    subprocess.run([str(py), "-m", "pip", "install", "-q", "MMSA==2.2.1", "--no-deps"], check=True)
    subprocess.run(pip + ["transformers", "numpy", "pandas", "tqdm", "scikit-learn", "easydict",
                          "nvidia-ml-py3"], check=True)
    print(f"MMSA 2.2.1 installed in {venv}")


# ------------------------------------------------------------------------------------ data

def prepare_data(work: Path, size: str, bert_layers: int | None = None) -> dict:
    """The synthetic pickle and the local BERT both sides read (written once, in this process)."""
    from mmsa_atsuko.data.synthetic import synthetic_recipe, write_synthetic
    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    # Named by the recipe, so a --work folder from before a generator bump is never reused
    # silently (a v1 file once sat under plain `synth-full` and gave other MAEs than v2).
    recipe = synthetic_recipe("mosi", size=size, seed=0, aligned=False)
    pkl = work / f"synth-{recipe}" / "MOSI" / "Processed" / "unaligned_50.pkl"
    if not pkl.exists():
        write_synthetic("mosi", pkl, size=size, seed=0, aligned=False)
    bert = work / "bert-tiny"
    if not (bert / "synthetic.json").exists():
        write_tiny_bert(bert, seed=0, language="en")
    out = {"pkl": str(pkl), "bert": str(bert)}
    if bert_layers:
        out["bert"] = str(write_base_bert(work / f"bert-base-random-{bert_layers}l", bert, bert_layers))
    import pickle
    with open(pkl, "rb") as f:
        out["train_samples"] = len(pickle.load(f)["train"]["regression_labels"])
    return out


def write_base_bert(folder: Path, tiny: Path, layers: int) -> Path:
    """A BERT-base-sized (hidden 768, 12 heads, FFN 3072) random BERT with the synthetic vocab."""
    if (folder / "config.json").exists():
        return folder
    import shutil
    import torch
    from transformers import BertConfig, BertModel
    folder.mkdir(parents=True, exist_ok=True)
    for f in tiny.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, folder / f.name)
    vocab = len((tiny / "vocab.txt").read_text(encoding="utf-8").splitlines())
    config = BertConfig(vocab_size=vocab, hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------------- config

def shared_config(model: str, data: dict, max_epochs: int, early_stop: int, extra: dict) -> tuple[dict, dict]:
    """(our overrides, MMSA overrides): the same numbers on both sides; MMSA's MOSI defaults otherwise."""
    ours = {"max_epochs": max_epochs, "early_stop": early_stop}
    mmsa = {"featurePath": data["pkl"], "early_stop": early_stop, "train_samples": data["train_samples"]}
    if model in BERT_MODELS:
        ours["pretrained"] = data["bert"]
        mmsa["pretrained"] = data["bert"]
    ours.update(extra.get("ours", {}))
    mmsa.update(extra.get("mmsa", {}))
    return ours, mmsa


# ------------------------------------------------------------------------------ workers

class EpochClock:
    """Training time per epoch = start of validation k - end of validation k-1 (or train start).

    On CUDA every mark waits for the queued kernels first: our trainer never syncs inside an
    epoch, so without it the tail of training would be billed to validation."""

    def __init__(self, device: str = "cpu"):
        self.mark = None
        self.times = []
        self.cuda = device.startswith("cuda")

    def now(self) -> float:
        if self.cuda:
            import torch
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self):
        self.mark = self.now()

    def before_valid(self):
        self.times.append(self.now() - self.mark)

    def after_valid(self):
        self.mark = self.now()


class RSSSampler:
    """Peak RSS (ru_maxrss) plus an RSS trace sampled from /proc every `period` seconds."""

    def __init__(self, period: float = 0.25):
        import threading
        self.trace, self.period, self._stop = [], period, threading.Event()
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self):
        while not self._stop.wait(self.period):
            self.trace.append((round(time.perf_counter() - self.t0, 2), round(self.rss_mb(), 1)))

    def stop(self) -> dict:
        import resource
        self._stop.set()
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _limit_batches(iterable, n):
    for i, item in enumerate(iterable):
        if i >= n:
            return
        yield item


def worker_ours(job: dict) -> dict:
    import torch
    torch.set_num_threads(job["threads"])
    sampler = RSSSampler()
    import mmsa_atsuko
    from mmsa_atsuko.training import trainer as trainer_mod

    clock = EpochClock(job["device"])
    real_evaluate = trainer_mod.evaluate
    rss_marks = []

    def evaluate(model, split, dataset, batch_size, collect=False, **kwargs):    # fit passes precision, loss_rule
        if not collect:
            clock.before_valid()
            rss_marks.append(round(sampler.rss_mb(), 1))
        out = real_evaluate(model, split, dataset, batch_size, collect, **kwargs)
        if not collect:
            clock.after_valid()
        return out

    trainer_mod.evaluate = evaluate
    if job.get("train_batches"):         # RSS mode: a fixed number of training batches per epoch
        from mmsa_atsuko.data.spec import Split
        real_batches = Split.batches

        def batches(self, batch_size, shuffle=False, generator=None):
            it = real_batches(self, batch_size, shuffle, generator)
            return _limit_batches(it, job["train_batches"]) if shuffle else _limit_batches(it, job["eval_batches"])
        Split.batches = batches
        real_nb = Split.num_batches
        Split.num_batches = lambda self, bs: min(real_nb(self, bs), job["train_batches"])

    import mmsa_atsuko.api.one_run as one_run         # where train_one reads them
    if job.get("train_batches"):
        one_run.write_predictions = lambda *a, **k: None     # the test split was cut short too
    real_api_fit = one_run.fit

    def fit(*a, **k):
        clock.start()
        return real_api_fit(*a, **k)
    one_run.fit = fit
    records = mmsa_atsuko.run(job["model"], "mosi", seeds=[job["seed"]], feature_path=job["pkl"],
                              config=job["ours_config"], device=job["device"], quiet=True, out=job["out"])
    m = records[0]["metrics"]
    return {"MAE": m["MAE"], "Non0_acc_2": m["Non0_acc_2"], "epoch_s": clock.times,
            "epochs": records[0]["epochs_run"], "rss_at_valid_mb": rss_marks, **sampler.stop(),
            "trace": sampler.trace if job.get("trace") else None}


def worker_mmsa(job: dict) -> dict:
    import torch
    torch.set_num_threads(job["threads"])
    sampler = RSSSampler()
    cuda = job["device"].startswith("cuda")
    if not cuda:   # Patch 1: MMSA_run calls torch.cuda.set_device(args['device']) unconditionally.
        torch.cuda.set_device = lambda *a, **k: None
    try:           # Patch 3: only imported; assign_gpu([0]) and assign_gpu([]) without CUDA never call it
        import pynvml  # noqa: F401
    except ImportError:
        import types
        sys.modules["pynvml"] = types.ModuleType("pynvml")
    import MMSA
    import MMSA.run as mrun
    # Patch 2: torch >= 2.7 rejects ReduceLROnPlateau(verbose=...), which MMSA's MulT passes.
    import importlib
    mult_mod = importlib.import_module("MMSA.trains.singleTask.MULT")
    real_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau

    def plateau(*a, verbose=None, **k):
        return real_plateau(*a, **k)
    mult_mod.ReduceLROnPlateau = plateau

    clock = EpochClock(job["device"])
    rss_marks = []
    max_epochs = job["max_epochs"]
    real_get_train = mrun.ATIO.getTrain

    def get_train(self, args):
        trainer = real_get_train(self, args)
        real_do_test, real_do_train = trainer.do_test, trainer.do_train
        state = {"valid": 0}

        def do_test(model, dataloader, mode="VAL", return_sample_results=False):
            if mode != "VAL":
                return real_do_test(model, dataloader, mode, return_sample_results)
            clock.before_valid()
            rss_marks.append(round(sampler.rss_mb(), 1))
            state["valid"] += 1
            if state["valid"] >= max_epochs:      # Patch 4: the epoch cap MMSA lacks
                args.early_stop = 0
            out = real_do_test(model, dataloader, mode, return_sample_results)
            clock.after_valid()
            return out

        def do_train(model, dataloader, return_epoch_results=False):
            clock.start()
            return real_do_train(model, dataloader, return_epoch_results)
        trainer.do_test, trainer.do_train = do_test, do_train
        return trainer
    mrun.ATIO.getTrain = get_train
    if job.get("train_batches"):              # RSS mode: a fixed number of batches per epoch
        real_loader = mrun.MMDataLoader

        def loader(args, num_workers):
            return {k: _Limited(v, job["train_batches"] if k == "train" else job["eval_batches"])
                    for k, v in real_loader(args, num_workers).items()}
        mrun.MMDataLoader = loader

    results = {}
    real_run = mrun._run

    def _run(args, num_workers=4, is_tune=False, from_sena=False):
        results["test"] = real_run(args, num_workers, is_tune, from_sena)
        return results["test"]
    mrun._run = _run
    out = Path(job["out"])
    MMSA.MMSA_run(job["model"], "mosi", config=job["mmsa_config"], seeds=[job["seed"]],
                  gpu_ids=[0] if cuda else [], num_workers=job["mmsa_workers"], verbose_level=0, model_save_dir=out / "models", res_save_dir=out / "results",
                  log_dir=out / "logs")
    t = results["test"]
    return {"MAE": t["MAE"], "Non0_acc_2": t["Non0_acc_2"], "epoch_s": clock.times,
            "epochs": len(clock.times), "rss_at_valid_mb": rss_marks, **sampler.stop(),
            "trace": sampler.trace if job.get("trace") else None}


class _Limited:
    """A DataLoader stand-in that yields at most n batches (len() too)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __iter__(self):
        return _limit_batches(iter(self.loader), self.n)

    def __len__(self):
        return min(len(self.loader), self.n)


def run_worker(side: str, job: dict, args, log_dir: Path) -> dict:
    """One (side, model, seed) in its own process. MMSA runs under `--mmsa-python` (default: the
    venv's) with only `--mmsa-pythonpath` on its path; ours under this interpreter."""
    inherited = os.environ.get("PYTHONPATH", "")
    if side == "ours":
        py, path = sys.executable, os.pathsep.join(p for p in (str(ROOT), inherited) if p)
    else:
        py, path = args.mmsa_python or str(Path(args.venv) / "bin" / "python"), args.mmsa_pythonpath
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=path, TQDM_DISABLE="1")
    start = time.perf_counter()
    proc = subprocess.run([py, str(Path(__file__).resolve()), "_worker", side, json.dumps(job)], cwd=str(ROOT if side == "ours" else log_dir),
                          env=env, capture_output=True, text=True)
    log = log_dir / f"{side}-{job['model']}-{job['seed']}.log"
    log.write_text(proc.stdout + proc.stderr)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{side} {job['model']} seed {job['seed']} failed (rc {proc.returncode}); see {log}\n"
                           + (proc.stderr[-3000:]))
    res = json.loads(lines[-1][len(RESULT_TAG):])
    res["wall_s"] = time.perf_counter() - start
    return res


# ------------------------------------------------------------------------------ commands

# MMSA-faithful switches of ours (bugs we fix by default). `--faithful` turns them on, and MMSA's model
# selection for every model (its valid loss: the mean of batch means, rounded; training/selection.py).
FAITHFUL = {"lmf": {"mmsa_frozen_fusion_weights": True}, "misa": {"av_lengths": "text"}}
MMSA_SELECTION = {"valid_loss": "mmsa"}


def _ms(values) -> str:
    from mmsa_atsuko.leaderboard.stats import Cell      # the leaderboard's cell, at 3 decimals
    return Cell(list(values)).text(lambda value: f"{value:.3f}")


def cmd_run(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(work, args.size)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    table = {}
    for model in args.models:
        extra = {"ours": {**MMSA_SELECTION, **FAITHFUL.get(model, {})} if args.faithful else {}}
        ours_cfg, mmsa_cfg = shared_config(model, data, args.max_epochs, args.early_stop, extra)
        rows = {"ours": [], "mmsa": []}
        for i, seed in enumerate(args.seeds):
            # alternate which side goes first, so neither always runs in the other's wake
            order = ("ours", "mmsa") if i % 2 == 0 else ("mmsa", "ours")
            for side in order:
                job = {"model": model, "seed": seed, "pkl": data["pkl"], "threads": args.threads,
                       "max_epochs": args.max_epochs, "ours_config": ours_cfg, "mmsa_config": mmsa_cfg,
                       "device": args.device, "mmsa_workers": args.mmsa_workers,
                       "train_batches": args.batches, "eval_batches": args.eval_batches, "out": str(work / "out" / side / model / str(seed))}
                r = run_worker(side, job, args, logs)
                rows[side].append(r)
                print(f"  {model:8s} {side:5s} seed {seed}: MAE {r['MAE']:.4f} Non0_acc_2 {r['Non0_acc_2']:.4f} "
                      f"epochs {len(r['epoch_s'])} s/epoch {statistics.median(r['epoch_s']):.3f} "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        table[model] = rows
    (work / "parity_results.json").write_text(json.dumps(table, indent=1))
    print_table(table, args)


def _epoch_times(runs) -> list[float]:
    """Per-epoch training times of every run, without each run's first epoch when it has more."""
    out = []
    for r in runs:
        out += r["epoch_s"][1:] if len(r["epoch_s"]) > 1 else r["epoch_s"]
    return out


def print_table(table: dict, args) -> None:
    print(f"\nsynthetic MOSI ({args.size}), seeds {args.seeds}, max_epochs {args.max_epochs}, "
          f"early_stop {args.early_stop}, {args.threads} torch thread(s), {args.device}, "
          f"MMSA DataLoader workers {args.mmsa_workers}"
          + (", ours in MMSA-faithful mode" if args.faithful else "")
          + (f", {args.batches} training batches per epoch (quality columns not comparable)" if args.batches else ""))
    print("| model | MAE ours | MAE MMSA | Non0_acc_2 ours | Non0_acc_2 MMSA | s/epoch ours | s/epoch MMSA "
          "| ratio | peak RSS ours / MMSA (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, rows in table.items():
        o, m = rows["ours"], rows["mmsa"]
        to, tm = statistics.median(_epoch_times(o)), statistics.median(_epoch_times(m))
        print(f"| {model} | {_ms([r['MAE'] for r in o])} | {_ms([r['MAE'] for r in m])} "
              f"| {_ms([r['Non0_acc_2'] for r in o])} | {_ms([r['Non0_acc_2'] for r in m])} "
              f"| {to:.3f} | {tm:.3f} | {to / tm:.2f}x "
              f"| {max(r['peak_rss_mb'] for r in o):.0f} / {max(r['peak_rss_mb'] for r in m):.0f} |")


def cmd_rss(args) -> None:
    """Self-MM with a BERT-base-sized random encoder, full-size synthetic MOSI, fixed batches."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(work, "full", bert_layers=args.bert_layers)
    logs = work / "logs-rss"
    logs.mkdir(exist_ok=True)
    ours_cfg, mmsa_cfg = shared_config("self_mm", data, args.epochs, 8, {})
    res = {}
    for side in args.sides:
        job = {"model": "self_mm", "seed": 1111, "pkl": data["pkl"], "threads": args.threads,
               "max_epochs": args.epochs, "ours_config": ours_cfg, "mmsa_config": mmsa_cfg,
               "device": args.device, "mmsa_workers": args.mmsa_workers, "train_batches": args.batches, "eval_batches": args.eval_batches, "trace": True,
               "out": str(work / "out-rss" / side)}
        res[side] = run_worker(side, job, args, logs)
        r = res[side]
        tr = r["trace"]
        base = tr[0][1] if tr else float("nan")
        print(f"self_mm {side:5s}: peak RSS {r['peak_rss_mb']:.0f} MB; RSS at each validation start "
              f"{r['rss_at_valid_mb']} MB; first sample {base:.0f} MB; "
              f"{len(r['epoch_s'])} epoch(s) of {args.batches} batches, s/epoch {[round(t, 1) for t in r['epoch_s']]}",
              flush=True)
    (work / "rss_results.json").write_text(json.dumps(res, indent=1))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        side, job = argv[1], json.loads(argv[2])
        res = worker_ours(job) if side == "ours" else worker_mmsa(job)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--venv", default="/tmp/mmsa-venv")
    for name in ("run", "rss"):
        s = sub.add_parser(name)
        s.add_argument("--venv", default="/tmp/mmsa-venv")
        s.add_argument("--work", default="/tmp/parity-mmsa")
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--device", default="cpu", help="cpu or cuda (both sides)")
        s.add_argument("--mmsa-workers", type=int, default=0,
                       help="MMSA's DataLoader workers (MMSA_run's own default is 4)")
        s.add_argument("--mmsa-python", help="interpreter for MMSA (default: the --venv one)")
        s.add_argument("--mmsa-pythonpath", default="", help="PYTHONPATH of the MMSA worker")
    r = sub.choices["run"]
    r.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    r.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    r.add_argument("--size", choices=("small", "full"), default="small")
    r.add_argument("--max-epochs", type=int, default=10)
    r.add_argument("--early-stop", type=int, default=8)
    r.add_argument("--faithful", action="store_true",
                   help="ours with MMSA's behaviour where we fix a bug, and MMSA's model selection (valid_loss: mmsa)")
    r.add_argument("--batches", type=int, default=None,
                   help="cap each epoch at this many training batches (timing only: valid/test are cut to "
                        "--eval-batches, so the MAE columns mean nothing)")
    r.add_argument("--eval-batches", type=int, default=1)
    q = sub.choices["rss"]
    q.add_argument("--batches", type=int, default=30, help="training batches per epoch")
    q.add_argument("--eval-batches", type=int, default=2)
    q.add_argument("--epochs", type=int, default=2)
    q.add_argument("--bert-layers", type=int, default=12)
    q.add_argument("--sides", nargs="+", choices=("ours", "mmsa"), default=["ours", "mmsa"])
    a = p.parse_args(argv)
    {"setup": cmd_setup, "run": cmd_run, "rss": cmd_rss}[a.cmd](a)


if __name__ == "__main__":
    main()
