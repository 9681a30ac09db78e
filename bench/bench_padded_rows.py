"""User CPU and cache-file size of extracting one 120 s clip, two checkouts side by side, and whether the two
feature files are byte-identical (bench/README.md, "No rows past the padded lengths"):
python bench/bench_padded_rows.py OLD_CHECKOUT [ROUNDS] (ROUNDS 2 unless given)"""
import pickle
import sys

import numpy as np

from extract_side_by_side import CHILD, extraction_inputs, side_by_side

tmp, inputs = extraction_inputs([("long", "w1", 1)], seconds=120.0)
child = CHILD + """
(cache,) = Path(sys.argv[3] + ".cache").glob("*.npz")
import hashlib, mmsa_atsuko
digest = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()[:12]
print(json.dumps({"root": mmsa_atsuko.__file__, "user": own.ru_utime + kids.ru_utime,
                  "cache_bytes": cache.stat().st_size, "pkl_sha": digest}))
"""
side_by_side(child, sys.argv[1], tmp, inputs, rounds=int(sys.argv[2]) if len(sys.argv) > 2 else 2)
a, b = (pickle.load(open(tmp / f"{n}0" / "f.pkl", "rb")) for n in ("before", "after"))
same = all(np.array_equal(a["train"][k], b["train"][k]) if hasattr(a["train"][k], "shape")
           else a["train"][k] == b["train"][k] for k in a["train"])
print("identical arrays:", same, [k for k in a if k not in b])
