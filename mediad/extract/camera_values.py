"""Camera metadata values as files write them, read into typed values: EXIF and XMP
dates, zone offsets, degrees from EXIF rationals and XMP coordinates, ISO 6709 places,
EXIF orientations. Pure; every reader returns None for what it cannot read, never a guess
(hostile files write anything in these tags)."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

Fields = dict[str, Any]

# re.ASCII: \d alone would match any script's digits ("\u0662\u0660\u0661\u0669"), which int()
# reads but PostgreSQL's date input does not: the row's write would be refused.
_EXIF_DATE = re.compile(r"^(\d{4}):(\d\d):(\d\d)[ T](\d\d):(\d\d):(\d\d)", re.ASCII)
_XMP_DATE = re.compile(
    r"^(\d{4})[-:](\d\d)[-:](\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?(?:\.\d+)?"
    r"\s*(Z|UTC|[+-]\d\d:?\d\d)?$",
    re.ASCII,
)
_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)$", re.ASCII)
# ISO 6709 as QuickTime writes it: "+48.8584+002.2945+035.000/" (altitude optional).
_ISO6709 = re.compile(
    r"^([+-]\d{1,3}(?:\.\d+)?)([+-]\d{1,3}(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?", re.ASCII
)
_XMP_DEGREES = re.compile(
    r"^(\d{1,3}),(\d{1,2}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?([NSEW])$", re.ASCII
)
# Metres: past this an altitude is no value (a hostile one can even be past any float's
# range, and Infinity is not JSON PostgreSQL takes).
MAX_ALTITUDE_M = 100_000

# EXIF orientation -> (degrees clockwise to display upright, mirrored), in exiftool's
# words: 5 is "Mirror horizontal and rotate 270 CW", 7 "Mirror horizontal and rotate 90
# CW" (the mirror first, then the rotation).
ORIENTATIONS: dict[int, tuple[int, bool]] = {
    1: (0, False),
    2: (0, True),
    3: (180, False),
    4: (180, True),
    5: (270, True),
    6: (90, False),
    7: (90, True),
    8: (270, False),
}


def _valid_date(y: str, mo: str, d: str, h: str, mi: str, s: str) -> bool:
    """A day of the calendar (no 31 February: PostgreSQL refuses it, and with it the
    whole row) at a time of day (60 seconds: a leap second, which PostgreSQL takes)."""
    try:
        date(int(y), int(mo), int(d))  # year 0000 is none either
    except ValueError:
        return False
    return int(h) <= 23 and int(mi) <= 59 and int(s) <= 60


def exif_date(text: str | None) -> str | None:
    """EXIF's "2021:06:15 12:34:56" as "2021-06-15T12:34:56"; None for the empty or zero
    dates cameras write when their clock was never set, and for impossible ones."""
    match = _EXIF_DATE.match((text or "").strip())
    if not match or not _valid_date(*match.groups()):
        return None
    y, mo, d, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def offset_minutes(text: str | None) -> int | None:
    """A zone offset ("+02:00", "-0430", "Z") in minutes east of UTC."""
    text = (text or "").strip()
    if text in ("Z", "UTC"):
        return 0
    match = _OFFSET.match(text)
    if not match or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * (int(match.group(2)) * 60 + int(match.group(3)))


def xmp_date(text: str | None) -> tuple[str | None, int | None]:
    """An XMP or ISO 8601 date ("2019-07-04T18:30:00-04:00", seconds and zone optional) as
    the wall-clock time, without sub-seconds, and its offset in minutes."""
    match = _XMP_DATE.match((text or "").strip())
    if not match:
        return None, None
    y, mo, d, h, mi, s, zone = match.groups()
    if not _valid_date(y, mo, d, h, mi, s or "00"):
        return None, None
    return f"{y}-{mo}-{d}T{h}:{mi}:{s or '00'}", offset_minutes(zone)


def with_offset(wall: str, offset: int | None) -> str:
    """The wall-clock time with its offset appended when one is known ("…+02:00")."""
    if offset is None:
        return wall
    sign = "-" if offset < 0 else "+"
    return f"{wall}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


def ratio(text: str) -> float | None:
    """A rational as exiv2 prints it, "30130/1000" (or a plain number)."""
    num, _, den = text.strip().partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def degrees(parts: list[float | None], ref: str | None, limit: float) -> float | None:
    """Degrees, minutes, seconds and a reference (N, S, E, W) as signed decimal degrees,
    rounded to 7 places (about a centimetre); None past `limit` (90 or 180)."""
    if len(parts) != 3 or any(p is None or p < 0 for p in parts):
        return None
    d, m, s = (float(p) for p in parts if p is not None)
    value = d + m / 60 + s / 3600
    if value > limit:
        return None
    value = -value if (ref or "").strip().upper()[:1] in ("S", "W") else value
    return round(value, 7)


def exif_degrees(text: str | None, ref: str | None, limit: float) -> float | None:
    """EXIF's GPS coordinate as exiv2 prints it, "48/1 51/1 756/25"."""
    if not text or not (ref or "").strip():
        return None  # without its reference the sign is a guess
    return degrees([ratio(p) for p in text.split()], ref, limit)


def xmp_degrees(text: str | None, limit: float) -> float | None:
    """XMP's GPS coordinate, "40,44.5000N" or "40,44,30N"."""
    match = _XMP_DEGREES.match((text or "").strip())
    if not match:
        return None
    d, m, s, ref = match.groups()
    return degrees([float(d), float(m), float(s or 0)], ref, limit)


def altitude(text: str | None, ref: str | None) -> float | None:
    """Metres above sea level; a reference of 1 means below."""
    value = ratio(text) if text else None
    if value is None or abs(value) > MAX_ALTITUDE_M:
        return None
    below = (ref or "0").strip() == "1"
    return round(-value if below else value, 2)


def iso6709(text: str | None) -> tuple[float, float, float | None] | None:
    """Latitude, longitude and altitude from an ISO 6709 string."""
    match = _ISO6709.match((text or "").strip())
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if abs(lat) > 90 or abs(lon) > 180:
        return None
    alt = float(match.group(3)) if match.group(3) else None
    if alt is not None and not abs(alt) <= MAX_ALTITUDE_M:
        alt = None  # the place stands without it, as an EXIF place without a height
    return round(lat, 7), round(lon, 7), alt


def orientation(text: str | None) -> int | None:
    text = (text or "").strip()
    # ASCII only: str.isdigit() also says yes to "\u00b3" (a superscript), which int() refuses.
    return int(text) if text.isascii() and text.isdigit() and int(text) in ORIENTATIONS else None


def video_rotation(text: str | None) -> int | None:
    """MediaInfo's Rotation of a video track ("90.000", clockwise, as exiftool reports it)
    as 0, 90, 180 or 270; None for any other angle."""
    try:
        angle = float((text or "").strip())
    except ValueError:
        return None
    if not math.isfinite(angle) or angle != round(angle) or round(angle) % 90:
        return None
    return round(angle) % 360


def set_taken(fields: Fields, taken: str | None, offset: int | None, source: str) -> None:
    """Record a date unless an earlier (better) source already gave one."""
    if taken is None or "taken_at" in fields:
        return
    fields["taken_at"] = taken
    fields["taken_at_source"] = source
    if offset is not None:
        fields["taken_at_offset_min"] = offset
