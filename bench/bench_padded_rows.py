"""User CPU and cache-file size of extracting one 120 s clip, two checkouts side by side, and whether the two
feature files are byte-identical (bench/README.md, "No rows past the padded lengths"):
python bench/bench_padded_rows.py OLD_CHECKOUT"""
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media_fixtures import write_video  # noqa: E402

from mmsa_atsuko.data.tiny_bert import write_tiny_bert  # noqa: E402
tmp = Path(tempfile.mkdtemp())
(tmp / "v").mkdir()
write_video(tmp / "v" / "long.mp4", size=(320, 240), seconds=120.0)
(tmp / "t.csv").write_text("id,text,label\nlong,w1,1\n")
bert = write_tiny_bert(tmp / "bert")
CHILD = """
import json, resource, sys, time
from pathlib import Path
from mmsa_atsuko.data.extract import extract
r = extract(sys.argv[1], sys.argv[2], sys.argv[3], bert=sys.argv[4], jobs=1, echo=lambda _: None)
a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
(cache,) = Path(sys.argv[3] + ".cache").glob("*.npz")
import hashlib, mmsa_atsuko
digest = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()[:12]
print(json.dumps({"root": mmsa_atsuko.__file__, "user": a.ru_utime + b.ru_utime,
                  "cache_bytes": cache.stat().st_size, "pkl_sha": digest}))
"""
runs = {"before": [], "after": []}
for r in range(2):
    for name, root in (("before", sys.argv[1]), ("after", str(ROOT))):
        out = tmp / f"{name}{r}" / "f.pkl"
        done = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "v"), str(tmp / "t.csv"), str(out), str(bert)],
                              capture_output=True, text=True, cwd=str(tmp), env={**os.environ, "PYTHONPATH": root})
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(name, runs[name][-1], os.getloadavg()[0], flush=True)
a, b = (pickle.load(open(tmp / f"{n}0" / "f.pkl", "rb")) for n in ("before", "after"))
same = all(np.array_equal(a["train"][k], b["train"][k]) if hasattr(a["train"][k], "shape")
           else a["train"][k] == b["train"][k] for k in a["train"])
print("identical arrays:", same, [k for k in a if k not in b])
