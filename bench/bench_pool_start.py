"""Wall time of `extract --jobs 2` on the test videos (tests/media_fixtures.write_corpus: 8 clips and a corrupt one),
two checkouts side by side (bench/README.md, "Workers from the fork server"): python bench/bench_pool_start.py
OLD_CHECKOUT [ROUNDS] (e.g. git archive <commit> | tar -x -C OLD_CHECKOUT; ROUNDS 3 unless given).

Each call is a fresh process, in a fresh user cache (every clip extracted), that prints the wall time of the whole
`extract(..., jobs=2)` and of `videos.run_videos` within it: the worker processes' start, imports and clips."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media_fixtures import write_corpus  # noqa: E402

from mmsa_atsuko.data.tiny_bert import write_tiny_bert  # noqa: E402

CHILD = """
import json, sys, time
from mmsa_atsuko.data.extract import clip_features, pipeline
real, pool = clip_features.run_videos, []      # the cache-or-extract step calls it by this name

def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return real(*args, **kwargs)
    finally:
        pool.append(time.perf_counter() - start)

clip_features.run_videos = timed
start = time.perf_counter()
r = pipeline.extract(sys.argv[1], sys.argv[2], sys.argv[3], bert=sys.argv[4], jobs=2, echo=lambda _: None)
print(json.dumps({"wall": time.perf_counter() - start, "run_videos": pool[0], "n": r.extracted}))
"""

tmp = Path(tempfile.mkdtemp())
videos, transcripts = write_corpus(tmp)
bert = write_tiny_bert(tmp / "bert")
runs = {"before": [], "after": []}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    for name, root in (("before", sys.argv[1]), ("after", str(ROOT))):
        env = {**os.environ, "PYTHONPATH": root, "MMSA_ATSUKO_CACHE": str(tmp / f"cache-{name}{r}")}
        done = subprocess.run([sys.executable, "-c", CHILD, str(videos), str(transcripts),
                               str(tmp / f"{name}{r}" / "f.pkl"), str(bert)], capture_output=True, text=True,
                              cwd=str(tmp), env=env)
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(name, runs[name][-1], "load", os.getloadavg()[0], flush=True)
for name, rs in runs.items():
    print(name, "best wall", f"{min(x['wall'] for x in rs):.2f}", "best run_videos",
          f"{min(x['run_videos'] for x in rs):.2f}")
