"""The second reader's part of an extraction, after MediaInfo has read the file: its tags
(mediad/extract/reader.py) and those of an XMP sidecar (mediad/extract/sidecar.py) as
summary fields (mediad/extract/camera.py) and under the document's `reader` key.

It only adds: whatever goes wrong in it (an exception, a file exiv2 cannot read, a
sidecar it cannot open) leaves its fields absent and says why in the document; the row is
MediaInfo's and stays done (docs/schema.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from mediad.extract import reader
from mediad.extract.animation import animation_of
from mediad.extract.bmff_xmp import xmp_packet
from mediad.extract.camera import apply_layers, exif_fields, xmp_fields
from mediad.extract.camera_values import Fields
from mediad.extract.options import ExtractOptions
from mediad.extract.sidecar import open_sidecar
from mediad.models import Failure, Fingerprint

# MediaInfo's names of the formats the reader can add something to, in lower case
# (MediaInfo names HEIF and AVIF files by their brand: "heic", "avif"). Raw files and DNG
# are TIFF to it.
IMAGE_FORMATS = frozenset(
    {
        "jpeg",
        "png",
        "webp",
        "tiff",
        "gif",
        "heif",
        "heic",
        "heix",
        "mif1",
        "msf1",
        "avif",
        "avis",
        "jpeg xl",
        "jpeg 2000",
        "dng",
    }
)
# Containers that carry EXIF or XMP beside their streams: read when they hold a picture,
# never an audio-only file (an .m4a).
CAMERA_CONTAINERS = frozenset({"mpeg-4", "quicktime"})
MAX_PIXELS_SIDE = 2**31 - 1  # the width and height columns are integer
_PROC_NAME = re.compile(r"/proc/(?:self|\d+)/fd/\d+:\s*")


@dataclass(frozen=True)
class SecondRead:
    document: str
    summary: dict[str, Any]
    reader_version: str | None = None  # set only when the reader read the file
    sidecar: Fingerprint | None = None


def wanted(summary: dict[str, Any]) -> bool:
    """Whether the reader can add something to this file, from MediaInfo's summary."""
    container = (summary.get("container") or "").lower()
    if container in IMAGE_FORMATS:
        return True
    if container in CAMERA_CONTAINERS:
        return bool(summary.get("video_tracks") or summary.get("image_tracks"))
    return False


def reason(exc: BaseException) -> str:
    """What went wrong, in one line, without the /proc name the file was read through."""
    args: tuple[Any, ...] = exc.args
    # exiv2.Exiv2Error's args are (code, message): the message says it.
    message = str(args[-1]) if len(args) == 2 and isinstance(args[-1], str) else str(exc)
    # A photo parsed from memory (reader.py) gets exiv2's "The memory contains data…":
    # the same file, the same words as when exiv2 read it by its /proc name.
    message = message.replace("The memory contains", "The file contains", 1)
    return reader.clean(_PROC_NAME.sub("", message) or type(exc).__name__)


def with_reader(document: str, part: dict[str, Any]) -> str:
    """MediaInfo's document (a JSON object, as text) with `"reader": part` added at its
    end, the rest of its text untouched."""
    end = document.rstrip().rfind("}")
    if end < 0:
        return document
    head = document[:end].rstrip()
    comma = "" if head.endswith("{") else ","
    return f'{head}{comma}"reader":{json.dumps(part)}}}'


def _read_sidecar(
    path: str, options: ExtractOptions
) -> tuple[dict[str, Any], Fields, Fingerprint | None]:
    """The sidecar's part of the document, its fields, and its fingerprint as a scan sees
    it (None when there is none)."""
    found = open_sidecar(path, options)
    if found is None:
        return {}, {}, None
    opened, seen = found
    if isinstance(opened, Failure):
        failed = {"path": opened.resolved_path or "", "error": opened.message}
        return {key: reader.clean(text) for key, text in failed.items()}, {}, seen
    fd, resolved, _ = opened
    part: dict[str, Any] = {"path": reader.clean(resolved)}
    try:
        tags = reader.read_sidecar(fd)
        # Mapped here too: whatever a hostile value makes the mapping raise is the
        # sidecar's error, never one out of the worker.
        fields = xmp_fields(tags.xmp.get, "xmp-sidecar")
    except Exception as exc:  # any failure of the parser: reason kept, row unharmed
        part["error"] = reason(exc)
        return part, {}, seen
    finally:
        os.close(fd)
    part.update(tags.as_json())
    return part, fields, seen


def _headers_only(fd: int, summary: dict[str, Any]) -> bool:
    """An MPEG-4 or QuickTime file exiv2 would read with its QuickTime parser, whose tags
    mediad leaves out (mediad/extract/reader.py: headers_only). Images never pay the
    check."""
    container = (summary.get("container") or "").lower()
    return container in CAMERA_CONTAINERS and reader.headers_only(fd)


def _embedded_xmp(fd: int, size: int) -> reader.Tags:
    """A file exiv2 would give nothing mediad keeps from: only its embedded XMP packet
    (a `uuid` box, QuickTime's `moov/udta/XMP_`), found by a walk of its boxes, is parsed;
    without one the document is the same, unread."""
    packet = xmp_packet(fd, size)
    return reader.Tags() if packet is None else reader.read_packet(packet)


def _animation(fd: int, size: int, summary: dict[str, Any]) -> None:
    """frame_count of an animated GIF, APNG or WebP, and its duration where MediaInfo
    states none (mediad/extract/animation.py: neither MediaInfo nor exiv2 gives them)."""
    frames, duration = animation_of(fd, size, summary.get("container"))
    if frames is not None:
        summary["frame_count"] = frames
    if duration is not None and summary.get("duration_s") is None:
        summary["duration_s"] = duration


def read_second(
    fd: int,
    size: int,
    path: str,
    document: str,
    summary: dict[str, Any],
    options: ExtractOptions,
) -> SecondRead:
    """The document and summary with the second reader's findings, for the file open at
    `fd` (the gate's descriptor, `size` bytes) whose MediaInfo `document` and `summary`
    are given. `path` is the row's: its sidecar is looked for beside it, where a scan
    looks (beside a symbolic link, not its target)."""
    if not options.second_reader or not wanted(summary):
        return SecondRead(document, summary)
    part: dict[str, Any] = {}
    layers: list[Fields] = []
    read_version: str | None = None
    summary = dict(summary)
    _animation(fd, size, summary)
    try:
        part["library"] = version = reader.version()  # loaded at the worker's start
        tags = (
            _embedded_xmp(fd, size)
            if _headers_only(fd, summary)
            else reader.read_descriptor(fd, size)
        )
        # Mapped inside the try: a value the mapping cannot take is the reader's error too.
        # (Most files carry one family or none: no mapping for an empty one.)
        read_layers = [
            exif_fields(tags.exif.get) if tags.exif else {},
            xmp_fields(tags.xmp.get) if tags.xmp else {},
        ]
    except Exception as exc:  # whatever the reader raises, MediaInfo's row stands
        part["error"] = reason(exc)
    else:
        read_version = version
        part.update(tags.as_json())
        layers = read_layers
        sized = 0 < tags.width <= MAX_PIXELS_SIDE and 0 < tags.height <= MAX_PIXELS_SIDE
        if sized and summary.get("width") is None:  # MediaInfo's size wins where it has one
            summary["width"], summary["height"] = tags.width, tags.height
    sidecar_part, sidecar_fields, sidecar = _read_sidecar(path, options)
    if sidecar_part:
        part["sidecar"] = sidecar_part
    apply_layers(summary, [sidecar_fields, *layers])
    return SecondRead(with_reader(document, part), summary, read_version, sidecar)
