"""What reading an MPEG-4 part 2 stream's VOL header costs (`mpeg4_vol.vol_frame_size`), against the av.open
`media.decode` runs and against decoding the whole 1.2 s clip, in one process, side by side (bench/README.md)."""
import os
import pathlib
import sys
import timeit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import av  # noqa: E402
import numpy as np  # noqa: E402
from media_fixtures import write_video  # noqa: E402

from mmsa_atsuko.data.extract import media  # noqa: E402
from mmsa_atsuko.data.extract.mpeg4_vol import vol_frame_size  # noqa: E402

clip = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench_vol.mp4")
write_video(clip, size=(640, 480), seconds=1.2)
with av.open(str(clip)) as c:
    ed = c.streams.video[0].codec_context.extradata


def opened():
    with av.open(str(clip), options={"max_pixels": str(media.DECODER_MAX_PIXELS)},
                 container_options={"codec_whitelist": media._probe_decoders()}) as c:
        c.streams.video[0].codec_context.width


def zeros(gray):
    return np.zeros(media.VISION_DIM, np.float32)


for _ in range(3):
    parse = min(timeit.repeat(lambda: vol_frame_size(ed), number=10000, repeat=5)) / 10000
    open_ = min(timeit.repeat(opened, number=50, repeat=5)) / 50
    dec = min(timeit.repeat(lambda: media.decode(clip, 10.0, zeros), number=3, repeat=3)) / 3
    print(f"parse {parse*1e6:.2f} us; av.open {open_*1e3:.3f} ms ({parse/open_:.4f}x); "
          f"decode 1.2 s 640x480 {dec*1e3:.1f} ms ({parse/dec:.6f}x); load {os.getloadavg()[0]:.1f}")
