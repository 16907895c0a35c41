"""The second reader: python-exiv2 (libexiv2), loaded once per worker, reading the EXIF,
XMP and IPTC of a file the gate opened, through the descriptor's /proc name (as MediaInfo
does, mediad/extract/view.py: what was checked is what is read, never the path again).

What it gives back is bounded before it leaves: a hostile file can carry thousands of
tags, megabytes in one, NUL bytes and text that is not UTF-8 (PostgreSQL's jsonb refuses
both), so maker notes and large binary values are skipped, counts and lengths are capped.
The mapping of tags to summary fields is mediad/extract/camera.py's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# Bounds on what one file puts in the document (docs/schema.md, "The reader's tags").
MAX_TAGS = 300  # per family (exif, xmp, iptc)
MAX_VALUE_CHARS = 500  # longer text is cut, marked with "…"
MAX_BINARY_BYTES = 64  # larger Undefined and Byte values are left out (thumbnails, blobs)
# exiv2's own rendering of a video container's headers, not the file's tags: MediaInfo's
# document already says all of it.
_SKIPPED_PREFIXES = ("Xmp.video.", "Xmp.audio.")
_BINARY_TYPES = frozenset({"Undefined", "Byte", "SByte", "Blob"})


@dataclass
class Tags:
    """The tags of one file or sidecar, each family key -> value text, in file order."""

    exif: dict[str, str] = field(default_factory=dict)
    xmp: dict[str, str] = field(default_factory=dict)
    iptc: dict[str, str] = field(default_factory=dict)
    width: int = 0
    height: int = 0
    mime_type: str = ""
    cut: int = 0  # tags left out or shortened by the bounds

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, tags in (("exif", self.exif), ("xmp", self.xmp), ("iptc", self.iptc)):
            if tags:
                found[name] = tags
        if self.cut:
            found["cut"] = self.cut
        return found


_loaded: list[Any] = []  # this process's exiv2 module, once prepared


def prepare() -> Any:
    """Import and set up libexiv2 now (a worker's start, before its memory limit): a
    library that cannot be loaded is the worker's error, not a file's. Its log goes
    nowhere (it would write warnings about hostile files on the worker's stderr)."""
    if _loaded:
        return _loaded[0]
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    exiv2.XmpParser.initialize()
    _loaded.append(exiv2)
    return exiv2


_version: list[str] = []


def version() -> str:
    if not _version:
        exiv2 = prepare()
        _version.append(f"python-exiv2 {exiv2.__version__}, libexiv2 {exiv2.versionString()}")
    return _version[0]


def clean(text: str) -> str:
    """Text PostgreSQL's jsonb takes: no NUL, no lone surrogate, at most MAX_VALUE_CHARS."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    if not text.isascii():  # most tags are: no encoding needed to know they are storable
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


# EXIF groups (the middle of `Exif.Group.Tag`) and whether exiv2 decoded them from a
# maker note: the undocumented vendor formats, the largest and least trusted part of a
# photo's EXIF. Asked once per group name, not per tag.
_maker_groups: dict[str, bool] = {}


def _is_maker(key: str) -> bool:
    if "MakerNote" in key:
        return True
    group = key.split(".", 2)[1] if key.count(".") >= 2 else ""
    maker = _maker_groups.get(group)
    if maker is None:
        maker = bool(prepare().ExifTags.isMakerGroup(group))
        if len(_maker_groups) < 1000:  # group names come from the file: bounded
            _maker_groups[group] = maker
    return maker


def _collect(data: Any, into: dict[str, str], tags: Tags, exif: bool = False) -> None:
    for datum in data:
        key = str(datum.key())
        if key.startswith(_SKIPPED_PREFIXES):
            continue
        if len(into) >= MAX_TAGS or (exif and _is_maker(key)):
            tags.cut += 1
            continue
        if datum.typeName() in _BINARY_TYPES and datum.size() > MAX_BINARY_BYTES:
            tags.cut += 1
            continue
        try:
            text = str(datum.toString())
        except (UnicodeDecodeError, ValueError):
            tags.cut += 1
            continue
        if len(text) > MAX_VALUE_CHARS:
            tags.cut += 1
        into[clean(key)] = clean(text)


# Enough of a file's start for exiv2 to tell its type (its QuickTime check reads 12 bytes).
HEAD_BYTES = 4096


def headers_only(fd: int) -> bool:
    """Whether exiv2 would read the opened file with its QuickTime parser: every tag that
    parser makes is its rendering of the container's headers (`Xmp.video.*`,
    `Xmp.audio.*`, left out above), so reading such a file (about 450 µs of CPU per
    video) adds nothing. Decided as exiv2's ImageFactory decides, from the first bytes,
    read through the descriptor. ISO BMFF files it reads with its BMFF parser (HEIF,
    AVIF, CR3, `iso5` fragments) are not headers-only: that parser reads EXIF and XMP."""
    exiv2 = prepare()
    head = os.pread(fd, HEAD_BYTES, 0)
    return bool(exiv2.ImageFactory.getType(head) == exiv2.ImageType.qtime)


# A file up to this size is read whole through the descriptor and parsed from memory: for
# a photo that saves exiv2's own open of the /proc name and its type checks by file reads,
# about 15 µs of 50. A larger one is read by exiv2 through the /proc name, a piece at a
# time (a 500 MB TIFF is never held whole).
MAX_IN_MEMORY_BYTES = 1 << 20


def _open(source: str | bytes) -> Any:
    image = prepare().ImageFactory.open(source)
    image.readMetadata()
    return image


def read_descriptor(fd: int, size: int = 0) -> Tags:
    """The tags of the opened file `fd` of `size` bytes (0: unknown). Raises
    exiv2.Exiv2Error (unknown type, damaged data), OSError, or what a binding raises on
    a value it cannot convert."""
    data = os.pread(fd, size, 0) if 0 < size <= MAX_IN_MEMORY_BYTES else None
    # `data` stays referenced until the tags are copied out: exiv2 reads it in place.
    image = _open(f"/proc/self/fd/{fd}" if data is None else data)
    tags = Tags(mime_type=str(image.mimeType()))
    _collect(image.exifData(), tags.exif, tags, exif=True)
    _collect(image.xmpData(), tags.xmp, tags)
    _collect(image.iptcData(), tags.iptc, tags)
    tags.width, tags.height = int(image.pixelWidth()), int(image.pixelHeight())
    del image, data
    return tags


SIDECAR_TYPE = "application/rdf+xml"


def _xmp_only(source: str | bytes) -> Tags:
    image = _open(source)
    if image.mimeType() != SIDECAR_TYPE:
        raise ValueError(f"not an XMP packet but {image.mimeType()}")
    tags = Tags(mime_type=SIDECAR_TYPE)
    _collect(image.xmpData(), tags.xmp, tags)
    return tags


def read_sidecar(fd: int) -> Tags:
    """The XMP properties of the opened sidecar `fd` (exiv2 also copies some into EXIF
    tags of its own making: not the file's, left out). Raises as `read_descriptor`, and
    ValueError when the file is not XMP."""
    return _xmp_only(f"/proc/self/fd/{fd}")


def read_packet(packet: bytes) -> Tags:
    """The XMP properties of a packet found in a file (mediad/extract/bmff_xmp.py), parsed
    from memory as a sidecar is. Raises as `read_sidecar`."""
    return _xmp_only(packet)
