"""One video file, decoded within limits (`decode`): its audio as 16 kHz mono samples, and the frames sampled
at `fps`, each handed to the function that describes it (`frame_features.FaceFeatures`), since a clip's
frames are never all held. The sizes of the features (AUDIO_DIMS, VISION_DIM) stay here, where the
pipeline reads them; `frame_features` computes them.

A video file is hostile until proven otherwise: a few KB can declare an hour of silence or a
frame of 16000x16000 pixels. `decode` refuses (VideoError, so the video is skipped and
reported) a clip longer than `max_seconds` (MAX_CLIP_SECONDS unless `--max-clip-seconds`
says otherwise), with frames larger than MAX_PIXELS, or with more than MAX_FRAME_RATE frames a
second, or whose decoded pixels (frames times their size) are over the budget of `max_seconds` of DCI
4K at 30 fps (`pixel_budget`): the values the header declares are checked before decoding,
and the decoded audio, video time, frame count, frame size and pixels while decoding, since headers
lie. A clip over a limit is refused, never truncated.

Every library here is imported inside the functions that use it: the core install does not
have them (they are the `[extract]` extra).
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from ...errors import one_line
from .mpeg4_vol import vol_frame_size

SAMPLE_RATE = 16000
AUDIO_RATE = 25                    # audio frames per second (40 ms), the video rate of most clips
AUDIO_DIMS = {"opensmile": 25, "librosa": 29}
THUMB = 8                          # face thumbnail side
VISION_DIM = 1 + 4 + 2 + 1 + 2 + THUMB * THUMB
DETECT_WIDTH = 320                 # frames are downscaled to this width before face detection

# Limits on one clip (see the module docstring), so that a small hostile or mistaken file cannot
# hold gigabytes or hours of CPU. MOSI, MOSEI and CH-SIMS clips are utterances of seconds to a
# minute, and the padded file keeps 15 s by default (--audio-len 375, --vision-len 150): ten
# minutes is ten times the longest utterance, and holds 38 MB of 16 kHz float32 samples (twice
# that while they are joined) and 6000 vision rows at 10 fps. An hour of silence and a still
# frame fits in about 270 KB of MP4, and would hold 230 MB (460 MB while joined) before openSMILE
# even starts.
MAX_CLIP_SECONDS = 600.0           # the default of --max-clip-seconds
# 4096x4096 (16.8 MP) takes 4K UHD (3840x2160) and DCI 4K (4096x2160) either way up, and a
# square frame of that side; it refuses 8K (33 MP) and the giant frames a few KB can declare
# (FFmpeg's own ceiling is about 268 MP, 400 MB a yuv420p frame, and a decoder keeps several).
# A frame is downscaled to DETECT_WIDTH before face detection, so more pixels add cost, not
# features.
MAX_PIXELS = 4096 * 4096
# FFmpeg's own limit (max_pixels), on what a decoder may allocate for a frame, even while probing:
# twice ours, since it counts the buffer (whole macroblocks plus alignment: here a 160x120 H.264
# frame counts as 192x120) and a frame between the two is refused by `decode` by its own size, in
# a clear line.
DECODER_MAX_PIXELS = 2 * MAX_PIXELS


# Decoded video frames per second of the clip's timeline, plus one second's worth, at most. Each
# frame is decoded whether or not it is sampled, so a stream of a few-byte frames that all carry one
# timestamp (a 55 KB file holds 2000) would keep decoding, however long, without ever reaching
# the duration limit. Phones film slow motion at 240 fps; MOSI, MOSEI and CH-SIMS are 25-30 fps.
MAX_FRAME_RATE = 240

# Decoded pixels a clip may cost: those of DCI 4K (4096x2160, the widest 4K; UHD is 3840x2160) at
# 30 fps for --max-clip-seconds, plus one frame (frames at 0, 1/30, ..., S span S seconds: 30*S + 1
# of them), so a clip at or under 4K30 of allowed length always passes (`pixel_budget`). Each frame is
# decoded whole before it is sampled and downscaled, so frame size times frame count is the cost: 4K
# at 240 fps (both within the limits above) is a 163 KB file of 5 s that took 9.1 s and 529 MB to
# decode, and 600 s of it (~20 MB) about 18 minutes (bench/README.md, "Decoded-pixel budget").
BUDGET_FRAME_PIXELS = 4096 * 2160
DECODED_PIXELS_PER_SECOND = BUDGET_FRAME_PIXELS * 30


class VideoError(Exception):
    """A video that cannot be used: the message is one line for the skipped report."""


def too_long(limit: float, detail: str) -> str:
    """The one line of a clip over the duration limit (also said of a cached clip, by the pipeline)."""
    return (f"longer than the {limit:g} s limit of a clip ({detail}): cut it into utterances, "
            f"or raise --max-clip-seconds")


def _too_big(width: int, height: int) -> str:
    return (f"frames of {width}x{height} pixels, over the limit of {MAX_PIXELS:,} pixels a frame (4K fits): "
            f"scale the video down first, e.g. ffmpeg -i IN -vf scale=1280:-2 OUT")


def _too_many_frames(frames: int, seconds: float) -> str:
    return (f"{frames} video frames in {seconds:.2f} s of its timeline, over the limit of {MAX_FRAME_RATE} "
            f"frames a second: re-encode it at a normal rate with fresh timestamps, e.g. ffmpeg -i IN -r 30 OUT")


def _too_many_pixels(pixels: int, what: str, max_seconds: float) -> str:
    return (f"{pixels:,} pixels to decode ({what}), over the budget of {max_seconds:g} s of 4K at 30 fps "
            f"({pixel_budget(max_seconds):,}): scale it down and lower its frame rate first, e.g. "
            f"ffmpeg -i IN -vf scale=1280:-2 -r 30 OUT, or raise --max-clip-seconds")


def pixel_budget(max_seconds: float) -> int:
    """The decoded pixels a clip may cost under a limit of `max_seconds`: DECODED_PIXELS_PER_SECOND for
    each second and BUDGET_FRAME_PIXELS once (rounded up: a float's error never refuses an exact clip)."""
    return math.ceil(DECODED_PIXELS_PER_SECOND * max_seconds) + BUDGET_FRAME_PIXELS


def _declared_frames(video, seconds: float | None) -> tuple[int, str] | None:
    """(the video frames the header declares, how that was found): its frame count, else its duration
    (the stream's, else `seconds`) times its average frame rate; None when neither is declared."""
    if video.frames:
        return video.frames, f"{video.frames} frames"
    if video.duration and video.time_base:
        seconds = float(video.duration * video.time_base)
    rate = video.average_rate
    if seconds and rate:
        return math.ceil(seconds * float(rate)), f"{seconds:.1f} s at {float(rate):g} fps"
    return None


def _check_declared_size(width: int, height: int, frames: tuple[int, str] | None, max_seconds: float) -> None:
    """VideoError if a declared frame size (0x0: unknown) is over MAX_PIXELS, or with the frames the header
    declares (`_declared_frames`) over `pixel_budget(max_seconds)`."""
    if width * height > MAX_PIXELS:
        raise VideoError(_too_big(width, height))
    if frames and width * height * frames[0] > pixel_budget(max_seconds):
        raise VideoError(_too_many_pixels(width * height * frames[0], f"its header declares {frames[1]} "
                                          f"of {width}x{height}", max_seconds))


def _declared_seconds(container, *streams) -> float | None:
    """The longest duration the header declares for the decoded streams (else the file's), if any."""
    declared = [float(s.duration * s.time_base) for s in streams if s.duration and s.time_base]
    if not declared and container.duration:
        declared = [container.duration / 1_000_000]       # AV_TIME_BASE units
    return max(declared) if declared else None


@functools.cache
def _probe_decoders() -> str:
    """FFmpeg's audio decoders, comma-separated: the only decoders av.open's probe may open.

    The probe gets our `max_pixels` only for the streams a header names before it starts; a format
    that makes its streams while probing (FLV) had its first video frame decoded up to FFmpeg's own
    ceiling of about 268 MP: a 67 KB FLV declaring 16000x16000 took 208 MB (bench/README.md,
    "Probing a video file"). The format's codec_whitelist is the one setting FFmpeg hands to those
    decoders too, so video decoders are left off it. What the probe learnt by decoding a frame, our
    decoder learns from that frame; the list does not reach it (PyAV gives it a codec context of its own)."""
    import av
    names = set()
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, "r")
        except ValueError:       # av.codec.codec.UnknownCodecError: an encoder only
            continue
        if codec.type == "audio":
            names.add(codec.name)
    return ",".join(sorted(names))


def decode(path, fps: float, vision_features, max_seconds: float = MAX_CLIP_SECONDS,
           max_rows: int | None = None, progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(mono 16 kHz float32 samples, (frames, VISION_DIM) features of frames sampled at `fps`, the first
    `max_rows` of them (all without it), the clip's length in seconds: the longest of what its header declares,
    its decoded audio and its decoded video), or VideoError if the clip is over `max_seconds`, MAX_PIXELS,
    MAX_FRAME_RATE or `pixel_budget(max_seconds)`. The whole clip is decoded either way: its limits and its
    length count every frame. `progress(seconds decoded, seconds declared or None)`, if given, is called after
    each packet (`clip_progress.reporter`)."""
    import av      # [extract] extra

    # FFmpeg's decoders refuse a frame over DECODER_MAX_PIXELS before allocating it, in the
    # decoding below. The probe av.open runs never decodes a video frame (`_probe_decoders`), so the
    # size it reports is the header's or a parser's (H.264, HEVC, MPEG-2 read it from the stream),
    # or for MPEG-4 part 2 in MP4 (reported as 0x0) its VOL header's (`mpeg4_vol`): in the extradata, else
    # in-band in the first video packet, read before that packet is decoded; else 0x0, and our decoder
    # refuses a giant frame unallocated.
    if os.path.getsize(path) == 0:    # else FFmpeg's "InvalidDataError: [Errno 1094995529] Invalid data ..."
        raise VideoError("empty file (0 bytes)")
    limits = {"max_pixels": str(DECODER_MAX_PIXELS)}
    samples, rows = [], []
    n_samples, n_frames, n_pixels, first_time, video_seconds, declared, size_unknown = 0, 0, 0, None, 0.0, None, False
    try:
        with av.open(str(path), options=limits, container_options={"codec_whitelist": _probe_decoders()}) as container:
            if not container.streams.audio:      # a silent clip: every sample has audio features
                raise VideoError("no audio stream: give the clip a silent track, e.g. ffmpeg -i IN -f lavfi -i "
                                 "anullsrc=r=16000:cl=mono -shortest -c:v copy OUT")
            if not container.streams.video:
                raise VideoError("no video stream: every sample needs frames for its vision features")
            audio, video = container.streams.audio[0], container.streams.video[0]
            declared = _declared_seconds(container, audio, video)
            if declared is not None and declared > max_seconds:
                raise VideoError(too_long(max_seconds, f"its header declares {declared:.1f} s"))
            width, height = video.codec_context.width, video.codec_context.height
            vol_in_band = False          # the VOL is read from the first video packet, as the decoder reads it
            if width * height == 0 and video.codec_context.name == "mpeg4":     # MPEG-4 part 2 in MP4 says 0x0
                width, height = vol_frame_size(video.codec_context.extradata) or (0, 0)
                vol_in_band = width * height == 0
            size_unknown = width * height == 0
            frames = _declared_frames(video, declared)
            _check_declared_size(width, height, frames, max_seconds)
            budget = pixel_budget(max_seconds)
            video.codec_context.options = dict(limits)     # the decoder's own context refuses them too
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            next_time = 0.0
            for packet in container.demux(audio, video):
                if vol_in_band and packet.stream.type == "video" and packet.size:
                    vol_in_band = False      # the audio before it is decoded: its cost is bounded by max_seconds
                    width, height = vol_frame_size(bytes(packet)) or (0, 0)
                    size_unknown = width * height == 0
                    _check_declared_size(width, height, frames, max_seconds)
                for frame in packet.decode():
                    if packet.stream.type == "audio":
                        for f in resampler.resample(frame):
                            samples.append(f.to_ndarray().reshape(-1))
                            n_samples += len(samples[-1])
                        if n_samples > max_seconds * SAMPLE_RATE:
                            raise VideoError(too_long(max_seconds, "its audio runs past it"))
                        continue
                    if frame.width * frame.height > MAX_PIXELS:        # the stream grew past the header's size
                        raise VideoError(_too_big(frame.width, frame.height))
                    n_frames += 1
                    n_pixels += frame.width * frame.height
                    if n_pixels > budget:          # the header's frame count or rate lied, or was missing
                        raise VideoError(_too_many_pixels(n_pixels, f"{n_frames} frames decoded so far",
                                                          max_seconds))
                    if frame.time is not None:
                        if first_time is None:
                            first_time = frame.time
                        # Time since the first frame: a stream may start at any timestamp (MPEG-TS often does).
                        video_seconds = max(video_seconds, frame.time - first_time)
                        if video_seconds > max_seconds:
                            raise VideoError(too_long(max_seconds, "its video runs past it"))
                    # Frames that do not move the clock (one timestamp for all, or none) escape the
                    # duration limit; counted against the time they cover, they cannot.
                    if n_frames > (video_seconds + 1.0) * MAX_FRAME_RATE:
                        raise VideoError(_too_many_frames(n_frames, video_seconds))
                    if frame.time is None:
                        continue
                    if frame.time + 1e-6 >= next_time and (max_rows is None or len(rows) < max_rows):
                        # Scaled by the decoder's own converter in the same pass as the gray conversion.
                        scale = min(1.0, DETECT_WIDTH / frame.width)
                        gray = frame.to_ndarray(format="gray", width=max(1, round(frame.width * scale)),
                                                height=max(1, round(frame.height * scale)))
                        rows.append(vision_features(gray))
                        # The next slot of the 1/fps grid after this frame: slots a gap in the video
                        # skipped stay skipped. Computed, not stepped to: a first timestamp of 1e9 s
                        # took 1e10 steps (a 1.5 KB file hung decode).
                        next_time = (math.floor((frame.time + 1e-6) * fps) + 1) / fps
                if progress is not None:
                    progress(max(video_seconds, n_samples / SAMPLE_RATE), declared)
            for f in resampler.resample(None):
                samples.append(f.to_ndarray().reshape(-1))
                n_samples += len(samples[-1])
    except VideoError:
        raise
    except Exception as e:   # PyAV raises many types (InvalidDataError, OSError, ...): each is a skip
        hint = (f"; its frame size was unknown after probing: it may be far over the limit of {MAX_PIXELS:,} "
                f"pixels a frame (4K fits)" if size_unknown else "")
        raise VideoError(f"cannot decode: {one_line(e)}{hint}") from None
    seconds = max(declared or 0.0, n_samples / SAMPLE_RATE, video_seconds)
    if seconds > max_seconds:                # the resampler's last samples
        raise VideoError(too_long(max_seconds, "its audio runs past it"))
    audio_samples = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    if len(audio_samples) < SAMPLE_RATE // AUDIO_RATE:
        raise VideoError("audio stream holds less than one 40 ms frame")
    if not rows:
        raise VideoError("no video frame decoded")
    return audio_samples.astype(np.float32, copy=False), np.stack(rows).astype(np.float32), seconds
