"""The XMP packet of an MPEG-4 or QuickTime file, found by walking its boxes through the
gate's descriptor (os.pread only): exiv2's QuickTime parser, which these files would get,
renders only the container's headers (mediad/extract/reader.py: headers_only), so the
packet Adobe's tools and exiftool embed is looked for here.

Where it is: a top-level `uuid` box with XMP's UUID (MP4, ISO 14496-12's place for it),
or `moov/udta/XMP_` (QuickTime .mov, as Adobe and exiftool write it). Nothing else is
opened: the walk goes down only that path, so it cannot loop or nest deeper, and it
stops after MAX_BOXES boxes. The file is attacker-controlled: a size that does not add
up ends the walk at that box, and no input raises.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
MAX_PACKET_BYTES = 1 << 20  # as an XMP sidecar (mediad/extract/sidecar.py)
MAX_BOXES = 1000  # all levels together: a file of tiny boxes ends the walk here
_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")
# The boxes to go into on the way to QuickTime's XMP_, by the depth they are at.
_PATH = (b"moov", b"udta")


class _Walk:
    """What one walk has spent: boxes read, shared by every level."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.boxes = 0

    def boxes_in(self, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        """Each box in [start, end) as (type, payload start, box end), up to the first
        whose size does not add up (smaller than its header, past `end`) or the
        MAX_BOXES-th: the boxes before a truncated `mdat` still count."""
        offset = start
        while offset + _HEADER.size <= end and self.boxes < MAX_BOXES:
            self.boxes += 1
            head = os.pread(self.fd, 16, offset)
            if len(head) < _HEADER.size:
                return
            size, kind = _HEADER.unpack_from(head)
            header = _HEADER.size
            if size == 1:  # 64-bit largesize follows the type
                if len(head) < 16:
                    return
                (size,) = _LARGE.unpack_from(head, 8)
                header = 16
            elif size == 0:  # the box runs to the end of its parent (of the file)
                size = end - offset
            if size < header or offset + size > end:
                return
            yield kind, offset + header, offset + size
            offset += size


def _payload(fd: int, start: int, end: int) -> bytes | None:
    if end - start > MAX_PACKET_BYTES or end <= start:
        return None
    data = os.pread(fd, end - start, start)
    return data if len(data) == end - start else None


def _in_udta(walk: _Walk, start: int, end: int, depth: int = 0) -> bytes | None:
    for kind, payload, box_end in walk.boxes_in(start, end):
        if depth == len(_PATH) and kind == b"XMP_":
            return _payload(walk.fd, payload, box_end)
        if depth < len(_PATH) and kind == _PATH[depth]:
            return _in_udta(walk, payload, box_end, depth + 1)
    return None


def xmp_packet(fd: int, size: int) -> bytes | None:
    """The XMP packet of the file open at `fd` (`size` bytes), as the file stores it
    (exiv2 parses it from memory: mediad/extract/reader.py), or None when it has none,
    the packet is over MAX_PACKET_BYTES, or the boxes stop adding up before it."""
    try:
        walk = _Walk(fd)
        for kind, payload, box_end in walk.boxes_in(0, size):
            if kind == b"uuid" and os.pread(fd, 16, payload) == XMP_UUID:
                return _payload(fd, payload + 16, box_end)
            if kind == b"moov":
                packet = _in_udta(walk, payload, box_end, 1)
                if packet is not None:
                    return packet
    # A read the file refuses (an I/O error); an offset pread cannot take, which the
    # size checks above already rule out: no packet, the row stands.
    except (OSError, OverflowError, ValueError):
        return None
    return None
