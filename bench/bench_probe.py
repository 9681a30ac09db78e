"""Peak memory of probing and decoding an FLV that declares a giant frame (a few KB of hostile header).

    python bench/bench_probe.py [--sizes 160x120 4096x4096 5000x5000 16000x16000]

FLV makes its streams while FFmpeg probes it (avformat_find_stream_info), so the probe's decoders get
none of the options av.open passes for streams (our max_pixels): before, the probe decoded the first
frame at whatever size the picture header declared, up to FFmpeg's own ceiling of about 268 MP. Each
file is write_video's 1.2 s clip as FLV (Sorenson H.263 + AAC; tests/media_fixtures.py) with every
picture header rewritten to declare the size. Each measurement is a fresh process: the peak RSS
growth over the RSS after its imports (peak reset by /proc/self/clear_refs, as bench_hostile.py does), for

- `decode`: `media.decode` as extract calls it (today's probe, then the decode it refuses or runs);
- `open before`: `av.open` with decode's options and no codec whitelist, the probe decode ran before.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import re, sys, time
import av, numpy as np
from mmsa_atsuko.data.extract import media

def status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\\s+(\\d+)", f.read()).group(1)) / 1024       # MB

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                    # peak RSS := RSS now, so memory the imports freed hides nothing
start, t = status("VmRSS"), time.perf_counter()
if sys.argv[2] == "decode":
    try:
        rows = len(media.decode(sys.argv[1], 10.0, lambda g: np.zeros(media.VISION_DIM, np.float32))[1])
        outcome = f"{rows} vision rows"
    except media.VideoError as e:
        outcome = "skipped: " + str(e)[:70]
else:
    with av.open(sys.argv[1], options={"max_pixels": str(media.DECODER_MAX_PIXELS)}) as c:
        v = c.streams.video[0].codec_context
        outcome = f"probe says {v.width}x{v.height}"
print(f"{status('VmHWM') - start:.0f}\\t{time.perf_counter() - t:.2f}\\t{outcome}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["160x120", "4096x4096", "5000x5000", "16000x16000"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from media_fixtures import write_flv_declaring
    print("| declared | file | how | extra peak RSS | seconds | outcome |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = map(int, size.split("x"))
            path = Path(tmp) / f"{size}.flv"
            write_flv_declaring(path, width, height)
            for how in ("decode", "open before"):
                done = subprocess.run([sys.executable, "-c", CHILD, str(path), how.split()[0]], cwd=ROOT,
                                      capture_output=True, text=True, check=True)
                mb, seconds, outcome = done.stdout.strip().split("\t")
                print(f"| {size} | {path.stat().st_size / 1024:.0f} KB | {how} | {mb} MB | {seconds} | {outcome} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
