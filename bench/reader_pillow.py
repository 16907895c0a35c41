"""Pillow (with pillow-heif for HEIC) as a candidate second reader: issue 19's fields from
`Image.getexif()`, the embedded XMP packet, the size and, for animations, the frames."""

from __future__ import annotations

import re
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from mediad.extract.camera_values import (
    Fields,
    degrees,
    exif_date,
    offset_minutes,
    set_taken,
    xmp_date,
)

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
_registered: list[bool] = []


def _register() -> None:
    if not _registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _registered.append(True)


def _xmp_attr(packet: str, name: str) -> str | None:
    """One property of an XMP packet, as an attribute or an element (no XML parser: Pillow's
    own getxmp() needs defusedxml, and the fields are plain strings)."""
    match = re.search(rf'{name}="([^"]*)"|<{name}>([^<]*)</{name}>', packet)
    return None if match is None else (match.group(1) or match.group(2))


def _from_xmp(fields: Fields, packet: str) -> None:
    for name, source in (
        ("exif:DateTimeOriginal", "xmp:DateTimeOriginal"),
        ("photoshop:DateCreated", "xmp:DateCreated"),
        ("xmp:CreateDate", "xmp:CreateDate"),
    ):
        set_taken(fields, *xmp_date(_xmp_attr(packet, name)), source)
    for field, name in (
        ("camera_make", "tiff:Make"),
        ("camera_model", "tiff:Model"),
        ("lens", "exifEX:LensModel"),
    ):
        value = _xmp_attr(packet, name)
        if value and field not in fields:
            fields[field] = value
    orientation = _xmp_attr(packet, "tiff:Orientation")
    if orientation and orientation.isdigit() and "orientation" not in fields:
        fields["orientation"] = int(orientation)


def _gps(fields: Fields, gps: Any) -> None:
    if 2 in gps and 4 in gps:
        fields["gps_lat"] = degrees([float(v) for v in gps[2]], gps.get(1), 90)
        fields["gps_lon"] = degrees([float(v) for v in gps[4]], gps.get(3), 180)
    if 6 in gps:
        below = gps.get(5) in (b"\x01", 1)
        fields["gps_alt_m"] = -float(gps[6]) if below else float(gps[6])


def _from_exif(fields: Fields, exif: Image.Exif) -> None:
    sub = exif.get_ifd(EXIF_IFD)
    set_taken(
        fields,
        exif_date(sub.get(0x9003)),
        offset_minutes(sub.get(0x9011)),
        "exif:DateTimeOriginal",
    )
    _gps(fields, exif.get_ifd(GPS_IFD))
    for field, value in (
        ("orientation", exif.get(0x0112)),
        ("camera_make", exif.get(0x010F)),
        ("camera_model", exif.get(0x0110)),
        ("lens", sub.get(0xA434)),
    ):
        if value not in (None, ""):
            fields[field] = value.strip("\x00 ") if isinstance(value, str) else int(value)


def _animation(fields: Fields, image: Image.Image) -> None:
    """Frame count and total duration: each frame's own delay, summed (GIF, APNG, WebP)."""
    frames = getattr(image, "n_frames", 1)
    if frames <= 1:
        return
    total = 0
    for index in range(frames):
        image.seek(index)
        total += int(image.info.get("duration", 0))
    fields["frame_count"], fields["duration_s"] = frames, total / 1000


def _exif(image: Image.Image) -> Image.Exif:
    """The EXIF Pillow has read with the header. A PNG's getexif() would decode the whole
    picture to look for an eXIf chunk after the pixels (10 ms on a 0.5 MB PNG): only the
    chunk met before them is taken."""
    if image.format != "PNG":
        return image.getexif()
    exif = Image.Exif()
    raw = image.info.get("exif")
    if raw:
        exif.load(raw)
    return exif


def pillow_fields(stream: IO[bytes]) -> Fields:
    _register()
    fields: Fields = {}
    try:
        image = Image.open(stream)
    except (UnidentifiedImageError, OSError):
        return fields  # not an image Pillow knows: nothing to add
    with image:
        fields["width"], fields["height"] = image.size
        _from_exif(fields, _exif(image))
        packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        if packet:
            text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else packet
            _from_xmp(fields, text)
        _animation(fields, image)
    return fields
