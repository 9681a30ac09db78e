"""Short videos written with PyAV for the extraction and prediction tests.

A "face" video shows a cartoon face (light oval, dark eyes and brows, a mouth) swaying left
and right: OpenCV's frontal-face Haar cascade finds it in every frame. A "no face" video shows
moving stripes. Each video has a mono track of a pure tone plus a little noise, so the pitch
the audio features report is known: 12 * log2(f / 27.5 Hz) semitones in eGeMAPS.
"""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest

REQUIRE_ENV = "MMSA_ATSUKO_REQUIRE_EXTRACT"
SECONDS, FPS, SIZE, SAMPLE_RATE = 1.2, 25, (160, 120), 16000


def require_extract() -> None:
    """Skip without the [extract] extra; where CI sets MMSA_ATSUKO_REQUIRE_EXTRACT=1, fail instead."""
    for module in ("av", "cv2", "opensmile"):
        if os.environ.get(REQUIRE_ENV) == "1":
            __import__(module)
        else:
            pytest.importorskip(module, reason="the [extract] extra is not installed")


def cartoon_face(height: int, width: int, cx: int, cy: int, size: int) -> np.ndarray:
    import cv2
    img = np.full((height, width, 3), 40, np.uint8)
    cv2.ellipse(img, (cx, cy), (int(size * 0.75), size), 0, 0, 360, (150, 170, 200), -1)
    for dx in (-0.32, 0.32):
        cv2.ellipse(img, (cx + int(dx * size), cy - int(0.2 * size)), (int(0.16 * size), int(0.08 * size)),
                    0, 0, 360, (30, 30, 30), -1)
        cv2.line(img, (cx + int((dx - 0.18) * size), cy - int(0.38 * size)),
                 (cx + int((dx + 0.18) * size), cy - int(0.38 * size)), (40, 40, 40), max(2, int(0.05 * size)))
    cv2.line(img, (cx, cy - int(0.1 * size)), (cx, cy + int(0.2 * size)), (120, 140, 170), 3)
    cv2.ellipse(img, (cx, cy + int(0.45 * size)), (int(0.3 * size), int(0.08 * size)), 0, 0, 360,
                (60, 60, 120), -1)
    return img


def write_video(path, *, face: bool = True, tone: float = 220.0, seconds: float = SECONDS, size=SIZE,
                seed: int = 0, codec: str = "mpeg4", fps: int = FPS, streams: str = "video audio",
                video_start: float = 0.0, in_band: bool = False) -> None:
    """A clip of `seconds` (see the module docstring). `video_start`: its frames start that late (at `fps`, to
    `seconds`), its audio at 0. `in_band`: the encoder writes no global header, so MPEG-4 part 2 and H.264 carry
    theirs (VOL; SPS, PPS) in the stream, in front of each key frame, and not in the container's extradata."""
    import av
    from fractions import Fraction
    width, height = size
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        if "video" in streams:
            video = container.add_stream(codec, rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            if in_band:
                video.codec_context.flags = 0        # add_stream set GLOBAL_HEADER, the only flag, for MP4
        if "audio" in streams:
            audio = container.add_stream("aac", rate=SAMPLE_RATE)
            audio.layout = "mono"
        first = round(video_start * fps)
        for i in range(int(seconds * fps) - first if "video" in streams else 0):
            if face:
                img = cartoon_face(height, width, width // 2 + int(8 * np.sin(i / 4)), height // 2,
                                   int(min(size) * 0.3))
            else:
                img = np.full((height, width, 3), (i * 7) % 200, np.uint8)
                img[:, (i * 5) % width] = 255
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if first:
                frame.pts, frame.time_base = first + i, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode() if "video" in streams else ():
            container.mux(packet)
        if "audio" not in streams:
            return
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        signal = (0.3 * np.sin(2 * np.pi * tone * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
        for start in range(0, len(signal), 1024):
            frame = av.AudioFrame.from_ndarray(signal[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)



def write_flv_declaring(path, width: int, height: int, **video) -> None:
    """write_video's clip as FLV (Sorenson H.263 video, AAC audio) whose every picture header declares
    width x height, in the header's 16-bit custom size: tens of KB that declare any frame up to 65535
    pixels a side. The pictures' own data stays that of the real size, so a decoder that allocates the
    declared frame fails soon after."""
    real = path.with_name(path.stem + "-real.flv")
    write_video(real, codec="flv", **video)
    data, out, pos = real.read_bytes(), bytearray(), 13       # FLV header (9 bytes) and PreviousTagSize0
    out += data[:pos]
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        tag, body = bytearray(data[pos:pos + 11]), data[pos + 11:pos + 11 + size]
        if tag[0] == 9 and body[0] & 0x0F == 2:       # a video tag of codec 2, Sorenson H.263
            bits, total = int.from_bytes(body[1:], "big"), 8 * (size - 1)
            size_code = bits >> (total - 33) & 7         # after 17 bits of start code, 5 of version, 8 of time
            rest = total - 33 - (16 if size_code == 0 else 32 if size_code == 1 else 0)
            header = (bits >> (total - 30)) << 3 | 1         # size code 1: 16-bit width and height follow
            picture = ((header << 32 | width << 16 | height) << rest) | (bits & ((1 << rest) - 1))
            length = 65 + rest
            body = body[:1] + (picture << (-length % 8)).to_bytes((length + 7) // 8, "big")
            tag[1:4] = len(body).to_bytes(3, "big")
        out += tag + body + (11 + len(body)).to_bytes(4, "big")
        pos += 11 + size + 4
    path.write_bytes(bytes(out))
    real.unlink()


def _ebml_number(data: bytes, at: int, keep_marker: bool) -> tuple[int, int]:
    """(the EBML variable-length number at `at`, where the bytes after it start): an element's id keeps
    the length marker bit, its size drops it."""
    length = 9 - data[at].bit_length()
    value = int.from_bytes(data[at:at + length], "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), at + length


def _ebml_child(data: bytes, start: int, end: int, element_id: int) -> tuple[int, int]:
    """(where the data of the first `element_id` element between `start` and `end` starts, its size)."""
    while start < end:
        found, at = _ebml_number(data, start, keep_marker=True)
        size, at = _ebml_number(data, at, keep_marker=False)
        if found == element_id:
            return at, size
        start = at + size
    raise AssertionError(f"no EBML element {element_id:#x}")


def set_mkv_duration(path, milliseconds: float) -> None:
    """Rewrite the Duration (a float in ms) that a Matroska file's Segment Info declares. Found by walking
    the elements, not by searching for its id's bytes: the muxer writes a random SegmentUID and CRC-32s,
    and about 1 file in 1,400 held those two bytes elsewhere too (a flaky test)."""
    import struct
    data = bytearray(path.read_bytes())
    header, size = _ebml_child(data, 0, len(data), 0x1A45DFA3)         # EBML header, then the Segment
    segment, size = _ebml_child(data, header + size, len(data), 0x18538067)
    info, size = _ebml_child(data, segment, min(segment + size, len(data)), 0x1549A966)   # a size may be 'unknown'
    at, size = _ebml_child(data, info, info + size, 0x4489)
    data[at:at + size] = struct.pack({8: ">d", 4: ">f"}[size], milliseconds)
    path.write_bytes(bytes(data))


# id -> (face, tone Hz, label, split, text); clip03 has no face in any frame.
CLIPS = {
    "clip00": (True, 220.0, -2.0, "train", "pos3a w001 w002"),
    "clip01": (True, 330.0, 1.5, "train", "neg2b w003"),
    "clip02": (True, 220.0, 0.0, "train", "w004 pos1c"),
    "clip03": (False, 330.0, -1.0, "train", "neg8a neg8b w005 w006"),
    "clip04": (True, 220.0, 3.0, "train", "pos8d"),
    "clip05": (True, 330.0, -3.0, "valid", "w007 w008 neg5a"),
    "clip06": (True, 220.0, 2.0, "valid", "pos4b w009"),
    "clip07": (True, 330.0, 0.5, "test", "w010 neg1a"),
}
NO_FACE = "clip03"
BROKEN, GHOST = "broken", "ghost"     # a corrupt video file; a transcript row without a video


def write_corpus(root, *, labels: bool = True, splits: bool = True) -> tuple:
    """(video folder, transcripts CSV) of CLIPS, plus BROKEN (corrupt) and GHOST (no video)."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for i, (clip, (face, tone, *_)) in enumerate(CLIPS.items()):
        if not (videos / f"{clip}.mp4").exists():
            write_video(videos / f"{clip}.mp4", face=face, tone=tone, seed=i)
    (videos / f"{BROKEN}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 8)
    rows = [{"id": clip, "text": text, "label": label, "split": split}
            for clip, (_, _, label, split, text) in CLIPS.items()]
    rows += [{"id": BROKEN, "text": "w011", "label": 1.0, "split": "test"},
             {"id": GHOST, "text": "w012", "label": -1.0, "split": "test"}]
    columns = ["id", "text"] + (["label"] if labels else []) + (["split"] if splits else [])
    csv_path = root / f"transcripts{'' if labels else '-unlabelled'}{'' if splits else '-nosplit'}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return videos, csv_path
