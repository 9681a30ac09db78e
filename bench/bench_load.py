"""Loading a full-size synthetic MOSI unaligned file vs one plain pickle.load of it.

Target (issue 2): load_dataset takes at most 1.3x the time of one `pickle.load`, with peak
memory at most 2x the file size (MMSA unpickles the file three times). Each measurement runs
in a fresh subprocess, alternating the two, so page cache and allocator state are shared
fairly; peak RSS is the child's ru_maxrss minus its RSS before loading.

    python bench/bench_load.py [--repeats 3] [--dir /tmp/mmsa-bench] [--first-load]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, pickle, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
import torch, numpy   # imported before the baseline RSS so both sides pay the same
from mmsa_atsuko.data import load_dataset
def rss_kb():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS'))
base = rss_kb()
t = time.perf_counter()
if mode == 'pickle':
    with open(path, 'rb') as f:
        obj = pickle.load(f)
else:
    obj = load_dataset('mosi', feature_path=path)
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'seconds': elapsed, 'peak_mb': (peak - base) / 1024}))
"""


def measure(mode: str, path: Path, first_load: bool) -> dict:
    env = dict(os.environ)
    if first_load:      # an empty cache: the digest is computed, as on the first load of a file
        env["MMSA_ATSUKO_CACHE"] = tempfile.mkdtemp()
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default="/tmp/mmsa-bench")
    p.add_argument("--first-load", action="store_true", help="no remembered sha256: hash while loading")
    args = p.parse_args()
    from mmsa_atsuko.data.synthetic import write_synthetic
    path = Path(args.dir) / "MOSI" / "Processed" / "unaligned_50.pkl"
    if not path.exists():
        write_synthetic("mosi", path, size="full", seed=0, aligned=False)
    size_mb = path.stat().st_size / 2**20
    runs = {"pickle": [], "load_dataset": []}
    for _ in range(args.repeats):
        for mode in runs:
            runs[mode].append(measure(mode, path, args.first_load))
    t_pickle = statistics.median(r["seconds"] for r in runs["pickle"])
    t_load = statistics.median(r["seconds"] for r in runs["load_dataset"])
    peak = max(r["peak_mb"] for r in runs["load_dataset"])
    print(f"file {path} ({size_mb:.0f} MiB), {args.repeats} alternating runs, medians:")
    print(f"  pickle.load   {t_pickle:.2f} s  peak +{max(r['peak_mb'] for r in runs['pickle']):.0f} MiB")
    print(f"  load_dataset  {t_load:.2f} s  peak +{peak:.0f} MiB")
    print(f"  time ratio {t_load / t_pickle:.2f}x (target <= 1.3x); peak / file size {peak / size_mb:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
