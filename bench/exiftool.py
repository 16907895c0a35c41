"""exiftool as the oracle: what it reads from each file, as issue 19's fields.

exiftool needs Perl and a system package (Debian `libimage-exiftool-perl`, installed by
.ci/system-deps), so it is the reference the candidates are measured against, never a
dependency of mediad. One batch call reads every file (`-n`: numbers, not prose).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mediad.extract.camera_values import Fields, exif_date, offset_minutes, set_taken, xmp_date


def missing() -> str | None:
    """Why the oracle cannot run here, or None."""
    if shutil.which("exiftool") is None:
        return "exiftool is missing (Debian: apt-get install libimage-exiftool-perl)"
    return None


def version() -> str:
    return subprocess.run(
        ["exiftool", "-ver"], capture_output=True, text=True, check=True
    ).stdout.strip()


def read_tags(paths: Sequence[Path]) -> dict[Path, dict[str, Any]]:
    """Every tag of every file, keyed `Group1:Tag` (`-G1 -a`: duplicates kept apart)."""
    if not paths:
        return {}
    result = subprocess.run(
        ["exiftool", "-j", "-n", "-G1", "-a", "-q", "-q", "-charset", "filename=utf8", "--"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        check=False,
    )
    return {Path(entry["SourceFile"]): entry for entry in json.loads(result.stdout or "[]")}


def _taken(tags: dict[str, Any], fields: Fields) -> None:
    set_taken(
        fields,
        exif_date(tags.get("ExifIFD:DateTimeOriginal")),
        offset_minutes(tags.get("ExifIFD:OffsetTimeOriginal")),
        "exif:DateTimeOriginal",
    )
    for key, source in (
        ("XMP-exif:DateTimeOriginal", "xmp:DateTimeOriginal"),
        ("XMP-photoshop:DateCreated", "xmp:DateCreated"),
        ("XMP-xmp:CreateDate", "xmp:CreateDate"),
        ("Keys:CreationDate", "quicktime:CreationDate"),
    ):
        value = tags.get(key)
        if isinstance(value, str):
            set_taken(fields, *xmp_date(value.replace(":", "-", 2)), source)
    # QuickTime's movie header: UTC, and the 1904 zero date means "not set".
    set_taken(fields, exif_date(tags.get("QuickTime:CreateDate")), 0, "quicktime:CreateDate")


def _first(tags: dict[str, Any], *keys: str) -> Any:
    return next((tags[k] for k in keys if tags.get(k) not in (None, "")), None)


def fields_of(tags: dict[str, Any], image: bool) -> Fields:
    """Issue 19's fields from exiftool's tags. Size, duration and frame count are taken for
    images only: for video and audio they are MediaInfo's."""
    fields: Fields = {}
    _taken(tags, fields)
    for field, keys in (
        ("gps_lat", ("Composite:GPSLatitude", "XMP-exif:GPSLatitude")),
        ("gps_lon", ("Composite:GPSLongitude", "XMP-exif:GPSLongitude")),
        ("gps_alt_m", ("Composite:GPSAltitude",)),
        ("orientation", ("IFD0:Orientation", "XMP-tiff:Orientation")),
        ("camera_make", ("IFD0:Make", "XMP-tiff:Make")),
        ("camera_model", ("IFD0:Model", "XMP-tiff:Model")),
        ("lens", ("ExifIFD:LensModel", "XMP-exifEX:LensModel", "XMP-aux:Lens")),
    ):
        value = _first(tags, *keys)
        if value is not None:
            fields[field] = value
    rotation = tags.get("Composite:Rotation")
    if not image and rotation:  # a video's display matrix (0 is also "none")
        fields["rotation_deg"] = int(rotation)
    if image:
        size = str(tags.get("Composite:ImageSize") or "").replace("x", " ").split()
        if len(size) == 2:
            fields["width"], fields["height"] = int(size[0]), int(size[1])
        frames = _first(tags, "GIF:FrameCount", "PNG:AnimationFrames", "RIFF:FrameCount")
        if frames is not None and int(frames) > 1:
            fields["frame_count"] = int(frames)
        duration = _first(tags, "GIF:Duration", "PNG:Duration", "RIFF:Duration")
        if duration is not None:
            fields["duration_s"] = float(duration)
    return fields
