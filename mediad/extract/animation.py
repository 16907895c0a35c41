"""Frame count and duration of animated GIF, APNG and animated WebP (issue 19).

MediaInfo (24.12) reports neither for these formats, nor does exiv2, so the structure is
walked here: GIF blocks, PNG chunks, RIFF chunks. It reads the descriptor the gate opened,
with `os.pread` only (never by path), a block header at a time through a 64 KiB window, so
a 500 MB GIF is never held in memory; apart from those reads it is pure.

Rules, chosen to agree with exiftool (`-GIF:FrameCount -GIF:Duration -PNG:AnimationFrames
-RIFF:Duration`) and never to guess:

- Fewer than two frames is a still image: (None, None), not (1, None).
- A total delay of 0 is no stated duration: (frames, None). exiftool gives no GIF Duration
  then either (for WebP it states 0); browsers play such frames at about 10 a second, which
  would be a guess.
- GIF: frames are the image descriptors, the duration the sum of the Graphic Control
  Extensions' delays (1/100 s) as written. A delay of 0 or 1 counts as written, as in
  exiftool, although browsers show such a frame for 0.1 s.
- APNG: frames are acTL's num_frames, and must match the fcTL chunks (CRC checked); each
  delay is delay_num / delay_den, a den of 0 meaning 100.
- WebP: only with VP8X's animation flag; frames are the ANMF chunks, each with a 24-bit
  duration in ms. exiftool 12.57 keeps 12 bits of it, so they differ for a frame of 4096 ms
  or more.
- A damaged or truncated file (a block past the end, no GIF trailer or PNG IEND, a RIFF
  size past the file), or one past the caps below, gives (None, None), never a partial
  count, and nothing here raises on hostile input.
"""

from __future__ import annotations

import os
import struct
import zlib

WINDOW = 64 * 1024
MAX_FRAMES = 1_000_000
MAX_STEPS = 4_000_000  # blocks, sub-blocks and chunks walked: about 1 GB of full GIF blocks

Result = tuple[int | None, float | None]
NONE: Result = (None, None)


class _Bad(Exception):
    """The structure is broken, truncated or past a cap: no value."""


class _Reader:
    """Bytes at an offset of the descriptor, read through a window, within the file."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.start, self.buf = 0, b""
        self.steps = 0

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or pos + n > self.size:
            raise _Bad
        offset = pos - self.start
        if offset < 0 or offset + n > len(self.buf):
            self.buf, self.start, offset = os.pread(self.fd, max(n, WINDOW), pos), pos, 0
            if len(self.buf) < n:  # the file shrank under us
                raise _Bad
        return self.buf[offset : offset + n]

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Bad


def _result(frames: int, duration: float) -> Result:
    if frames < 2:
        return NONE
    return frames, (round(duration, 6) if duration > 0 else None)


def _gif_sub_blocks(r: _Reader, pos: int) -> int:
    """The offset after a chain of sub-blocks (each a length byte, 0 ending the chain).
    Walked in the window's bytes directly: image data is most of a GIF's blocks."""
    while True:
        r.read(pos, 1)  # brings pos into the window, or raises past the end
        buf, offset = r.buf, pos - r.start
        while offset < len(buf):
            r.step()
            n = buf[offset]
            offset += 1 + n
            if n == 0:
                return r.start + offset
        pos = r.start + offset


def _gif(r: _Reader) -> Result:
    if r.read(0, 6) not in (b"GIF87a", b"GIF89a"):
        return NONE
    flags = r.read(10, 1)[0]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    frames = centiseconds = 0
    while True:
        r.step()
        intro = r.read(pos, 1)[0]
        if intro == 0x3B:  # trailer
            return _result(frames, centiseconds / 100)
        if intro == 0x2C:  # image descriptor, local colour table, LZW code size, data
            frames += 1
            if frames > MAX_FRAMES:
                raise _Bad
            local = r.read(pos + 9, 1)[0]
            pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0)
            r.read(pos, 1)  # the LZW minimum code size
            pos = _gif_sub_blocks(r, pos + 1)
        elif intro == 0x21:  # extension: label, then sub-blocks
            label, length = r.read(pos + 1, 2)
            if label == 0xF9 and length == 4:  # Graphic Control: packed, delay, colour
                centiseconds += struct.unpack("<H", r.read(pos + 4, 2))[0]
            pos = _gif_sub_blocks(r, pos + 2)
        else:
            raise _Bad


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(r: _Reader, pos: int, length: int, kind: bytes) -> bytes:
    """A small chunk's data, its CRC checked (a flipped bit must not become a delay)."""
    data = r.read(pos + 8, length)
    if zlib.crc32(kind + data) != struct.unpack(">I", r.read(pos + 8 + length, 4))[0]:
        raise _Bad
    return data


def _png(r: _Reader) -> Result:
    if r.read(0, 8) != PNG_SIGNATURE:
        return NONE
    pos, declared, frames, seconds = 8, None, 0, 0.0
    while True:
        r.step()
        length, kind = struct.unpack(">I4s", r.read(pos, 8))
        if length > 0x7FFFFFFF:
            raise _Bad
        if kind == b"acTL" and length == 8:
            declared = struct.unpack(">I", _png_chunk(r, pos, 8, kind)[:4])[0]
        elif kind == b"IDAT" and declared is None:
            return NONE  # acTL must come before the image data: a still PNG
        elif kind == b"fcTL" and length == 26:
            num, den = struct.unpack(">HH", _png_chunk(r, pos, 26, kind)[20:24])
            frames += 1
            seconds += num / (den or 100)
            if frames > MAX_FRAMES:
                raise _Bad
        elif kind == b"IEND":
            # The chunk is whole: its CRC is within the file. Only those 4 bytes are read,
            # whatever length it claims (a lying one would have the whole file in memory).
            r.read(pos + 8 + length, 4)
            return _result(frames, seconds) if frames == declared else NONE
        pos += 12 + length


def _webp(r: _Reader) -> Result:
    riff, riff_size, webp = struct.unpack("<4sI4s", r.read(0, 12))
    if riff != b"RIFF" or webp != b"WEBP":
        return NONE
    end = 8 + riff_size
    if end > r.size:
        raise _Bad  # truncated
    first, first_size = struct.unpack("<4sI", r.read(12, 8))
    if first != b"VP8X" or first_size < 10 or not r.read(20, 1)[0] & 0x02:
        return NONE  # a simple (lossy or lossless) WebP, or no animation flag
    pos, frames, ms = 12, 0, 0
    while pos + 8 <= end:
        r.step()
        kind, length = struct.unpack("<4sI", r.read(pos, 8))
        if pos + 8 + length > end:
            raise _Bad
        if kind == b"ANMF":
            if length < 16:
                raise _Bad
            frames += 1
            ms += int.from_bytes(r.read(pos + 8 + 12, 3), "little")
            if frames > MAX_FRAMES:
                raise _Bad
        pos += 8 + length + (length & 1)
    return _result(frames, ms / 1000)


_PARSERS = {"GIF": _gif, "PNG": _png, "WebP": _webp}


def animation_of(fd: int, size: int, container: str | None) -> tuple[int | None, float | None]:
    """(frame_count, duration_s) of an animated GIF, APNG or WebP open on `fd` (`size`
    bytes), chosen by MediaInfo's General Format (`container`: "GIF", "PNG" for APNG too,
    "WebP"); (None, None) for anything else, a still image, or a damaged file (see the
    module's docstring for the rules)."""
    parser = _PARSERS.get(container or "")
    if parser is None or size <= 0:
        return NONE
    try:
        return parser(_Reader(fd, size))
    except (_Bad, OSError):
        return NONE
