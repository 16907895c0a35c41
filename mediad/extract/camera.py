"""Camera metadata as summary fields: from the second reader's EXIF and XMP tags (exiv2's
key names), from an XMP sidecar, and from MediaInfo's own fields (QuickTime dates and
places, a video's rotation). Pure.

Each source gives a layer of fields; `apply_layers` writes them over the summary by
group (a date with its zone and source, a place, an orientation with its rotation),
the first layer that has a group winning it whole: sidecar, then EXIF, then XMP, then
MediaInfo (docs/schema.md). Nothing is guessed and nothing falls back to the file's mtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mediad.extract.camera_values import (
    ORIENTATIONS,
    Fields,
    altitude,
    exif_date,
    exif_degrees,
    iso6709,
    offset_minutes,
    orientation,
    set_taken,
    video_rotation,
    with_offset,
    xmp_date,
    xmp_degrees,
)

Getter = Callable[[str], str | None]
Track = dict[str, Any]

# Fields that go together, each after the keys that say a layer has the group (a video's
# rotation comes without an orientation).
GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("taken_at",), ("taken_at", "taken_at_offset_min", "taken_at_source")),
    (("gps_lat",), ("gps_lat", "gps_lon", "gps_alt_m")),
    (("orientation", "rotation_deg"), ("orientation", "rotation_deg", "mirrored")),
    (("camera_make",), ("camera_make",)),
    (("camera_model",), ("camera_model",)),
    (("lens",), ("lens",)),
)
# Text fields are cut to this length: a hostile tag can be megabytes long.
MAX_TEXT = 200

# XMP date tags, best first, with the name `taken_at_source` gives each.
XMP_DATES = (
    ("Xmp.exif.DateTimeOriginal", "DateTimeOriginal"),
    ("Xmp.photoshop.DateCreated", "DateCreated"),
    ("Xmp.xmp.CreateDate", "CreateDate"),
)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.replace("\x00", "").strip()[:MAX_TEXT].strip()
    return text or None


def _orientation_fields(fields: Fields, value: int | None) -> None:
    if value is not None:
        fields["orientation"] = value
        fields["rotation_deg"], fields["mirrored"] = ORIENTATIONS[value]


def _first_text(get: Getter, keys: Sequence[str]) -> str | None:
    return next((text for key in keys if (text := _text(get(key)))), None)


def exif_fields(exif: Getter) -> Fields:
    """Fields from EXIF tags (exiv2's keys), "exif:" sources."""
    fields: Fields = {}
    for key, offset_key, name in (
        ("Exif.Photo.DateTimeOriginal", "Exif.Photo.OffsetTimeOriginal", "DateTimeOriginal"),
        ("Exif.Photo.DateTimeDigitized", "Exif.Photo.OffsetTimeDigitized", "CreateDate"),
    ):
        set_taken(fields, exif_date(exif(key)), offset_minutes(exif(offset_key)), f"exif:{name}")
    lat = exif_degrees(exif("Exif.GPSInfo.GPSLatitude"), exif("Exif.GPSInfo.GPSLatitudeRef"), 90)
    lon = exif_degrees(exif("Exif.GPSInfo.GPSLongitude"), exif("Exif.GPSInfo.GPSLongitudeRef"), 180)
    if lat is not None and lon is not None:
        fields["gps_lat"], fields["gps_lon"] = lat, lon
        fields["gps_alt_m"] = altitude(
            exif("Exif.GPSInfo.GPSAltitude"), exif("Exif.GPSInfo.GPSAltitudeRef")
        )
    _orientation_fields(fields, orientation(exif("Exif.Image.Orientation")))
    for field, keys in (
        ("camera_make", ("Exif.Image.Make",)),
        ("camera_model", ("Exif.Image.Model",)),
        ("lens", ("Exif.Photo.LensModel",)),
    ):
        if (value := _first_text(exif, keys)) is not None:
            fields[field] = value
    return fields


def xmp_fields(xmp: Getter, source: str = "xmp") -> Fields:
    """Fields from XMP properties (exiv2's keys); `source` names where the packet was:
    "xmp" (in the file) or "xmp-sidecar"."""
    fields: Fields = {}
    for key, name in XMP_DATES:
        set_taken(fields, *xmp_date(xmp(key)), f"{source}:{name}")
    lat = xmp_degrees(xmp("Xmp.exif.GPSLatitude"), 90)
    lon = xmp_degrees(xmp("Xmp.exif.GPSLongitude"), 180)
    if lat is not None and lon is not None:
        fields["gps_lat"], fields["gps_lon"] = lat, lon
        fields["gps_alt_m"] = altitude(xmp("Xmp.exif.GPSAltitude"), xmp("Xmp.exif.GPSAltitudeRef"))
    _orientation_fields(fields, orientation(xmp("Xmp.tiff.Orientation")))
    for field, keys in (
        ("camera_make", ("Xmp.tiff.Make",)),
        ("camera_model", ("Xmp.tiff.Model",)),
        ("lens", ("Xmp.exifEX.LensModel", "Xmp.aux.Lens")),
    ):
        if (value := _first_text(xmp, keys)) is not None:
            fields[field] = value
    return fields


# --- MediaInfo's own ---------------------------------------------------------------------

# Containers whose dates are QuickTime's: UTC by definition (the movie header). MediaInfo
# names a DASH segment (ISO BMFF too) by its brand.
QUICKTIME_CONTAINERS = frozenset({"MPEG-4", "QuickTime", "dash"})
_LOCATION_KEYS = ("com_apple_quicktime_location_ISO6709", "xyz", "Recorded_Location", "location")


def _field(track: Track, key: str) -> str | None:
    value = track.get(key)
    if value is None:
        extra = track.get("extra")
        value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, str) else None


def _encoded_date(text: str | None) -> str | None:
    """MediaInfo's "2021-06-15 10:34:56 UTC" (older versions: "UTC 2021-06-15 …"); the
    QuickTime zero date (1904-01-01) is no date."""
    text = (text or "").replace("UTC", "").strip()
    wall, _offset = xmp_date(text)
    if wall is None or wall.startswith("1904-01-01T00:00:00"):
        return None
    return wall


def mediainfo_fields(general: Track, video: Track | None) -> Fields:
    """Fields MediaInfo states itself: the QuickTime creation date and place, the phone's
    make and model, and a video's rotation."""
    fields: Fields = {}
    container = _field(general, "Format")
    if container in QUICKTIME_CONTAINERS:
        # Apple's key carries the zone the phone was in; the movie header's is UTC.
        wall, offset = xmp_date(_field(general, "com_apple_quicktime_creationdate"))
        set_taken(fields, wall, offset, "quicktime:CreationDate")
        encoded = _encoded_date(_field(general, "Encoded_Date"))
        set_taken(fields, encoded, 0, "mediainfo:Encoded_Date")
        place = next(
            (p for key in _LOCATION_KEYS if (p := iso6709(_field(general, key))) is not None),
            None,
        )
        if place is not None:
            fields["gps_lat"], fields["gps_lon"], fields["gps_alt_m"] = place
        for field, key in (
            ("camera_make", "com_apple_quicktime_make"),
            ("camera_model", "com_apple_quicktime_model"),
        ):
            if (value := _text(_field(general, key))) is not None:
                fields[field] = value
    if video is not None and (rotation := video_rotation(_field(video, "Rotation"))) is not None:
        fields["rotation_deg"] = rotation  # orientation and mirroring: not stated
    return fields


# --- the summary ------------------------------------------------------------------------


def _winner(layers: Sequence[Fields], markers: tuple[str, ...]) -> Fields | None:
    return next((f for f in layers if any(f.get(k) is not None for k in markers)), None)


def merged(layers: Sequence[Fields]) -> Fields:
    """The fields of `layers` (best first), each group from the first layer that has it,
    as the layers state them (`taken_at` without its offset appended)."""
    fields: Fields = {}
    for markers, group in GROUPS:
        layer = _winner(layers, markers)
        if layer is not None:
            fields.update((k, layer[k]) for k in group if layer.get(k) is not None)
    return fields


def apply_layers(summary: dict[str, Any], layers: Sequence[Fields]) -> None:
    """Write each group from the first layer (best first) that has it over `summary`,
    which keeps what it had for groups no layer gives. `taken_at` gets its offset
    appended when one is known."""
    layers = [layer for layer in layers if layer]  # most files: one layer or none
    if not layers:
        return
    for markers, group in GROUPS:
        layer = _winner(layers, markers)
        if layer is None:
            continue
        for key in group:
            summary[key] = layer.get(key)
        if markers[0] == "taken_at":
            summary["taken_at"] = with_offset(layer["taken_at"], layer.get("taken_at_offset_min"))
