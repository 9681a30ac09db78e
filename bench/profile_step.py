"""Where one model's training step spends its time: step time, then a torch.profiler table.

    python bench/profile_step.py --model mult --size full --device cuda --steps 10
    python bench/profile_step.py --model mult --device cuda --top 0 --compile reduce-overhead
    python bench/profile_step.py --model mult --device cuda --top 0 --fit-epochs 3
    python bench/profile_step.py --model mult --device cuda --top 0 --deterministic
    OMP_NUM_THREADS=1 python bench/profile_step.py --model misa --size small -c av_lengths=text
    for m in default keep default keep; do     # host allocator A/B (mmsa_atsuko/training/host_memory.py)
      OMP_NUM_THREADS=1 python bench/profile_step.py --model tfn --steps 28 --top 0 --host-memory $m; done

The data is synthetic MOSI (unaligned unless --aligned) from the project's generator, the
config is the model's MOSI config plus `-c key=value` overrides. A step is what the trainer's
loop does for one micro-batch that ends a gradient-accumulation group: forward, loss, backward,
clipping and the optimizer step. Step times are per step with the device synchronised, median
over --steps after --warmup; the profile covers another --steps steps.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def dispatched_ops(one_step):
    """A Counter of the ATen ops that `one_step()` dispatches and that compute, by name. Views only
    relabel memory, so they are left out; on a GPU each op counted is about one kernel launch, which
    makes the count what a launch-bound step pays, measured on any device."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Counting(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view:
                self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with Counting() as counting:
        one_step()
    return counting.ops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--size", choices=("small", "full"), default="full")
    p.add_argument("--aligned", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=25, help="rows of the profile table; 0: no profile")
    p.add_argument("--by-shape", action="store_true", help="one profile row per op and input shapes")
    p.add_argument("--host-memory", choices=("keep", "default"), default="keep",
                   help="keep: what fit() does (host_memory.keep_freed_memory); default: glibc's own")
    p.add_argument("--subnormals", choices=("flush", "keep"), default="flush",
                   help="flush: what fit() does (torch.set_flush_denormal(True)); keep: IEEE subnormals")
    p.add_argument("--preset", default=None)
    p.add_argument("--cache", default="/tmp/profile-step-cache")
    p.add_argument("-c", "--config", action="append", default=[], help="override key=value")
    p.add_argument("--compile", choices=("none", "default", "reduce-overhead"), default="none",
                   help="torch.compile the model's forward with this mode (an experiment: the "
                        "trainer does not compile); warm-up time then includes compilation")
    p.add_argument("--deterministic", action="store_true",
                   help="call set_seed first, as every run does: deterministic kernels "
                        "(torch.use_deterministic_algorithms, cuDNN deterministic); without it the "
                        "steps run PyTorch's defaults, as MMSA's do")
    p.add_argument("--count-ops", action="store_true",
                   help="count the ATen ops one step dispatches (dispatched_ops)")
    p.add_argument("--fit-epochs", type=int, default=0,
                   help="then time N whole epochs of the trainer's fit on a fresh model (training "
                        "only, as parity_mmsa.py does), next to steps x batches per epoch")
    args = p.parse_args()

    import resource

    from mmsa_atsuko.config import load_config
    from mmsa_atsuko.training.host_memory import keep_freed_memory
    from mmsa_atsuko.data import load_dataset
    from mmsa_atsuko.data.synthetic import ensure_synthetic
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer, clip_and_step

    if args.host_memory == "keep":
        keep_freed_memory()
    torch.set_flush_denormal(args.subnormals == "flush")
    pkl, bert = ensure_synthetic("mosi", args.cache, size=args.size, aligned=args.aligned)
    config = load_config(args.model, "mosi", preset=args.preset, overrides=[("pretrained", str(bert)), *args.config])
    data = load_dataset("mosi", aligned=args.aligned, feature_path=pkl)
    device = torch.device(args.device)
    if args.deterministic:
        set_seed(0)
    torch.manual_seed(0)
    model = build_model(args.model, config, data.spec).to(device)
    train = data.train.to(device)
    if hasattr(model, "on_fit_start"):
        model.on_fit_start(train)
    optimizer = build_optimizer(model, config)
    forward = model if args.compile == "none" else torch.compile(model, mode=args.compile)
    model.train()
    batches = list(train.batches(config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)))
    print(f"{args.model} on synthetic MOSI ({args.size}, {'aligned' if args.aligned else 'unaligned'}), "
          f"{device}, batch {config.batch_size}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), deterministic "
          f"{torch.are_deterministic_algorithms_enabled()}", flush=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(i):
        batch = batches[i % len(batches)]
        outputs = forward(batch)
        losses = model.loss(outputs, batch)
        losses["total"].backward()
        clip_and_step(model, optimizer, config)
        if hasattr(model, "on_train_batch_end"):
            model.on_train_batch_end(batch, outputs)

    t0 = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    sync()
    print(f"warm-up: {args.warmup} steps in {time.perf_counter() - t0:.1f} s (compile: {args.compile})", flush=True)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - t0)
    print(f"step time: median {statistics.median(times) * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, "
          f"max {max(times) * 1e3:.1f}) over {args.steps} steps; host memory {args.host_memory}; subnormals {args.subnormals}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    if args.count_ops:
        ops = dispatched_ops(lambda: step(args.warmup + args.steps))
        top = ", ".join(f"{name} {n}" for name, n in ops.most_common(12))
        print(f"ATen ops (not views) in one step: {sum(ops.values())} ({top})", flush=True)
    if args.fit_epochs:
        time_fit_epochs(args, config, data, device, statistics.median(times), len(batches))
    if args.top <= 0:
        return

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, record_shapes=args.by_shape) as prof:
        for i in range(args.steps):
            step(i)
        sync()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=args.by_shape).table(
        sort_by=sort, row_limit=args.top, max_name_column_width=60))


def time_fit_epochs(args, config, data, device, step_s: float, n_batches: int) -> None:
    """Whole training epochs of `fit` (from the end of one validation to the start of the next,
    the device synchronised at each mark), against step time x batches: what an epoch costs
    beyond its steps (batching, the loss sums, the best-state copy). The first epoch also pays
    fit's setup (moving the data, calibration). The steps above clip and step the optimizer
    every time, fit only every `grad_accum` batches, so steps x batches is an upper bound."""
    from easydict import EasyDict

    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training import trainer

    marks = []

    def sync_now():
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def timed_evaluate(model, split, dataset, batch_size, collect=False, **kwargs):    # fit passes precision, loss_rule
        marks.append(sync_now())
        out = real_evaluate(model, split, dataset, batch_size, collect, **kwargs)
        marks.append(sync_now())
        return out

    real_evaluate, trainer.evaluate = trainer.evaluate, timed_evaluate
    try:
        torch.manual_seed(0)
        model = build_model(args.model, config, data.spec)
        fit_config = EasyDict({**config, "max_epochs": args.fit_epochs, "early_stop": args.fit_epochs + 1})
        marks.append(sync_now())
        trainer.fit(model, data, fit_config, device=device, seed=0, progress=False)
    finally:
        trainer.evaluate = real_evaluate
    epochs = [marks[i + 1] - marks[i] for i in range(0, 2 * args.fit_epochs, 2)]
    print(f"fit: training epochs {[round(e, 3) for e in epochs]} s; steps x batches "
          f"{step_s * n_batches:.3f} s ({n_batches} batches x {step_s * 1e3:.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
