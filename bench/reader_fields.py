"""The fields a second reader must give (issue 19), and the conversions every reader
shares: EXIF and XMP dates, degrees from EXIF rationals, and when two values agree."""

from __future__ import annotations

import re
from typing import Any

Fields = dict[str, Any]

# Compared field by field against exiftool; taken_at_source is reported, not compared
# (each library names its tags its own way).
COMPARED = (
    "taken_at",
    "taken_at_offset_min",
    "gps_lat",
    "gps_lon",
    "gps_alt_m",
    "orientation",
    "camera_make",
    "camera_model",
    "lens",
    "width",
    "height",
    "duration_s",
    "frame_count",
)
# Size, duration and frames are the second reader's only for images: MediaInfo's otherwise.
IMAGE_ONLY = ("width", "height", "duration_s", "frame_count")
# How close two floats must be: about 1 cm of latitude; a centimetre; a millisecond.
TOLERANCE = {"gps_lat": 1e-6, "gps_lon": 1e-6, "gps_alt_m": 0.01, "duration_s": 0.0015}

_EXIF_DATE = re.compile(r"^(\d{4}):(\d\d):(\d\d)[ T](\d\d):(\d\d):(\d\d)")
_XMP_DATE = re.compile(
    r"^(\d{4})[-:](\d\d)[-:](\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$"
)


def exif_date(text: str | None) -> str | None:
    """EXIF's "2021:06:15 12:34:56" as "2021-06-15T12:34:56"; None for the empty or zero
    dates cameras write when their clock was never set."""
    match = _EXIF_DATE.match((text or "").strip())
    if not match or match.group(1) == "0000":
        return None
    y, mo, d, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def offset_minutes(text: str | None) -> int | None:
    text = (text or "").strip()
    if text == "Z":
        return 0
    match = re.match(r"^([+-])(\d\d):(\d\d)$", text)
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * (int(match.group(2)) * 60 + int(match.group(3)))


def xmp_date(text: str | None) -> tuple[str | None, int | None]:
    """An XMP date ("2019-07-04T18:30:00-04:00", seconds and zone optional) as the
    wall-clock time and its offset in minutes."""
    match = _XMP_DATE.match((text or "").strip())
    if not match or match.group(1) == "0000":
        return None, None
    y, mo, d, h, mi, s, zone = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s or '00'}", offset_minutes(zone)


def degrees(parts: list[float], ref: str | None) -> float | None:
    """Degrees, minutes, seconds and a reference (N, S, E, W) as signed decimal degrees."""
    if len(parts) != 3:
        return None
    value = parts[0] + parts[1] / 60 + parts[2] / 3600
    return -value if (ref or "").strip().upper()[:1] in ("S", "W") else value


def ratio(text: str) -> float:
    """A rational as exiv2 prints it, "30130/1000"."""
    num, _, den = text.partition("/")
    return float(num) / float(den or 1)


def xmp_degrees(text: str | None) -> float | None:
    """XMP's GPS coordinate, "40,44.5000N" or "40,44,30N"."""
    match = re.match(r"^(\d+),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])$", (text or "").strip())
    if not match:
        return None
    d, m, s, ref = match.groups()
    return degrees([float(d), float(m), float(s or 0)], ref)


def agree(field: str, ours: Any, theirs: Any) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    tolerance = TOLERANCE.get(field)
    if tolerance is not None:
        return abs(float(ours) - float(theirs)) <= tolerance
    if isinstance(theirs, str) or isinstance(ours, str):
        return str(ours).strip() == str(theirs).strip()
    return bool(ours == theirs)


def set_taken(fields: Fields, taken: str | None, offset: int | None, source: str) -> None:
    """Record a date unless an earlier (better) source already gave one."""
    if taken is None or "taken_at" in fields:
        return
    fields["taken_at"] = taken
    fields["taken_at_source"] = source
    if offset is not None:
        fields["taken_at_offset_min"] = offset
