"""XMP embedded in MP4 and QuickTime files (mediad/extract/bmff_xmp.py): exiftool writes
the packet into videos PyAV made (a top-level `uuid` box in MP4, `moov/udta/XMP_` in
MOV), the extractor reads its typed values; hostile boxes end done through a real worker."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.mix_av import SYDNEY, AvSpec, write_av
from mediad.extract.bmff_xmp import MAX_BOXES, MAX_PACKET_BYTES, XMP_UUID, xmp_packet
from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from mediad.extract.summary import PHOTO_COLUMNS
from mediad.models import Extracted, Record
from mediad.pool import WorkerPool
from tests.support.camera import EXIFTOOL_MISSING
from tests.support.workers import extract_in_worker, one_worker

pytestmark = pytest.mark.skipif(EXIFTOOL_MISSING is not None, reason=str(EXIFTOOL_MISSING))
OPTIONS = ExtractOptions()
XMP_TAGS = (
    "-XMP-xmp:CreateDate=2020:01:02 03:04:05+01:00",
    "-XMP-exif:GPSLatitude=10.5",
    "-XMP-exif:GPSLongitude=20.25",
)
# QuickTime's own date and place, which the file's XMP wins over.
PHONE = {"location": SYDNEY, "creation_time": "2022-01-02T03:04:05.000000Z"}


def _video(directory: Path, name: str, metadata: dict[str, str] | None = None) -> Path:
    return write_av(directory, AvSpec(name, "libx264", (), (64, 48), 0.2, metadata=metadata or {}))


def _tagged(path: Path) -> Path:
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *XMP_TAGS, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bmff_xmp")
    _tagged(_video(directory, "xmp.mp4"))
    _tagged(_video(directory, "xmp.mov", PHONE))
    _video(directory, "plain.mp4")
    return directory


def _camera(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in PHOTO_COLUMNS if summary.get(k) is not None}


def _packet(path: Path) -> bytes | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return xmp_packet(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


@pytest.mark.parametrize("name", ["xmp.mp4", "xmp.mov"])
def test_the_xmp_of_an_mp4_and_a_mov_is_read(videos: Path, name: str) -> None:
    result = extract(str(videos / name), OPTIONS)
    assert isinstance(result, Extracted), result
    # The MOV's QuickTime date (UTC) and ©xyz place lose to its XMP.
    assert _camera(result.summary) == {
        "taken_at": "2020-01-02T03:04:05+01:00",
        "taken_at_offset_min": 60,
        "taken_at_source": "xmp:CreateDate",
        "gps_lat": 10.5,
        "gps_lon": 20.25,
        "rotation_deg": 0,
    }
    reader = json.loads(result.document)["reader"]
    assert reader["xmp"]["Xmp.xmp.CreateDate"] == "2020-01-02T03:04:05+01:00"
    assert result.reader_version == reader["library"]


def test_where_exiftool_puts_the_packet_is_where_it_is_found(videos: Path) -> None:
    mp4 = (videos / "xmp.mp4").read_bytes()
    assert b"uuid" + XMP_UUID in mp4
    assert b"XMP_" in (videos / "xmp.mov").read_bytes()
    packet = _packet(videos / "xmp.mp4")
    assert packet is not None and packet.startswith(b"<?xpacket begin")


def test_a_video_without_xmp_gives_none(videos: Path) -> None:
    assert _packet(videos / "plain.mp4") is None
    result = extract(str(videos / "plain.mp4"), OPTIONS)
    assert isinstance(result, Extracted), result
    assert result.summary["taken_at"] is None and result.summary["gps_lat"] is None
    assert json.loads(result.document)["reader"] == {"library": result.reader_version}


def _hostile(plain: bytes) -> dict[str, bytes]:
    """A real MP4 (so MediaInfo reads it) with hostile boxes after its own."""
    deep = b"XMP_" + b"<x/>"
    for _ in range(3000):  # nested udta boxes: only moov/udta/XMP_ is ever opened
        deep = _box(b"udta", deep)
    return {
        "smaller_than_header": plain + struct.pack(">I4s", 4, b"uuid") + XMP_UUID,
        "past_eof": plain + struct.pack(">I4s", 10_000, b"uuid") + XMP_UUID + b"<x:xmpmeta",
        "huge_largesize": plain + struct.pack(">I4sQ", 1, b"uuid", 2**64 - 1) + XMP_UUID,
        "zero_size_inside": plain + _box(b"moov", _box(b"udta", b"\0\0\0\0XMP_<?xpacket")),
        "deep_nesting": plain + _box(b"moov", deep),
        "many_boxes": plain + _box(b"free", b"") * MAX_BOXES + _box(b"uuid", XMP_UUID + b"<a/>"),
        "over_the_cap": plain + _box(b"uuid", XMP_UUID + b" " * (MAX_PACKET_BYTES + 1)),
        "garbage_xml": plain + _box(b"uuid", XMP_UUID + b"<?xpacket begin='\xff'<<<\0>"),
    }


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerPool]:
    with one_worker(OPTIONS) as pool:
        yield pool


def test_hostile_boxes_never_raise_and_end_done(
    videos: Path, tmp_path: Path, worker: WorkerPool
) -> None:
    packets = {}
    for number, (name, data) in enumerate(_hostile((videos / "plain.mp4").read_bytes()).items()):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(data)
        packets[name] = _packet(path)
        outcome = extract_in_worker(worker, path, number + 1)
        assert isinstance(outcome, Record), (name, outcome)  # MediaInfo's row: done
        assert outcome.summary()["taken_at"] is None, name
        reader = json.loads(outcome.document())["reader"]
        assert "xmp" not in reader, (name, reader)
        if name == "garbage_xml":
            assert reader["error"], reader  # exiv2's reason, the row unharmed
    # Only the zero-size XMP_ (to its parent's end) and the garbage are packets at all.
    assert {name for name, packet in packets.items() if packet is not None} == {
        "zero_size_inside",
        "garbage_xml",
    }, packets
