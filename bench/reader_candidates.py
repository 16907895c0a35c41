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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mediad.extract.camera import exif_fields, merged, xmp_fields
from mediad.extract.camera_values import Fields, iso6709, set_taken

Getter = Callable[[str], str | None]
QUICKTIME_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    name: str
    modules: tuple[str, ...]  # what a worker would import at boot
    source: str  # how it is handed the opened file
    version: Callable[[], str]
    read: Callable[[int, int], Fields]  # (descriptor, size) -> fields


def _quicktime_date(seconds: str | None) -> str | None:
    if not seconds or not seconds.isdigit() or int(seconds) == 0:
        return None  # the 1904 zero date: not set
    return (QUICKTIME_EPOCH + timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%S")


def _exiv2_video(xmp: Getter) -> Fields:
    """What exiv2's own video parser says (Xmp.video.*, which mediad leaves to MediaInfo):
    a candidate reading videos alone would need it."""
    fields: Fields = {}
    set_taken(fields, _quicktime_date(xmp("Xmp.video.DateUTC")), 0, "quicktime:CreateDate")
    place = iso6709(xmp("Xmp.video.GPSCoordinates"))
    if place is not None:
        fields["gps_lat"], fields["gps_lon"] = place[0], place[1]
        if place[2] is not None:
            fields["gps_alt_m"] = place[2]
    return fields


def exiv2_fields(exif: Getter, xmp: Getter) -> Fields:
    """Fields from exiv2's keys (both python-exiv2 and pyexiv2 name tags this way), by
    mediad's own mapping (mediad/extract/camera.py)."""
    return merged([exif_fields(exif), xmp_fields(xmp), _exiv2_video(xmp)])


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
