"""CPU of `extract --jobs 1` on 12 clips, two checkouts side by side (bench/README.md, "One worker process under
--jobs 1"): python bench/bench_clip_worker.py OLD_CHECKOUT [ROUNDS] (e.g. git archive <commit> | tar -x -C
OLD_CHECKOUT; ROUNDS 3 unless given)."""
import statistics
import sys

from extract_side_by_side import CHILD, extraction_inputs, side_by_side

tmp, inputs = extraction_inputs([(f"c{i:02d}", f"w{i}", (i % 7) - 3) for i in range(12)], seconds=3.0)
child = CHILD + """
print(json.dumps({"wall": wall, "cpu": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                  "n": r.extracted}))
"""
runs = side_by_side(child, sys.argv[1], tmp, inputs, rounds=int(sys.argv[2]) if len(sys.argv) > 2 else 3)
for name, rs in runs.items():
    print(name, "cpu median", statistics.median(x["cpu"] for x in rs),
          "wall median", statistics.median(x["wall"] for x in rs))
