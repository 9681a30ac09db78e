"""Extraction speed (issue 19): 10-second 25 fps clips through `run.py extract`, --jobs 1 vs 2.

Writes CLIPS copies of a 640x480, 10 s, 25 fps clip (a cartoon face that the Haar cascade
finds, and a tone-plus-noise track; see tests/media_fixtures.py), then extracts them into a
fresh cache for each setting, in a fresh process each, alternating, and reports per setting the
wall time per clip and the CPU time per clip (this process plus its workers). The text part
uses the synthetic tiny BERT, so it is a small share of the total.

    python bench/bench_extract.py --clips 4 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(videos: str, transcripts: str, bert: str, out: str, jobs: int, audio: str) -> None:
    sys.path.insert(0, str(ROOT))
    from mmsa_atsuko.data.extract import ExtractConfig, extract
    start = time.perf_counter()
    result = extract(videos, transcripts, out, bert=bert, config=ExtractConfig(audio=audio), jobs=jobs,
                     echo=lambda _: None)
    wall = time.perf_counter() - start
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps({"wall": wall, "cpu": cpu, "extracted": result.extracted}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--audio", default="opensmile")
    p.add_argument("--child", nargs=5)
    args = p.parse_args()
    if args.child:
        videos, transcripts, bert, out, jobs = args.child
        child(videos, transcripts, bert, out, int(jobs), args.audio)
        return
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from media_fixtures import write_video

    from mmsa_atsuko.data.tiny_bert import write_tiny_bert
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "videos").mkdir()
        write_video(tmp / "videos" / "clip0.mp4", seconds=10.0, size=(640, 480))
        for i in range(1, args.clips):
            (tmp / "videos" / f"clip{i}.mp4").write_bytes((tmp / "videos" / "clip0.mp4").read_bytes())
        (tmp / "t.csv").write_text("id,text,label\n" + "".join(f"clip{i},pos3a w001,1.0\n" for i in range(args.clips)))
        bert = write_tiny_bert(tmp / "bert")
        runs = {1: [], 2: []}
        for r in range(args.repeats):
            for jobs in (1, 2):
                out = tmp / f"out-{jobs}-{r}" / "f.pkl"
                done = subprocess.run([sys.executable, __file__, "--audio", args.audio, "--child", str(tmp / "videos"),
                                       str(tmp / "t.csv"), str(bert), str(out), str(jobs)],
                                      capture_output=True, text=True, check=True)
                runs[jobs].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for jobs, results in runs.items():
            walls = sorted(x["wall"] for x in results)
            wall, cpu = statistics.median(walls), statistics.median(x["cpu"] for x in results)
            print(f"--jobs {jobs}: {args.clips} clips, wall {wall:.2f} s ({wall / args.clips:.2f} s/clip), "
                  f"CPU {cpu / args.clips:.2f} s/clip; all walls {[round(w, 2) for w in walls]}")


if __name__ == "__main__":
    main()
