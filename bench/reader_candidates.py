"""The candidates for mediad's second reader (issue 19), each reading a file through a
descriptor that is already open, as a worker must (it never reopens by path: the gate
checked that descriptor, mediad/extract/gate.py):

- `exiv2` (python-exiv2, libexiv2 0.28): from a read-only mmap of the descriptor, no copy;
  `exiv2-fd`: the same library through the descriptor's /proc name;
- `pyexiv2`: from the file's bytes (its `ImageData` takes bytes only: a whole-file copy);
- `pillow` (+ pillow-heif for HEIC): from a file object over the descriptor, reading only
  what it needs.

Each gives issue 19's fields (bench/reader_fields.py) from the tags it reads.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.reader_fields import (
    Fields,
    degrees,
    exif_date,
    offset_minutes,
    ratio,
    set_taken,
    xmp_date,
    xmp_degrees,
)

Getter = Callable[[str], str | None]
QUICKTIME_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


@dataclass(frozen=True)
class Candidate:
    name: str
    modules: tuple[str, ...]  # what a worker would import at boot
    source: str  # how it is handed the opened file
    version: Callable[[], str]
    read: Callable[[int, int], Fields]  # (descriptor, size) -> fields


def _iso6709(text: str | None) -> tuple[float, float, float | None] | None:
    match = ISO6709.match((text or "").strip())
    if not match:
        return None
    lat, lon, alt = match.groups()
    return float(lat), float(lon), float(alt) if alt else None


def _gps(fields: Fields, exif: Getter, xmp: Getter) -> None:
    lat = exif("Exif.GPSInfo.GPSLatitude")
    lon = exif("Exif.GPSInfo.GPSLongitude")
    if lat and lon:
        ref = exif("Exif.GPSInfo.GPSLatitudeRef")
        fields["gps_lat"] = degrees([ratio(p) for p in lat.split()], ref)
        ref = exif("Exif.GPSInfo.GPSLongitudeRef")
        fields["gps_lon"] = degrees([ratio(p) for p in lon.split()], ref)
        alt = exif("Exif.GPSInfo.GPSAltitude")
        if alt:
            below = (exif("Exif.GPSInfo.GPSAltitudeRef") or "0").strip() == "1"
            fields["gps_alt_m"] = -ratio(alt) if below else ratio(alt)
    elif xmp("Xmp.exif.GPSLatitude"):
        fields["gps_lat"] = xmp_degrees(xmp("Xmp.exif.GPSLatitude"))
        fields["gps_lon"] = xmp_degrees(xmp("Xmp.exif.GPSLongitude"))
        alt = xmp("Xmp.exif.GPSAltitude")
        if alt:
            below = (xmp("Xmp.exif.GPSAltitudeRef") or "0").strip() == "1"
            fields["gps_alt_m"] = -ratio(alt) if below else ratio(alt)
    elif (place := _iso6709(xmp("Xmp.video.GPSCoordinates"))) is not None:
        fields["gps_lat"], fields["gps_lon"] = place[0], place[1]
        if place[2] is not None:
            fields["gps_alt_m"] = place[2]


def _quicktime_date(seconds: str | None) -> str | None:
    if not seconds or not seconds.isdigit() or int(seconds) == 0:
        return None  # the 1904 zero date: not set
    return (QUICKTIME_EPOCH + timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%S")


def exiv2_fields(exif: Getter, xmp: Getter) -> Fields:
    """Fields from exiv2's keys (both python-exiv2 and pyexiv2 name tags this way)."""
    fields: Fields = {}
    set_taken(
        fields,
        exif_date(exif("Exif.Photo.DateTimeOriginal")),
        offset_minutes(exif("Exif.Photo.OffsetTimeOriginal")),
        "exif:DateTimeOriginal",
    )
    for key, source in (
        ("Xmp.exif.DateTimeOriginal", "xmp:DateTimeOriginal"),
        ("Xmp.photoshop.DateCreated", "xmp:DateCreated"),
        ("Xmp.xmp.CreateDate", "xmp:CreateDate"),
    ):
        set_taken(fields, *xmp_date(xmp(key)), source)
    set_taken(fields, _quicktime_date(xmp("Xmp.video.DateUTC")), 0, "quicktime:CreateDate")
    _gps(fields, exif, xmp)
    orientation = exif("Exif.Image.Orientation") or xmp("Xmp.tiff.Orientation")
    if orientation and orientation.strip().isdigit():
        fields["orientation"] = int(orientation)
    for field, keys in (
        ("camera_make", ("Exif.Image.Make", "Xmp.tiff.Make")),
        ("camera_model", ("Exif.Image.Model", "Xmp.tiff.Model")),
        ("lens", ("Exif.Photo.LensModel", "Xmp.exifEX.LensModel", "Xmp.aux.Lens")),
    ):
        value = next((v for k in keys if (v := (exif(k) if k[0] == "E" else xmp(k)))), None)
        if value:
            fields[field] = value.strip()
    return fields


# --- python-exiv2 -----------------------------------------------------------------------


def _exiv2_read(fd: int, size: int) -> Fields:
    import exiv2

    # Not closed here: exiv2's image (and, after a failure, the traceback holding it) still
    # points into the map; it is unmapped when the last of them goes.
    return _exiv2_fields(exiv2.ImageFactory.open(mmap.mmap(fd, size, access=mmap.ACCESS_READ)))


def _exiv2_fd_path_read(fd: int, size: int) -> Fields:
    """Through the descriptor's /proc name, as MediaInfo reads (mediad/extract/view.py):
    the same open file, nothing mapped, so a worker's address-space limit is not spent on
    a large video."""
    import exiv2

    return _exiv2_fields(exiv2.ImageFactory.open(f"/proc/self/fd/{fd}"))


def _exiv2_fields(image: Any) -> Fields:
    import exiv2

    image.readMetadata()
    exif, xmp = image.exifData(), image.xmpData()

    def exif_get(key: str) -> str | None:
        found = exif.findKey(exiv2.ExifKey(key))
        return None if found == exif.end() else str(found.toString())

    def xmp_get(key: str) -> str | None:
        found = xmp.findKey(exiv2.XmpKey(key))
        return None if found == xmp.end() else str(found.toString())

    fields = exiv2_fields(exif_get, xmp_get)
    width, height = image.pixelWidth(), image.pixelHeight()
    if width and height:
        fields["width"], fields["height"] = int(width), int(height)
    return fields


def _exiv2_version() -> str:
    import exiv2

    return f"python-exiv2 {exiv2.__version__}, libexiv2 {exiv2.versionString()}"


# --- pyexiv2 ----------------------------------------------------------------------------


def _pyexiv2_read(fd: int, size: int) -> Fields:
    import pyexiv2

    image = pyexiv2.ImageData(os.pread(fd, size, 0))
    try:
        exif: dict[str, Any] = image.read_exif()
        xmp: dict[str, Any] = image.read_xmp()
        fields = exiv2_fields(lambda k: _text(exif.get(k)), lambda k: _text(xmp.get(k)))
        width, height = image.get_pixel_width(), image.get_pixel_height()
        if width and height:
            fields["width"], fields["height"] = int(width), int(height)
    finally:
        image.close()
    return fields


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(value) if isinstance(value, list) else str(value)


def _pyexiv2_version() -> str:
    import pyexiv2

    return f"pyexiv2 {pyexiv2.__version__}, libexiv2 {pyexiv2.__exiv2_version__}"


# --- Pillow -----------------------------------------------------------------------------


def _pillow_read(fd: int, size: int) -> Fields:
    from bench.reader_pillow import pillow_fields

    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", closefd=False) as stream:
        return pillow_fields(stream)


def _pillow_version() -> str:
    import PIL
    import pillow_heif

    return f"Pillow {PIL.__version__}, pillow-heif {pillow_heif.__version__}"


CANDIDATES = (
    Candidate("exiv2", ("exiv2",), "mmap of the descriptor", _exiv2_version, _exiv2_read),
    Candidate(
        "exiv2-fd", ("exiv2",), "/proc/self/fd/N, no map", _exiv2_version, _exiv2_fd_path_read
    ),
    Candidate("pyexiv2", ("pyexiv2",), "bytes (whole file)", _pyexiv2_version, _pyexiv2_read),
    Candidate(
        "pillow",
        ("PIL.Image", "pillow_heif"),
        "file object over the descriptor",
        _pillow_version,
        _pillow_read,
    ),
)
