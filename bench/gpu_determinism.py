"""Are CUDA runs bit-reproducible over long sequences, and what would the math attention kernel cost?

    python bench/gpu_determinism.py [--models mult atsuko emoe] [--epochs 2] [--out DIR]

Why: on CUDA, float32 `scaled_dot_product_attention` runs the memory-efficient kernel, whose
backward "defaults to a non-deterministic algorithm" unless determinism is strict: it may split
the keys and add the parts with atomics. A lent H200 saw two atsuko runs differ under the old
warn-only mode (issue 17), so `set_seed` is strict now, and `--nondeterministic` opts out.

What it does: each model trains twice with the same seed on full-size synthetic MOSI, unaligned
(vision 500 and audio 375 frames), small preset, on CUDA, in three variants: the default (strict
determinism: the memory-efficient backward made deterministic, or an error for an op that has no
deterministic CUDA version); SDPA limited to the math kernel, under strict determinism too; and
`deterministic=False` (torch's own kernel choice, what warn-only used to run). Runs alternate
between the variants. `bench/gpu_bench.py` repeats every model once under the default. Prints, per model and variant, whether the two
runs' test predictions are identical to the last bit, their largest difference, and the wall
time per run, or the error a strict run raised. misa and self_mm (default models: mult,
atsuko, emoe, misa) cover BERT's attention. Needs a GPU; not part of the tests.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _predictions(out, record):
    import pandas as pd
    return pd.read_csv(Path(out) / record["run_dir"] / "predictions_test.csv")["pred"].to_numpy()


@contextlib.contextmanager
def _math_attention():
    """Every scaled_dot_product_attention call inside runs on the math kernel."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    original = F.scaled_dot_product_attention

    def math_only(*args, **kwargs):
        with sdpa_kernel(SDPBackend.MATH):
            return original(*args, **kwargs)

    F.scaled_dot_product_attention = math_only
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mult", "atsuko", "emoe", "misa"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--out", default=None)
    parser.add_argument("--device", default="cuda", help="cuda[:i]; cpu only to try the script")
    args = parser.parse_args()

    import numpy as np
    import torch

    import mmsa_atsuko

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu_determinism.py needs a CUDA device (or --device cpu to try it)")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = args.out or tempfile.mkdtemp(prefix="gpu-determinism-")
    os.environ.setdefault("MMSA_ATSUKO_CACHE", str(Path(out) / "cache"))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0) if cuda else 'cpu'}; unaligned full-size synthetic MOSI, "
          f"small preset, {args.epochs} epochs, seed {args.seed}; out {out}", flush=True)
    # name -> (context, deterministic)
    variants = {"strict (default)": (contextlib.nullcontext, True), "math SDPA": (_math_attention, True),
                "nondeterministic": (contextlib.nullcontext, False)}
    # Warm-up, not timed: writes the synthetic data and starts CUDA.
    mmsa_atsuko.run(args.models[0], "mosi", seeds=[args.seed], synthetic=True, synthetic_size="full",
                    preset="small", device=args.device, max_epochs=1, out=str(Path(out) / "warmup"), quiet=True)
    for model in args.models:
        runs = {name: [] for name in variants}
        for _ in range(2):
            for name, (context, deterministic) in variants.items():
                sync()
                t0 = time.perf_counter()
                try:
                    with context():
                        (record,) = mmsa_atsuko.run(model, "mosi", seeds=[args.seed], synthetic=True,
                                                    synthetic_size="full", preset="small", device=args.device,
                                                    max_epochs=args.epochs, out=out, quiet=True,
                                                    deterministic=deterministic, rerun=True)
                except RuntimeError as error:          # strict mode: an op with no deterministic version
                    record = " ".join(str(error).split())[:300]
                runs[name].append((time.perf_counter() - t0, record))
        for name, ((t1, r1), (t2, r2)) in runs.items():
            if isinstance(r1, str) or isinstance(r2, str):
                print(f"  {model:<8} {name:<18} RAISES: {r1 if isinstance(r1, str) else r2}", flush=True)
                continue
            p1, p2 = _predictions(out, r1), _predictions(out, r2)
            same = np.array_equal(p1, p2)
            print(f"  {model:<8} {name:<18} two runs {'IDENTICAL' if same else 'DIFFERENT'} "
                  f"(max |diff| {np.abs(p1 - p2).max():.3g}; MAE {r1['metrics']['MAE']:.6f} / "
                  f"{r2['metrics']['MAE']:.6f}); wall {t1:.1f} s, {t2:.1f} s", flush=True)


if __name__ == "__main__":
    main()
