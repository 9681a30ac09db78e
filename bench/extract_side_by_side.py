"""`extract(..., jobs=1)` of two checkouts side by side, for the extraction benches (bench_clip_worker.py,
bench_padded_rows.py): the clips, their transcript CSV and the tiny BERT written once, then a fresh process per call,
each checkout in turn (its working folder a temporary one, so that each imports its own package), that extracts them
and prints one JSON line of what the script measures."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from media_fixtures import write_video  # noqa: E402

from mmsa_atsuko.data.tiny_bert import write_tiny_bert  # noqa: E402

# The start of every child: the extraction, its wall time `wall` and the rusage of the process (`own`) and of its
# children (`kids`: the clip worker). A script adds the line that prints its JSON.
CHILD = """
import json, resource, sys, time
from pathlib import Path
from mmsa_atsuko.data.extract import extract
start = time.perf_counter()
r = extract(sys.argv[1], sys.argv[2], sys.argv[3], bert=sys.argv[4], jobs=1, echo=lambda _: None)
wall = time.perf_counter() - start
own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
"""


def extraction_inputs(rows: list[tuple[str, str, int]], seconds: float) -> tuple[Path, list[str]]:
    """A temporary folder with one 320x240 clip of `seconds` per row (the first written, the others hard links to
    it), the transcript CSV of `rows` (id, text, label) and the tiny BERT: (the folder, the child's arguments but the
    output file)."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / "v").mkdir()
    first = tmp / "v" / f"{rows[0][0]}.mp4"
    write_video(first, size=(320, 240), seconds=seconds)
    for clip, _, _ in rows[1:]:
        os.link(first, tmp / "v" / f"{clip}.mp4")
    (tmp / "t.csv").write_text("id,text,label\n" + "".join(f"{c},{t},{label}\n" for c, t, label in rows))
    bert = write_tiny_bert(tmp / "bert")
    return tmp, [str(tmp / "v"), str(tmp / "t.csv"), str(bert)]


def side_by_side(child: str, before_root: str, tmp: Path, inputs: list[str], rounds: int) -> dict[str, list[dict]]:
    """`rounds` rounds of the `child` script, the checkout at `before_root` then this one, each writing
    `tmp/<side><round>/f.pkl`: each side's JSON lines, printed as they come with the load average."""
    runs = {"before": [], "after": []}
    for r in range(rounds):
        for name, root in (("before", before_root), ("after", str(ROOT))):
            out = tmp / f"{name}{r}" / "f.pkl"
            done = subprocess.run([sys.executable, "-c", child, *inputs[:2], str(out), inputs[2]], capture_output=True,
                                  text=True, cwd=str(tmp), env={**os.environ, "PYTHONPATH": root})
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, runs[name][-1], os.getloadavg()[0], flush=True)
    return runs
