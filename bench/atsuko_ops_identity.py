"""Does a change to Atsuko's code leave every number bit for bit as it was? Old code against new.

    git archive HEAD mmsa_atsuko configs | tar -x -C /tmp/old      # the code to compare against
    python bench/atsuko_ops_identity.py --old /tmp/old                # 3-6 minutes on 2 shared cores

For the old code (`--old`, put first on sys.path) and the new (this checkout), each in a process of
its own, the same cases run from the same seed (set_seed, as a run does: deterministic kernels):
atsuko and its variants atsuko_base / atsuko_sbn / atsuko_mcm on synthetic MOSI (unaligned, small
data, the full config with the synthetic BERT); atsuko on aligned MOSI, on MIntRec
(classification, 20 classes), with non-default temperatures and loss weights (the branches a
default run skips), and with band masking heavy enough that whole samples lose every band. Each
case trains K steps in train mode (dropout, band masking: the random stream is part of what is
compared) and records every loss term, every gradient and every parameter after each step, then
one eval-mode forward with return_spectral (every tensor of the output dict: predictions, routing
weights, bands, exports). The two records must be equal bit for bit everywhere (-0.0 is not 0.0;
a digest of each tensor's bytes, and torch.equal on the tensors up to SMALL elements, which are
kept whole), with the same keys, dtypes and shapes. It also prints each case's ATen op count
of one training step (profile_step.dispatched_ops), old and new.
`--records DIR` keeps the records there and reuses DIR/old.pt, so a second check reruns only the new.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

CASES = {   # name -> (model, dataset, aligned, overrides)
    "atsuko": ("atsuko", "mosi", False, []),
    "atsuko_base": ("atsuko_base", "mosi", False, []),
    "atsuko_sbn": ("atsuko_sbn", "mosi", False, []),
    "atsuko_mcm": ("atsuko_mcm", "mosi", False, []),
    "atsuko aligned": ("atsuko", "mosi", True, []),
    "atsuko mintrec": ("atsuko", "mintrec", False, []),
    "atsuko non-default": ("atsuko", "mosi", False, [("band_temperature", 0.5), ("comp_temperature", 2.0),
                                                     ("lambda_uni", 0.7), ("lambda_bi", 1.5)]),
    # a third of the samples lose every band at this rate: band masking's all-masked branch
    "atsuko heavy band masking": ("atsuko", "mosi", False, [("band_mask_rate", 0.7)]),
}


SMALL = 4096         # tensors up to this many elements are kept whole, bigger ones as a digest


def kept(tensor: torch.Tensor):
    """What the record keeps of a tensor: (dtype, shape, digest of its bytes, the tensor itself if
    small). Equal digests mean equal bits; the whole records of all steps would take 9 GB."""
    t = tensor.detach().cpu().contiguous()
    digest = hashlib.blake2b(t.reshape(-1).view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()
    return str(t.dtype), tuple(t.shape), digest, t.clone() if t.numel() <= SMALL else None


def flat(prefix: str, value, into: dict) -> dict:
    """Every tensor in a nested dict/list/tuple, keyed by its path."""
    if isinstance(value, torch.Tensor):
        into[prefix] = kept(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            flat(f"{prefix}/{key}", item, into)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            flat(f"{prefix}/{i}", item, into)
    return into


def run_case(model_name, dataset, aligned, overrides, steps):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profile_step import dispatched_ops                   # a sibling script
    from mmsa_atsuko.api.jobs import prepare_job
    from mmsa_atsuko.registry import build_model
    from mmsa_atsuko.training.seed import set_seed
    from mmsa_atsuko.training.trainer import build_optimizer, clip_and_step

    job = prepare_job(model_name, dataset, aligned=aligned, data_root=None, feature_path=None, synthetic=True,
                      synthetic_size="small", preset=None, overrides=overrides, max_epochs=None, loaded={})
    config = job.config
    set_seed(1111)
    model = build_model(model_name, config, job.data.spec)
    model.on_fit_start(job.data.train)
    optimizer = build_optimizer(model, config)
    batches = list(job.data.train.batches(config.batch_size, shuffle=True,
                                          generator=torch.Generator().manual_seed(1111)))
    record = {}
    model.train()

    def step(i, keep=True):
        batch = batches[i % len(batches)]
        outputs = model(batch)
        losses = model.loss(outputs, batch)
        losses["total"].backward()
        if not keep:                  # the counted step: only the step's own ops
            clip_and_step(model, optimizer, config)
            return
        flat(f"step{i}/loss", losses, record)
        flat(f"step{i}/out", {k: v for k, v in outputs.items() if k != "export"}, record)
        for name, p in model.named_parameters():
            if p.grad is not None:
                record[f"step{i}/grad/{name}"] = kept(p.grad)
        clip_and_step(model, optimizer, config)
        for name, p in model.named_parameters():
            record[f"step{i}/param/{name}"] = kept(p)

    for i in range(steps):
        step(i)
    ops = sum(dispatched_ops(lambda: step(steps, keep=False)).values())    # one more step, counted
    flat("after counted step", dict(model.named_parameters()), record)
    model.eval()
    with torch.no_grad():
        flat("eval", model(batches[0], return_spectral=True), record)
    flat("state", model.state_dict(), record)
    return record, ops


def worker(out: str, steps: int) -> None:
    results = {}
    for name, (model_name, dataset, aligned, overrides) in CASES.items():
        record, ops = run_case(model_name, dataset, aligned, overrides, steps)
        results[name] = {"record": record, "ops": ops}
        print(f"  {name}: {len(record)} tensors, {ops} ops a step", flush=True)
    torch.save(results, out)


def same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Bit for bit, stricter than torch.equal: -0.0 is not 0.0, and a NaN equals the same NaN."""
    if not x.is_floating_point():
        return True                                  # torch.equal already compared them exactly
    as_int = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    return torch.equal(x.contiguous().view(as_int), y.contiguous().view(as_int))


def compare(old: dict, new: dict) -> list[str]:
    problems = []
    for case in CASES:
        a, b = old[case]["record"], new[case]["record"]
        if a.keys() != b.keys():
            problems.append(f"{case}: keys differ: {sorted(a.keys() ^ b.keys())[:5]}")
        for key in sorted(a.keys() & b.keys()):
            (dtype_a, shape_a, bits_a, x), (dtype_b, shape_b, bits_b, y) = a[key], b[key]
            same = (dtype_a, shape_a, bits_a) == (dtype_b, shape_b, bits_b)
            if x is not None and y is not None:
                same = same and same_bits(x, y)     # bits, not torch.equal: a NaN is the same NaN
            if not same:
                diff = ((x.double() - y.double()).abs().max().item()
                        if x is not None and y is not None and x.shape == y.shape else "n/a (digest)")
                problems.append(f"{case}: {key} differs ({dtype_a} {shape_a} vs {dtype_b} {shape_b}, "
                                f"max |diff| {diff})")
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", help="a copy of the old code's tree (holds mmsa_atsuko/)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--records", help="folder for the records; an old.pt already there is reused")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    if not args.old:
        p.error("--old is required")
    here = Path(__file__).resolve().parent.parent
    tmp = Path(args.records or tempfile.mkdtemp(prefix="atsuko-identity-"))
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "MMSA_ATSUKO_CACHE": os.environ.get("MMSA_ATSUKO_CACHE", str(tmp / "cache"))}
    records = {}
    for label, root in (("old", Path(args.old).resolve()), ("new", here)):
        print(f"{label} ({root}):", flush=True)
        out = tmp / f"{label}.pt"
        if label == "old" and args.records and out.is_file():
            print("  (reused)", flush=True)
            records[label] = torch.load(out, weights_only=False)
            continue
        subprocess.run([sys.executable, __file__, "--worker", str(out), "--steps", str(args.steps)],
                       env={**env, "PYTHONPATH": str(root)}, cwd=root, check=True)
        records[label] = torch.load(out, weights_only=False)
    for case in CASES:
        print(f"{case}: ops a step {records['old'][case]['ops']} -> {records['new'][case]['ops']}")
    problems = compare(records["old"], records["new"])
    n = sum(len(records["old"][c]["record"]) for c in CASES)
    print("\n".join(problems[:30]) if problems else f"IDENTICAL: {n} tensors over {len(CASES)} cases, bit for bit")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
