"""CPU of `extract --jobs 1` on 12 clips, two checkouts side by side (bench/README.md, "One worker process under
--jobs 1"): python bench/bench_clip_worker.py OLD_CHECKOUT (e.g. git archive <commit> | tar -x -C OLD_CHECKOUT)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media_fixtures import write_video  # noqa: E402

from mmsa_atsuko.data.tiny_bert import write_tiny_bert  # noqa: E402
tmp = Path(tempfile.mkdtemp())
(tmp / "v").mkdir()
write_video(tmp / "v" / "c00.mp4", size=(320, 240), seconds=3.0)
rows = ["id,text,label"]
for i in range(12):
    if i:
        os.link(tmp / "v" / "c00.mp4", tmp / "v" / f"c{i:02d}.mp4")
    rows.append(f"c{i:02d},w{i},{(i % 7) - 3}")
(tmp / "t.csv").write_text("\n".join(rows) + "\n")
bert = write_tiny_bert(tmp / "bert")
CHILD = """
import json, resource, sys, time
from mmsa_atsuko.data.extract import extract
t = time.perf_counter()
r = extract(sys.argv[1], sys.argv[2], sys.argv[3], bert=sys.argv[4], jobs=1, echo=lambda _: None)
w = time.perf_counter() - t
a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": w, "cpu": a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime, "n": r.extracted}))
"""
runs = {"before": [], "after": []}
for r in range(3):
    for name, root in (("before", sys.argv[1]), ("after", str(ROOT))):
        out = tmp / f"{name}{r}" / "f.pkl"
        done = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "v"), str(tmp / "t.csv"), str(out), str(bert)],
                              capture_output=True, text=True, cwd=str(tmp), env={**os.environ, "PYTHONPATH": root},
                              check=True)
        runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(name, runs[name][-1], os.getloadavg()[0], flush=True)
for name, rs in runs.items():
    print(name, "cpu median", statistics.median(x["cpu"] for x in rs),
          "wall median", statistics.median(x["wall"] for x in rs))
