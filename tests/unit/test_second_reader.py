"""The second reader through the extractor, on photos exiftool tagged and videos PyAV made
(tests/support/camera.py): the typed values, XMP sidecars, the switch, and hostile EXIF
through a real worker process. No database."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.mix import SIDECAR
from mediad.errors import FailureClass
from mediad.extract import reader
from mediad.extract.extractor import extract
from mediad.extract.gate import fingerprint_of
from mediad.extract.options import ExtractOptions
from mediad.extract.sidecar import MAX_SIDECAR_BYTES
from mediad.extract.summary import PHOTO_COLUMNS
from mediad.models import Extracted, Failure, Record
from mediad.pool import WorkerPool
from tests.support.camera import (
    EXIFTOOL_MISSING,
    bit_flipped,
    hostile_exif,
    make_photos,
    make_videos,
    plain_jpeg,
)
from tests.support.workers import extract_in_worker, one_worker

pytestmark = pytest.mark.skipif(EXIFTOOL_MISSING is not None, reason=str(EXIFTOOL_MISSING))
OPTIONS = ExtractOptions()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("camera")
    make_photos(directory)
    make_videos(directory)
    return directory


def _read(path: Path, options: ExtractOptions = OPTIONS) -> Extracted:
    outcome = extract(str(path), options)
    assert isinstance(outcome, Extracted), outcome
    return outcome


def _camera(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in PHOTO_COLUMNS if summary.get(k) is not None}


def _reader(result: Extracted) -> dict[str, Any]:
    part: dict[str, Any] = json.loads(result.document)["reader"]
    return part


def test_exif_with_gps_orientation_6_and_a_zone(media: Path) -> None:
    result = _read(media / "gps_orientation6.jpg")
    assert _camera(result.summary) == {
        "taken_at": "2021-06-15T12:34:56+02:00",
        "taken_at_offset_min": 120,
        "taken_at_source": "exif:DateTimeOriginal",
        "gps_lat": 48.8584,
        "gps_lon": 2.2945,
        "gps_alt_m": 35.5,
        "orientation": 6,
        "rotation_deg": 90,
        "mirrored": False,
        "camera_make": "Canon",
        "camera_model": "Canon EOS R5",
        "lens": "RF24-105mm F4 L IS USM",
    }
    assert (result.summary["width"], result.summary["height"]) == (64, 48)  # MediaInfo's
    assert result.reader_version is not None and result.reader_version.startswith("python-exiv2")
    assert result.sidecar is None
    document = json.loads(result.document)
    assert document["media"]["track"][0]["Format"] == "JPEG"  # MediaInfo's, untouched
    reader = document["reader"]
    assert reader["library"] == result.reader_version
    assert reader["exif"]["Exif.Image.Model"] == "Canon EOS R5"
    assert reader["exif"]["Exif.Photo.OffsetTimeOriginal"] == "+02:00"
    assert reader["xmp"]["Xmp.dc.title"] == 'lang="x-default" The tower'
    assert reader["iptc"]["Iptc.Application2.Keywords"] in ("paris", "tower")


def test_a_date_without_a_zone_has_no_offset(media: Path) -> None:
    summary = _read(media / "no_zone.jpg").summary
    assert (summary["taken_at"], summary["taken_at_offset_min"]) == ("2017-05-06T07:08:09", None)
    assert (summary["gps_lat"], summary["gps_lon"], summary["gps_alt_m"]) == (
        -33.8568,
        151.2153,
        None,
    )
    assert (summary["orientation"], summary["rotation_deg"], summary["mirrored"]) == (
        3,
        180,
        False,
    )
    assert summary["camera_make"] is None  # not written, not guessed


def test_orientation_5_is_what_exiftool_says(media: Path) -> None:
    words = subprocess.run(
        ["exiftool", "-s3", "-Orientation", str(media / "mirrored5.jpg")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert words == "Mirror horizontal and rotate 270 CW"
    summary = _read(media / "mirrored5.jpg").summary
    assert (summary["orientation"], summary["rotation_deg"], summary["mirrored"]) == (5, 270, True)


def test_an_xmp_date_in_the_file(media: Path) -> None:
    summary = _read(media / "xmp_date.jpg").summary
    assert summary["taken_at"] == "2015-10-21T16:29:00-07:00"
    assert summary["taken_at_source"] == "xmp:DateCreated"


def test_the_sidecars_date_and_place_win(media: Path) -> None:
    result = _read(media / "with_sidecar.jpg")
    camera = _camera(result.summary)
    assert camera == {
        "taken_at": "2019-07-04T18:30:00-04:00",
        "taken_at_offset_min": -240,
        "taken_at_source": "xmp-sidecar:DateTimeOriginal",
        "gps_lat": 40.7416667,
        "gps_lon": -73.985,
        "gps_alt_m": 12.0,
        "orientation": 3,
        "rotation_deg": 180,
        "mirrored": False,
        "camera_make": "Canon",  # the file's EXIF, where the sidecar says nothing
    }
    assert result.sidecar == fingerprint_of(os.stat(media / "with_sidecar.jpg.xmp"))
    sidecar = _reader(result)["sidecar"]
    assert sidecar["path"] == str(media / "with_sidecar.jpg.xmp")
    assert sidecar["xmp"]["Xmp.exif.DateTimeOriginal"] == "2019-07-04T18:30:00-04:00"
    assert _reader(result)["exif"]["Exif.Photo.DateTimeOriginal"] == "2019:07:04 12:00:00"


def test_a_sidecar_named_without_the_extension(media: Path) -> None:
    result = _read(media / "stem_sidecar.jpg")
    assert result.summary["taken_at"] == "2012-12-12T12:12:12+00:00"
    assert result.sidecar == fingerprint_of(os.stat(media / "stem_sidecar.xmp"))


def test_sidecars_that_cannot_be_read_leave_the_row_done(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.xmp").write_text(SIDECAR, encoding="utf-8")
    cases: dict[str, Callable[[Path], Any]] = {
        "escape.jpg": lambda p: os.symlink(outside / "secret.xmp", p),
        "big.jpg": lambda p: p.write_bytes(b" " * (MAX_SIDECAR_BYTES + 1)),
        "garbage.jpg": lambda p: p.write_bytes(b"<x:xmpmeta garbage \x00\xff"),
    }
    options = ExtractOptions(roots=(str(root),))
    for name, make in cases.items():
        plain_jpeg(root / name)
        make(root / f"{name}.xmp")
        result = _read(root / name, options)
        assert result.summary["taken_at"] is None, name
        sidecar = _reader(result)["sidecar"]
        assert sidecar["error"], name
        assert "xmp" not in sidecar, name
        # Not read, but there: its fingerprint is what a scan compares (an edit may fix
        # it), so the next scan does not find it new.
        assert result.sidecar == fingerprint_of(os.stat(root / f"{name}.xmp")), name
    assert (
        "outside the configured roots"
        in _reader(_read(root / "escape.jpg", options))["sidecar"]["error"]
    )
    # What is not a regular file is passed by, as a scan passes it by: never opened.
    plain_jpeg(root / "fifo.jpg")
    os.mkfifo(root / "fifo.jpg.xmp")
    result = _read(root / "fifo.jpg", options)
    assert "sidecar" not in _reader(result)
    assert result.sidecar is None


def test_a_phone_movs_place_and_date(media: Path) -> None:
    result = _read(media / "location.mov")
    assert _camera(result.summary) == {
        "taken_at": "2022-01-02T03:04:05+00:00",
        "taken_at_offset_min": 0,
        "taken_at_source": "mediainfo:Encoded_Date",
        "gps_lat": -33.8568,
        "gps_lon": 151.2153,
        "gps_alt_m": 10.5,
        "rotation_deg": 0,
    }
    assert result.reader_version is not None  # a video container: looked at too
    assert "video" not in json.dumps(_reader(result).get("xmp", {}))  # exiv2's own, left out


@pytest.mark.parametrize("name", ["location.mov", "apple.mp4", "portrait90.mov", "rotated270.mp4"])
def test_videos_exiv2_parses_as_quicktime_are_not_parsed_for_nothing(
    media: Path, name: str
) -> None:
    """exiv2's QuickTime parser renders only the container's headers, which mediad leaves
    out: such a file is not parsed (about 450 µs a video), its document the same."""
    exiv2 = reader.prepare()
    image = exiv2.ImageFactory.open(str(media / name))
    image.readMetadata()
    families = (image.exifData(), image.xmpData(), image.iptcData())
    keys = [str(datum.key()) for family in families for datum in family]
    # If an exiv2 upgrade makes this parser read tags mediad keeps, this fails first.
    assert keys and all(key.startswith(("Xmp.video.", "Xmp.audio.")) for key in keys), keys
    fd = os.open(media / name, os.O_RDONLY)
    try:
        assert reader.headers_only(fd)
    finally:
        os.close(fd)
    result = _read(media / name)
    assert _reader(result) == {"library": result.reader_version}


def test_iso_bmff_files_exiv2_parses_for_exif_are_parsed(tmp_path: Path) -> None:
    """HEIF, AVIF, Canon's CR3: exiv2's BMFF parser reads their EXIF and XMP."""
    for brand in (b"heic", b"avif", b"crx "):
        path = tmp_path / f"{brand.decode().strip()}.bin"
        path.write_bytes(b"\0\0\0\x18ftyp" + brand + b"\0\0\0\0mif1isom" + bytes(64))
        fd = os.open(path, os.O_RDONLY)
        try:
            assert not reader.headers_only(fd), brand
        finally:
            os.close(fd)


def test_apples_keys_in_an_mp4(media: Path) -> None:
    summary = _read(media / "apple.mp4").summary
    assert _camera(summary) == {
        "taken_at": "2021-06-15T12:34:56+02:00",
        "taken_at_offset_min": 120,
        "taken_at_source": "quicktime:CreationDate",
        "gps_lat": 48.8584,
        "gps_lon": 2.2945,
        "gps_alt_m": 35.0,
        "rotation_deg": 0,
        "camera_make": "Apple",
        "camera_model": "iPhone 12",
    }


@pytest.mark.parametrize(("name", "degrees"), [("portrait90.mov", 90), ("rotated270.mp4", 270)])
def test_video_rotation_is_exiftools(media: Path, name: str, degrees: int) -> None:
    said = subprocess.run(
        ["exiftool", "-n", "-s3", "-Composite:Rotation", str(media / name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert int(said) == degrees
    summary = _read(media / name).summary
    assert (summary["rotation_deg"], summary["orientation"], summary["mirrored"]) == (
        degrees,
        None,
        None,
    )


def test_second_reader_off_reads_nothing_more(media: Path) -> None:
    off = ExtractOptions(second_reader=False)
    result = _read(media / "with_sidecar.jpg", off)
    assert _camera(result.summary) == {}
    assert (result.reader_version, result.sidecar) == (None, None)
    assert "reader" not in json.loads(result.document)
    # What MediaInfo states itself stays.
    assert _read(media / "location.mov", off).summary["gps_lat"] == -33.8568


def test_audio_files_are_not_read(corpus: tuple[Path, dict[str, Any]]) -> None:
    directory, expected = corpus
    for name in (n for n in expected if n.endswith((".mp3", ".flac", ".wav"))):
        result = _read(directory / name)
        assert result.reader_version is None and "reader" not in json.loads(result.document)


# --- hostile EXIF, through a real worker -------------------------------------------------


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerPool]:
    with one_worker(OPTIONS) as pool:
        yield pool


def _done_with_reader(outcome: Record | Failure) -> dict[str, Any]:
    assert isinstance(outcome, Record), outcome  # MediaInfo read it: done, whatever exiv2 did
    assert "\\u0000" not in outcome.text
    assert outcome.summary()["container"] == "JPEG"
    reader: dict[str, Any] = json.loads(outcome.document())["reader"]
    return reader


def test_hostile_exif_ends_done_with_the_readers_reason(tmp_path: Path, worker: WorkerPool) -> None:
    reasons = {}
    for number, (name, path) in enumerate(sorted(hostile_exif(tmp_path).items()), 1):
        started = time.monotonic()
        outcome = extract_in_worker(worker, path, number)
        assert time.monotonic() - started < 10, name
        if name == "app1_overlong.jpg":
            # MediaInfo itself finds no JPEG past a segment longer than the file: classed
            # as any file it cannot read, before the second reader is asked.
            assert isinstance(outcome, Failure), outcome
            assert outcome.failure_class is FailureClass.UNSUPPORTED
            continue
        reader = _done_with_reader(outcome)
        reasons[name] = reader.get("error") or sorted(reader)
    # Each either read (what could be) or said why not.
    assert set(reasons) == {
        "ifd_loop.jpg",
        "huge_count.jpg",
        "bad_pointer.jpg",
        "many_entries.jpg",
        "nul_make.jpg",
        "truncated.jpg",
        "segment_length_1.jpg",
    }, reasons
    assert reasons["segment_length_1.jpg"] == "Failed to read image data"
    assert reasons["nul_make.jpg"] == ["cut", "exif", "library"]  # the 60 kB blob: cut
    outcome = extract_in_worker(worker, tmp_path / "nul_make.jpg", 99)
    assert isinstance(outcome, Record)
    assert outcome.summary()["camera_make"] == "Can"  # exiv2 ends the text at its NUL


def test_digits_of_other_scripts_in_xmp_end_done(tmp_path: Path, worker: WorkerPool) -> None:
    """An orientation of "\u00b3" (a superscript three: str.isdigit() says yes, int() says no)
    in a sidecar or in the file's own XMP: no value, and the worker does not die of it."""
    hostile = SIDECAR.replace('tiff:Orientation="3"', 'tiff:Orientation="\u00b3"')
    plain_jpeg(tmp_path / "sidecar.jpg")
    (tmp_path / "sidecar.jpg.xmp").write_text(hostile, encoding="utf-8")
    plain_jpeg(tmp_path / "inside.jpg")
    subprocess.run(  # the same packet in the file itself, as it is (not checked by exiftool)
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            f"-xmp<={tmp_path / 'sidecar.jpg.xmp'}",
            str(tmp_path / "inside.jpg"),
        ],
        check=True,
        capture_output=True,
    )
    for number, name in enumerate(("sidecar.jpg", "inside.jpg"), 200):
        outcome = extract_in_worker(worker, tmp_path / name, number)
        _done_with_reader(outcome)
        assert isinstance(outcome, Record)
        assert outcome.summary()["orientation"] is None, name
    # The sidecar's other fields stand.
    assert _read(tmp_path / "sidecar.jpg").summary["taken_at"] == "2019-07-04T18:30:00-04:00"


def test_a_reader_failure_sets_no_reader_version(tmp_path: Path) -> None:
    path = hostile_exif(tmp_path)["segment_length_1.jpg"]
    result = _read(path)
    assert result.reader_version is None
    assert _reader(result)["error"] == "Failed to read image data"
    assert result.summary["container"] == "JPEG" and result.summary["width"] == 64


def test_bit_flipped_exif_ends_done(media: Path, tmp_path: Path, worker: WorkerPool) -> None:
    photo = (media / "gps_orientation6.jpg").read_bytes()
    errors = 0
    for number, data in enumerate(bit_flipped(photo, range(40)), 100):
        path = tmp_path / f"flipped{number}.jpg"
        path.write_bytes(data)
        reader = _done_with_reader(extract_in_worker(worker, path, number))
        errors += "error" in reader
        path.unlink()
    assert errors < 40  # most flips leave something readable


def test_an_oversized_xmp_packet_is_bounded_in_the_document(tmp_path: Path) -> None:
    from PIL import Image

    from mediad.extract.reader import MAX_TAGS, MAX_VALUE_CHARS

    properties = " ".join(f'xmp:Label{n}="v{n}"' for n in range(1000))  # 40 kB with the name
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmp:Nickname="{"n" * 20_000}" {properties}/></rdf:RDF></x:xmpmeta>'
    )
    path = tmp_path / "big_xmp.jpg"
    Image.new("RGB", (32, 32)).save(path, xmp=packet.encode())
    reader = _reader(_read(path))
    assert len(reader["xmp"]) == MAX_TAGS
    assert reader["cut"] >= 1001 - MAX_TAGS
    assert reader["xmp"]["Xmp.xmp.Nickname"] == "n" * MAX_VALUE_CHARS + "…"


def test_switching_the_reader_is_a_worker_setting() -> None:
    """A reload compares worker settings and replaces every worker when they differ
    (mediad/daemon/reload.py): `extract.second_reader` is one of them."""
    from dataclasses import replace

    from mediad.config import Config
    from mediad.pool import worker_settings

    on = Config()
    off = replace(on, extract=replace(on.extract, second_reader=False))
    assert worker_settings(on).options.second_reader is True
    assert worker_settings(off).options.second_reader is False
    assert worker_settings(on) != worker_settings(off)


def test_animated_gif_apng_and_webp(tmp_path: Path) -> None:
    from tests.support.camera import make_animations

    for name, (frames, seconds) in make_animations(tmp_path).items():
        summary = _read(tmp_path / name).summary
        assert summary["frame_count"] == frames, name
        assert summary["duration_s"] == pytest.approx(seconds), name
        off = _read(tmp_path / name, ExtractOptions(second_reader=False)).summary
        assert off["frame_count"] is None, name
    still = plain_jpeg(tmp_path / "still.jpg")
    assert _read(still).summary["frame_count"] is None


def test_importing_the_extractor_loads_no_reader_library() -> None:
    """Only a worker loads libexiv2 (at its start): the supervisor and the commands that
    import the extractor never do."""
    import sys

    code = (
        "import sys, mediad.extract.extractor, mediad.extract.worker; "
        "print(sorted(m for m in ('exiv2', 'pymediainfo') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
