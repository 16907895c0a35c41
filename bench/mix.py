"""The mixed corpus: video in several containers and codecs, audio, and images of every
common kind, a third and more of them with EXIF, and what each file carries (a manifest).

    .venv/bin/python -m bench.mix --out DIR
    .venv/bin/python -m bench.run --source DIR       # the throughput benchmark on it
    .venv/bin/python -m bench.readers --source DIR   # the second reader's candidates on it

`bench.run`'s default corpus is 8 files, which flatters the per-file overhead that matters
most on small images and audio (issue 19). This one has about 75 distinct files. Made with
PyAV, Pillow and pillow-heif alone, bit-exact: the same versions write the same bytes.
DIR/manifest.json records, per file, the values written, in the names of issue 19's summary
keys (an absent key: not written), for the tests and for bench/readers.py. One image has
an XMP sidecar (`sidecar.jpg.xmp`), whose values are recorded under its own name; neither
the manifest nor the sidecar is a file the benchmark reads (bench/corpus.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TypedDict

from bench.mix_av import AUDIO, VIDEOS, AvSpec, write_av
from bench.mix_images import ExifSpec, Gps, ImageSpec, image_fields, write_image

MANIFEST = "manifest.json"
SIDECAR_SUFFIX = ".xmp"


class Camera(TypedDict, total=False):
    make: str
    model: str
    lens: str


CANON: Camera = {"make": "Canon", "model": "Canon EOS R5", "lens": "RF24-105mm F4 L IS USM"}
APPLE: Camera = {
    "make": "Apple",
    "model": "iPhone 13 Pro",
    "lens": "iPhone 13 Pro back camera 5.7mm f/1.5",
}
SONY: Camera = {"make": "SONY", "model": "ILCE-7M3"}
PARIS = Gps(48.858370, 2.294481, 35.2)
SYDNEY = Gps(-33.856784, 151.215297, 4.0)
DEAD_SEA = Gps(31.559000, 35.473200, -430.5)
QUITO = Gps(-0.180653, -78.467834, 2850.0)
REYKJAVIK = Gps(64.146582, -21.942635)
KATHMANDU = Gps(27.717245, 85.323960, 1400.0)
NIKON: Camera = {
    "make": "NIKON CORPORATION",
    "model": "NIKON Z 6",
    "lens": "NIKKOR Z 24-70mm f/4 S",
}


def _orientations() -> list[ImageSpec]:
    """Every EXIF orientation, 1 to 8, on JPEGs that also vary the other tags."""
    extras: list[dict[str, Any]] = [
        {**CANON, "taken": "2021:06:15 12:34:56", "offset": "+02:00", "gps": PARIS},
        {**SONY, "taken": "2020:12:31 23:59:59"},
        {**APPLE, "taken": "2022:01:02 03:04:05", "offset": "+11:00", "gps": SYDNEY},
        {"make": "NIKON CORPORATION", "model": "NIKON Z 6", "gps": QUITO},
        {**APPLE, "taken": "2019:03:10 08:00:00", "offset": "-05:00"},
        {**CANON, "taken": "2023:07:14 17:45:30", "offset": "+00:00", "gps": DEAD_SEA},
        {"make": "FUJIFILM", "model": "X-T4", "lens": "XF35mmF1.4 R"},
        {**SONY, "taken": "2018:08:08 08:08:08", "offset": "-03:30", "gps": REYKJAVIK},
    ]
    sizes = [(320, 240), (240, 320), (400, 300), (160, 120), (300, 400), (256, 256)]
    return [
        ImageSpec(f"orientation_{n}.jpg", sizes[n % len(sizes)], ExifSpec(orientation=n, **extra))
        for n, extra in enumerate(extras, start=1)
    ]


def _exif_images() -> list[ImageSpec]:
    full = ExifSpec(1, **CANON, taken="2021:06:15 12:34:56", offset="+02:00", gps=PARIS)
    return [
        *_orientations(),
        ImageSpec("date_no_zone.jpg", (200, 150), ExifSpec(taken="2017:05:06 07:08:09")),
        ImageSpec("gps_only.jpg", (200, 150), ExifSpec(gps=DEAD_SEA)),
        ImageSpec("camera_only.jpg", (180, 120), ExifSpec(**SONY)),
        ImageSpec("progressive.jpg", (640, 480), full, options=(("progressive", True),)),
        ImageSpec(
            "quality95_444.jpg",
            (320, 240),
            ExifSpec(6, **APPLE, taken="2022:02:02 22:22:22", offset="+09:00", gps=SYDNEY),
            options=(("quality", 95), ("subsampling", 0)),
        ),
        ImageSpec(
            "gray.jpg", (160, 160), ExifSpec(3, **SONY, taken="2016:02:18 13:06:17"), mode="L"
        ),
        ImageSpec(
            "large.jpg",
            (1600, 1200),
            ExifSpec(8, **CANON, taken="2024:12:24 18:00:00", offset="+01:00", gps=REYKJAVIK),
        ),
        ImageSpec(
            "exif.png", (200, 150), ExifSpec(3, **SONY, taken="2020:02:29 12:00:00", gps=QUITO)
        ),
        ImageSpec(
            "exif_rgba.png",
            (128, 128),
            ExifSpec(1, **APPLE, taken="2021:01:01 00:00:00", offset="-08:00"),
            mode="RGBA",
        ),
        ImageSpec(
            "exif_lossy.webp",
            (320, 240),
            ExifSpec(6, **APPLE, taken="2022:06:21 05:43:00", offset="+10:00", gps=SYDNEY),
        ),
        ImageSpec("exif_lossless.webp", (160, 120), full, options=(("lossless", True),)),
        ImageSpec("exif.tiff", (160, 120), ExifSpec(5, **SONY)),  # Pillow's TIFF: IFD0 only
        ImageSpec(
            "exif.heic",
            (256, 192),
            ExifSpec(1, **APPLE, taken="2023:03:03 03:03:03", offset="+05:30", gps=PARIS),
            options=(("quality", 50),),
        ),
        ImageSpec(
            "exif.avif",
            (256, 192),
            ExifSpec(None, **APPLE, taken="2023:04:04 04:04:04", offset="-07:00", gps=QUITO),
            options=(("quality", 50), ("speed", 10)),
        ),
        ImageSpec(
            "nepal.jpg",
            (360, 240),
            ExifSpec(1, **NIKON, taken="2019:11:11 11:11:11", offset="+05:45", gps=KATHMANDU),
        ),
        ImageSpec(
            "exif_animated.webp",
            (96, 64),
            ExifSpec(1, **APPLE, taken="2024:02:29 09:30:00", offset="+01:00"),
            frames=4,
            frame_ms=120,
        ),
        ImageSpec("sidecar.jpg", (240, 180), ExifSpec(1, **CANON, taken="2019:07:04 12:00:00")),
    ]


XMP_ONLY = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
 photoshop:DateCreated="2015-10-21T16:29:00-07:00" tiff:Make="Polaroid" tiff:Model="SX-70"/>
</rdf:RDF></x:xmpmeta>"""
XMP_ONLY_FIELDS = {
    "taken_at": "2015-10-21T16:29:00",
    "taken_at_offset_min": -420,
    "taken_at_source": "xmp:DateCreated",
    "camera_make": "Polaroid",
    "camera_model": "SX-70",
}

# The sidecar of sidecar.jpg, as a photo manager writes it: its date and place win over the
# EXIF in the file (issue 19, "XMP sidecars").
SIDECAR = """<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    exif:DateTimeOriginal="2019-07-04T18:30:00-04:00"
    exif:GPSLatitude="40,44.5000N"
    exif:GPSLongitude="73,59.1000W"
    exif:GPSAltitude="120/10"
    exif:GPSAltitudeRef="0"
    tiff:Orientation="3"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end='w'?>
"""
SIDECAR_FIELDS = {
    "taken_at": "2019-07-04T18:30:00",
    "taken_at_offset_min": -240,
    "taken_at_source": "xmp-sidecar:DateTimeOriginal",
    "gps_lat": round(40 + 44.5 / 60, 7),
    "gps_lon": round(-(73 + 59.1 / 60), 7),
    "gps_alt_m": 12.0,
    "orientation": 3,
    "rotation_deg": 180,
    "mirrored": False,
}

PLAIN_IMAGES = (
    ImageSpec("plain.jpg", (320, 240)),
    ImageSpec("xmp_only.jpg", (200, 200), xmp=XMP_ONLY),
    ImageSpec("plain.png", (320, 240)),
    ImageSpec("palette.png", (200, 100), mode="P"),
    ImageSpec("gray16.png", (64, 64), mode="I;16"),
    ImageSpec("static.gif", (120, 90), mode="P"),
    ImageSpec("animated.gif", (96, 64), mode="P", frames=10, frame_ms=100),
    ImageSpec("animated.webp", (96, 64), frames=8, frame_ms=80),
    ImageSpec("animated.png", (96, 64), frames=6, frame_ms=150),
    ImageSpec("lossy.webp", (320, 240)),
    ImageSpec("lossless.webp", (128, 96), options=(("lossless", True),)),
    ImageSpec("lzw.tiff", (200, 150), options=(("compression", "tiff_lzw"),)),
    ImageSpec("plain.bmp", (100, 75)),
    ImageSpec("plain.avif", (320, 240), options=(("quality", 50), ("speed", 10))),
    ImageSpec("plain.heic", (320, 240), options=(("quality", 50),)),
    ImageSpec("plain.jp2", (128, 128)),
)


def _av_fields(spec: AvSpec) -> dict[str, Any]:
    fields: dict[str, Any] = {"duration_s": spec.seconds}
    if spec.video is not None:
        fields["width"], fields["height"] = spec.size
        if spec.rotation_deg:
            fields["rotation_deg"] = spec.rotation_deg
    created = spec.metadata.get("creation_time")
    if created is not None:  # QuickTime dates are UTC
        fields.update(
            taken_at=created[:19], taken_at_offset_min=0, taken_at_source="quicktime:CreateDate"
        )
    location = next((v for k, v in spec.metadata.items() if "location" in k.lower()), None)
    if location is not None:  # ISO 6709, "+48.8584+002.2945+035.000/"
        lat, lon, alt = (
            float(p) for p in location.rstrip("/").replace("+", " +").replace("-", " -").split()
        )
        fields.update(gps_lat=lat, gps_lon=lon, gps_alt_m=alt)
    return fields


def make_mix(directory: Path) -> dict[str, Any]:
    """Write every file of the mix into `directory`, and its manifest; return the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner: errors only
    files: dict[str, Any] = {}
    for kind, specs in (("video", VIDEOS), ("audio", AUDIO)):
        for spec in specs:
            write_av(directory, spec)
            files[spec.name] = {"kind": kind, "fields": _av_fields(spec)}
    for image in (*_exif_images(), *PLAIN_IMAGES):
        write_image(directory, image)
        files[image.name] = {
            "kind": "image",
            "exif": image.exif is not None,
            "fields": image_fields(image),
        }
    files["xmp_only.jpg"]["fields"].update(XMP_ONLY_FIELDS)
    sidecar = "sidecar.jpg" + SIDECAR_SUFFIX
    (directory / sidecar).write_text(SIDECAR, encoding="utf-8")
    files[sidecar] = {"kind": "sidecar", "of": "sidecar.jpg", "fields": SIDECAR_FIELDS}
    manifest = {"generator": "bench.mix", "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    args = parser.parse_args(argv)
    files = make_mix(args.out)["files"]
    kinds = [entry["kind"] for entry in files.values()]
    exif = sum(1 for entry in files.values() if entry.get("exif"))
    media = len(kinds) - kinds.count("sidecar")
    print(
        f"{media} files in {args.out}: {kinds.count('video')} video, "
        f"{kinds.count('audio')} audio, {kinds.count('image')} images ({exif} with EXIF); "
        f"{args.out / MANIFEST}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
