"""The frame size an MPEG-4 part 2 stream declares in its Video Object Layer header (`vol_frame_size`).

MP4 keeps that header in the stream's extradata (the esds box) and FFmpeg's probe, which decodes no video
frame (`media._probe_decoders`), reports 0x0: without this, the limits on frame size and decoded pixels could
count only while decoding. A stream without a global header carries it in-band instead, in its first packet,
before the first VOP: the probe copies it into the extradata when it reads that packet, but a probe that stops
first (video starting after its 5 s of analysis) leaves the extradata empty, and `media.decode` reads the packet.
Read as FFmpeg's decoder reads it (libavcodec/mpeg4videodec.c, decode_vol_header after the start-code scan of
ff_mpeg4_parse_picture_header, which stops at the first VOP; ISO/IEC 14496-2, 6.2.3): marker bits are not
checked, since the decoder only warns about them, so the size read here is the size it will decode. The decoded
frames are still checked: a stream may change its size.
"""
from __future__ import annotations

# The VOL header's fields up to the frame size take at most 190 bits (with the optional VBV parameters).
VOL_HEADER_BYTES = 32
RECTANGULAR = 0                    # video_object_layer_shape
VOP_START_CODE = b"\x00\x00\x01\xb6"   # a picture: the decoder's scan for headers ends there


class _Bits:
    """Reads big-endian bit fields from the start of `data` (bits past its end read as 0)."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), 8 * len(data)

    def read(self, n: int) -> int:
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1) if self.left >= 0 else 0


def _vol_start(data: bytes) -> int | None:
    """Where the bytes after the first video_object_layer_start_code (00 00 01 20 to 2F) before the first VOP
    start code start: what follows a VOP start code is a picture, where the decoder looks for no VOL."""
    end = data.find(VOP_START_CODE)
    end = len(data) if end == -1 else end
    at = data.find(b"\x00\x00\x01", 0, end)
    while at != -1 and at + 3 < end:
        if 0x20 <= data[at + 3] <= 0x2F:
            return at + 4
        at = data.find(b"\x00\x00\x01", at + 3, end)
    return None


def vol_frame_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) of a rectangular VOL in `data` (a stream's extradata, or a packet that carries its VOL
    in-band), or None where it holds none before its first VOP, or declares no size."""
    data = data or b""
    start = _vol_start(data)
    if start is None:
        return None
    bits = _Bits(data[start:start + VOL_HEADER_BYTES])
    bits.read(1 + 8)                           # random_accessible_vol, video_object_type_indication
    if bits.read(1):                           # is_object_layer_identifier
        bits.read(4 + 3)                       # its verid and priority
    if bits.read(4) == 0xF:                    # aspect_ratio_info: extended, a width and height of 8 bits follow
        bits.read(8 + 8)
    if bits.read(1):                           # vol_control_parameters
        bits.read(2 + 1)                       # chroma_format, low_delay
        if bits.read(1):                       # vbv_parameters: bit rate, buffer size and occupancy, with markers
            bits.read(79)
    if bits.read(2) != RECTANGULAR:            # only a rectangular VOL declares its size
        return None
    bits.read(1)                               # marker
    resolution = bits.read(16)                 # vop_time_increment_resolution
    bits.read(1)                               # marker
    if bits.read(1):                           # fixed_vop_rate: an increment of as many bits as the resolution needs
        bits.read(max(1, (resolution - 1).bit_length()))
    bits.read(1)                               # marker
    width = bits.read(13)
    bits.read(1)                               # marker
    height = bits.read(13)
    if bits.left < 0 or not (width and height):      # cut short, or no size: the decoder keeps its own
        return None
    return width, height
