"""Photos and phone videos with camera metadata, made by the tests: JPEGs whose EXIF, XMP
and IPTC exiftool writes (the reference reader, so the tags are what cameras write), XMP
sidecars, videos with QuickTime places and rotations (PyAV, bench/mix_av.py), and JPEGs
whose EXIF is built byte by byte to be hostile (loops, huge counts, truncations, flips).
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

from PIL import Image

from bench.mix import SIDECAR
from bench.mix_av import MDTA, PARIS, SYDNEY, AvSpec, write_av

EXIFTOOL_MISSING = (
    None if shutil.which("exiftool") else "exiftool is missing (libimage-exiftool-perl)"
)

# name -> exiftool's arguments for it (written on a plain 64x48 JPEG)
PHOTOS: dict[str, tuple[str, ...]] = {
    "gps_orientation6.jpg": (
        "-Orientation#=6",
        "-Make=Canon",
        "-Model=Canon EOS R5",
        "-LensModel=RF24-105mm F4 L IS USM",
        "-DateTimeOriginal=2021:06:15 12:34:56",
        "-OffsetTimeOriginal=+02:00",
        "-GPSLatitude=48.8584",
        "-GPSLatitudeRef=N",
        "-GPSLongitude=2.2945",
        "-GPSLongitudeRef=E",
        "-GPSAltitude=35.5",
        "-GPSAltitudeRef=0",
        "-XMP-dc:Title=The tower",
        "-IPTC:Keywords=paris",
        "-IPTC:Keywords=tower",
    ),
    "no_zone.jpg": (
        "-Orientation#=3",
        "-DateTimeOriginal=2017:05:06 07:08:09",
        "-GPSLatitude=33.8568",
        "-GPSLatitudeRef=S",
        "-GPSLongitude=151.2153",
        "-GPSLongitudeRef=E",
    ),
    "mirrored5.jpg": ("-Orientation#=5",),
    "xmp_date.jpg": ("-XMP-photoshop:DateCreated=2015-10-21T16:29:00-07:00",),
    # Its sidecar (the mix's SIDECAR) states another date, place and orientation: they win.
    "with_sidecar.jpg": (
        "-DateTimeOriginal=2019:07:04 12:00:00",
        "-OffsetTimeOriginal=+00:00",
        "-Make=Canon",
    ),
    "stem_sidecar.jpg": ("-DateTimeOriginal=2010:01:01 00:00:00",),
}

# The mix's sidecar (bench/mix.py): a date, a place and an orientation that win over the EXIF.
STEM_SIDECAR = SIDECAR.replace("2019-07-04T18:30:00-04:00", "2012-12-12T12:12:12Z")

VIDEOS = (
    # A phone's MOV: the place in udta's ©xyz, the date in the movie header (UTC).
    AvSpec(
        "location.mov",
        "libx264",
        (),
        (64, 48),
        0.2,
        metadata={"location": SYDNEY, "creation_time": "2022-01-02T03:04:05.000000Z"},
    ),
    # Apple's keys: the place as ISO 6709, the date with the zone the phone was in.
    AvSpec(
        "apple.mp4",
        "libx264",
        (),
        (64, 48),
        0.2,
        metadata={
            "com.apple.quicktime.location.ISO6709": PARIS,
            "com.apple.quicktime.creationdate": "2021-06-15T12:34:56+0200",
            "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.model": "iPhone 12",
        },
        options=MDTA,
    ),
    AvSpec("portrait90.mov", "libx264", (), (64, 48), 0.2, rotation_deg=90),
    AvSpec("rotated270.mp4", "libx264", (), (64, 48), 0.2, rotation_deg=270),
)


def plain_jpeg(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    Image.linear_gradient("L").resize(size).convert("RGB").save(path, quality=60)
    return path


def make_photos(directory: Path) -> None:
    """Every photo of PHOTOS, their tags written by one exiftool process, and sidecars."""
    lines: list[str] = ["-overwrite_original", "-q"]
    for number, (name, arguments) in enumerate(PHOTOS.items()):
        plain_jpeg(directory / name)
        if number:
            lines += ["-execute", "-overwrite_original", "-q"]
        lines += [*arguments, str(directory / name)]
    argfile = directory / "exiftool.args"
    argfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(["exiftool", "-@", str(argfile)], check=True, capture_output=True, timeout=60)
    argfile.unlink()
    (directory / "with_sidecar.jpg.xmp").write_text(SIDECAR, encoding="utf-8")
    (directory / "stem_sidecar.xmp").write_text(STEM_SIDECAR, encoding="utf-8")


def make_videos(directory: Path) -> None:
    for spec in VIDEOS:
        write_av(directory, spec)


# --- hostile EXIF -----------------------------------------------------------------------

ASCII, SHORT, LONG, UNDEFINED = 2, 3, 4, 7
Entry = tuple[int, int, int, bytes]  # tag, type, count, value (more than 4 bytes: put after)


def tiff(entries: list[Entry], next_ifd: int = 0) -> bytes:
    """EXIF's little-endian TIFF structure: IFD0 at offset 8, values longer than 4 bytes
    after it, at the offsets its entries name."""
    tail_at = 8 + 2 + 12 * len(entries) + 4
    body, tail = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) > 4:
            field, tail = struct.pack("<I", tail_at + len(tail)), tail + value
        else:
            field = value.ljust(4, b"\0")
        body += struct.pack("<HHI", tag, kind, count) + field
    return b"II*\0" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd) + tail


def with_app1(jpeg: bytes, payload: bytes, claimed: int | None = None) -> bytes:
    """The JPEG with an APP1 segment right after its SOI; `claimed` overrides the
    segment's length field (a lie about its size)."""
    length = claimed if claimed is not None else len(payload) + 2
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", length & 0xFFFF) + payload + jpeg[2:]


ORIENTATION_6 = (0x0112, SHORT, 1, struct.pack("<H", 6))


def hostile_exif(directory: Path) -> dict[str, Path]:
    """JPEGs MediaInfo reads as JPEG whose EXIF is damaged or lies, by what each does."""
    base = plain_jpeg(directory / "base.jpg").read_bytes()
    good = tiff([(0x010F, ASCII, 6, b"Canon\0"), ORIENTATION_6])
    structures: dict[str, bytes] = {
        # IFD0's next IFD is IFD0 itself.
        "ifd_loop.jpg": tiff([ORIENTATION_6], next_ifd=8),
        # A Make of 2 GiB, its value far past the end of the segment.
        "huge_count.jpg": tiff([(0x010F, ASCII, 0x7FFFFFFF, struct.pack("<I", 0x10))]),
        # An ExifIFD pointer past the end, and a GPS IFD pointer back at IFD0.
        "bad_pointer.jpg": tiff(
            [(0x8769, LONG, 1, struct.pack("<I", 0xFFFFFF00)), (0x8825, LONG, 1, b"\x08\0\0\0")]
        ),
        # 65535 entries claimed, one present.
        "many_entries.jpg": b"II*\0\x08\0\0\0\xff\xff" + struct.pack("<HHI", 0x0112, SHORT, 1),
        # A Make with NUL bytes, a Model that is not UTF-8, a 60 kB undefined blob.
        "nul_make.jpg": tiff(
            [
                (0x010F, ASCII, 12, b"Can\0on\0\0\0\0\0\0"),
                (0x0110, ASCII, 6, b"\xff\xfe\xc3(\0\0"),
                (0x9286, UNDEFINED, 60000, b"\x01" * 60000),
            ]
        ),
        "truncated.jpg": good[: len(good) // 2],
    }
    paths = {}
    for name, structure in structures.items():
        paths[name] = directory / name
        paths[name].write_bytes(with_app1(base, b"Exif\0\0" + structure))
    # A segment whose length field is 1: less than the field itself.
    paths["segment_length_1.jpg"] = directory / "segment_length_1.jpg"
    paths["segment_length_1.jpg"].write_bytes(base[:2] + b"\xff\xe1\x00\x01" + base[2:])
    # A segment that claims more than the file holds.
    paths["app1_overlong.jpg"] = directory / "app1_overlong.jpg"
    paths["app1_overlong.jpg"].write_bytes(with_app1(base, b"Exif\0\0" + good, claimed=0xFFFF))
    return paths


def bit_flipped(photo: bytes, seeds: range, flips: int = 12) -> list[bytes]:
    """Copies of `photo` with bytes of its first APP1 (the EXIF) overwritten at random."""
    start = photo.index(b"\xff\xe1") + 4
    end = start + struct.unpack(">H", photo[start - 2 : start])[0] - 2
    copies = []
    for seed in seeds:
        rng = random.Random(seed)
        data = bytearray(photo)
        for _ in range(flips):
            data[rng.randrange(start, end)] = rng.randrange(256)
        copies.append(bytes(data))
    return copies


def make_animations(directory: Path) -> dict[str, tuple[int, float]]:
    """An animated GIF, APNG and WebP, and the (frames, seconds) each must report."""
    made = {}
    for name, frames, ms in (("anim.gif", 10, 100), ("anim.png", 6, 150), ("anim.webp", 8, 80)):
        pictures = [
            Image.linear_gradient("L").rotate(n * 30).resize((48, 32)).convert("RGB")
            for n in range(frames)
        ]
        pictures[0].save(
            directory / name, save_all=True, append_images=pictures[1:], duration=ms, loop=0
        )
        made[name] = (frames, frames * ms / 1000)
    return made
