"""The still and animated images of the mixed corpus (bench/mix.py), made with Pillow and
pillow-heif, with EXIF written by Pillow itself (no exiftool needed to make the corpus).

An image's EXIF is an `ExifSpec`; `fields()` says what a correct reader must find in it,
in the names of issue 19's summary keys. Pillow moves an AVIF's or HEIC's orientation out
of the EXIF into the container's own transform boxes, so those carry orientation 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, TiffImagePlugin

from mediad.extract.camera_values import ORIENTATIONS

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110
DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL, LENS_MODEL = 0x9003, 0x9011, 0xA434
# Orientation -> (degrees clockwise to display upright, mirrored): mediad's own table, in
# exiftool's words ("Mirror horizontal and rotate 270 CW" for 5).
ROTATION = ORIENTATIONS


@dataclass(frozen=True)
class Gps:
    lat: float
    lon: float
    alt_m: float | None = None


@dataclass(frozen=True)
class ExifSpec:
    orientation: int | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    taken: str | None = None  # EXIF's own form, "2021:06:15 12:34:56"
    offset: str | None = None  # OffsetTimeOriginal, "+02:00"
    gps: Gps | None = None


@dataclass(frozen=True)
class ImageSpec:
    name: str
    size: tuple[int, int]
    exif: ExifSpec | None = None
    mode: str = "RGB"
    frames: int = 1
    frame_ms: int = 100
    options: tuple[tuple[str, Any], ...] = ()
    xmp: str | None = None  # an XMP packet embedded in the file


def _dms(value: float) -> tuple[tuple[int, int, int], float]:
    """Degrees, minutes and seconds (in thousandths) as EXIF rationals store them, and the
    decimal degrees those rationals say: that, not `value`, is the truth to compare."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    millis = round((value - degrees - minutes / 60) * 3600 * 1000)
    return (degrees, minutes, millis), degrees + minutes / 60 + millis / 3_600_000


def _gps_ifd(ifd: Any, gps: Gps) -> None:
    rational = TiffImagePlugin.IFDRational
    (d, m, ms), _ = _dms(gps.lat)
    ifd[0x0000] = b"\x02\x03\x00\x00"
    ifd[0x0001] = "N" if gps.lat >= 0 else "S"
    ifd[0x0002] = (rational(d, 1), rational(m, 1), rational(ms, 1000))
    (d, m, ms), _ = _dms(gps.lon)
    ifd[0x0003] = "E" if gps.lon >= 0 else "W"
    ifd[0x0004] = (rational(d, 1), rational(m, 1), rational(ms, 1000))
    if gps.alt_m is not None:
        ifd[0x0005] = b"\x01" if gps.alt_m < 0 else b"\x00"
        ifd[0x0006] = rational(round(abs(gps.alt_m) * 100), 100)


def exif_of(spec: ExifSpec) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in ((ORIENTATION, spec.orientation), (MAKE, spec.make), (MODEL, spec.model)):
        if value is not None:
            exif[tag] = value
    sub = exif.get_ifd(EXIF_IFD)
    for tag, text in (
        (DATE_TIME_ORIGINAL, spec.taken),
        (OFFSET_TIME_ORIGINAL, spec.offset),
        (LENS_MODEL, spec.lens),
    ):
        if text is not None:
            sub[tag] = text
    if spec.gps is not None:
        _gps_ifd(exif.get_ifd(GPS_IFD), spec.gps)
    return exif


def _offset_minutes(offset: str) -> int:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return sign * (int(hours) * 60 + int(minutes))


def exif_fields(spec: ExifSpec) -> dict[str, Any]:
    """What the EXIF says, as issue 19's summary keys (absent keys: not written)."""
    fields: dict[str, Any] = {}
    if spec.taken is not None:
        date, time = spec.taken.split(" ")
        fields["taken_at"] = f"{date.replace(':', '-')}T{time}"
        fields["taken_at_source"] = "exif:DateTimeOriginal"
        if spec.offset is not None:
            fields["taken_at_offset_min"] = _offset_minutes(spec.offset)
    if spec.gps is not None:
        fields["gps_lat"] = round(_dms(spec.gps.lat)[1] * (1 if spec.gps.lat >= 0 else -1), 7)
        fields["gps_lon"] = round(_dms(spec.gps.lon)[1] * (1 if spec.gps.lon >= 0 else -1), 7)
        if spec.gps.alt_m is not None:
            fields["gps_alt_m"] = round(spec.gps.alt_m, 2)
    if spec.orientation is not None:
        fields["orientation"] = spec.orientation
        fields["rotation_deg"], fields["mirrored"] = ROTATION[spec.orientation]
    for key, value in (("camera_make", spec.make), ("camera_model", spec.model)):
        if value is not None:
            fields[key] = value
    if spec.lens is not None:
        fields["lens"] = spec.lens
    return fields


def picture(size: tuple[int, int], index: int = 0) -> Image.Image:
    """Smooth gradients in three channels, shifted per frame: cheap, deterministic, and
    something real for the encoders to code."""
    linear = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    blue = linear.transpose(Image.Transpose.ROTATE_90).resize(size)
    shift = index * max(1, size[1] // 8)  # the linear gradient runs top to bottom
    return Image.merge("RGB", (ImageChops.offset(linear, 0, shift), radial, blue))


def _frames(spec: ImageSpec) -> list[Image.Image]:
    frames = [picture(spec.size, n) for n in range(spec.frames)]
    if spec.mode == "P":
        return [f.quantize(16) for f in frames]
    return [f.convert(spec.mode) for f in frames]


def write_image(directory: Path, spec: ImageSpec) -> Path:
    path = directory / spec.name
    frames = _frames(spec)
    options: dict[str, Any] = dict(spec.options)
    if spec.exif is not None:
        exif = exif_of(spec.exif)
        options["exif"] = exif.tobytes() if path.suffix == ".heic" else exif
    if spec.xmp is not None:
        options["xmp"] = spec.xmp.encode()
    if spec.frames > 1:
        options.update(save_all=True, append_images=frames[1:], duration=spec.frame_ms, loop=0)
    if path.suffix == ".heic":
        from pillow_heif import register_heif_opener  # the HEIF writer, only where needed

        register_heif_opener()
    frames[0].save(path, **options)
    return path


def image_fields(spec: ImageSpec) -> dict[str, Any]:
    fields = exif_fields(spec.exif) if spec.exif is not None else {}
    fields["width"], fields["height"] = spec.size
    if spec.frames > 1:
        fields["frame_count"] = spec.frames
        fields["duration_s"] = round(spec.frames * spec.frame_ms / 1000, 3)
    return fields
