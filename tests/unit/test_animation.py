"""mediad.extract.animation on files the tests make: Pillow's animations, hand-built GIFs,
APNG and WebP chunks, compared with the durations written and with exiftool, and hostile
bytes (truncated, bit-flipped, lying sizes) that must give (None, None), never raise."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench import exiftool
from bench.reader_fields import agree
from mediad.extract import animation
from mediad.extract.animation import animation_of

NONE = (None, None)
FORMATS = {"gif": "GIF", "png": "PNG", "webp": "WebP"}  # MediaInfo's General Format
DELAYS_MS = [100, 200, 0, 50, 30]


def frames_of(n: int, size: tuple[int, int] = (32, 24)) -> list[Image.Image]:
    # Distinct frames: Pillow merges identical neighbours into one longer frame.
    return [Image.new("RGB", size, (40 * i % 256, 255 - 30 * i % 256, 7 * i)) for i in range(n)]


def pillow_bytes(ext: str, durations: list[int] | None) -> bytes:
    """A Pillow animation with these per-frame durations (ms), or a still image."""
    out = io.BytesIO()
    if durations is None:
        frames_of(1)[0].save(out, format=ext.upper())
    else:
        first, *rest = frames_of(len(durations))
        kind = ext.upper()
        first.save(out, format=kind, save_all=True, append_images=rest, duration=durations, loop=0)
    return out.getvalue()


def read(data: bytes, container: str | None, tmp_path: Path) -> tuple[int | None, float | None]:
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return animation_of(fd, len(data), container)
    finally:
        os.close(fd)


@pytest.fixture
def memfd() -> Iterator[int]:
    fd = os.memfd_create("animation")
    yield fd
    os.close(fd)


def on(fd: int, data: bytes, container: str | None) -> tuple[int | None, float | None]:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return animation_of(fd, len(data), container)


# --- the values written -----------------------------------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
def test_an_animation_gives_its_frames_and_the_sum_of_its_delays(ext: str, memfd: int) -> None:
    assert on(memfd, pillow_bytes(ext, DELAYS_MS), FORMATS[ext]) == (5, 0.38)


@pytest.mark.parametrize("ext", FORMATS)
def test_a_still_image_gives_nothing(ext: str, memfd: int) -> None:
    assert on(memfd, pillow_bytes(ext, None), FORMATS[ext]) == NONE


@pytest.mark.parametrize("ext", FORMATS)
def test_only_the_named_container_is_parsed(ext: str, memfd: int) -> None:
    data = pillow_bytes(ext, DELAYS_MS)
    for container in (None, "", "JPEG", "MPEG-4", *(c for e, c in FORMATS.items() if e != ext)):
        assert on(memfd, data, container) == NONE, container


def test_an_animation_with_no_delays_has_frames_and_no_duration(memfd: int) -> None:
    """Delay 0 everywhere: no stated duration (browsers would play 0.1 s a frame: a guess)."""
    assert on(memfd, pillow_bytes("gif", [0, 0, 0]), "GIF") == (3, None)
    assert on(memfd, pillow_bytes("webp", [0, 0, 0]), "WebP") == (3, None)


def test_a_webp_frame_of_more_than_4095_ms_keeps_its_24_bits(memfd: int) -> None:
    assert on(memfd, pillow_bytes("webp", [5000, 70000, 10]), "WebP") == (3, 75.01)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def apng_with_delays(delays: list[tuple[int, int]]) -> bytes:
    """Pillow's APNG with each fcTL's delay_num/delay_den replaced (CRCs made again)."""
    data, pos, out, index = pillow_bytes("png", [10] * len(delays)), 8, [b""], 0
    out = [data[:8]]
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"fcTL":
            body = body[:20] + struct.pack(">HH", *delays[index]) + body[24:]
            index += 1
        out.append(chunk(kind, body))
        pos += 12 + length
    return b"".join(out)


def test_an_apng_delay_with_denominator_0_is_in_hundredths(memfd: int) -> None:
    assert on(memfd, apng_with_delays([(1, 0), (1, 3), (250, 1000)]), "PNG") == (3, 0.593333)


def gif(*blocks: bytes, global_table: bool = True, trailer: bytes = b";") -> bytes:
    screen = struct.pack("<HHBBB", 4, 4, 0x81 if global_table else 0, 0, 0)
    table = bytes(12) if global_table else b""
    return b"GIF89a" + screen + table + b"".join(blocks) + trailer


def control(delay: int) -> bytes:
    return b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00"


def image(local_table: bool = False, data: bytes = b"\x02\x02\x44\x01\x00") -> bytes:
    flags = 0x82 if local_table else 0  # a local table of 8 colours
    return b"\x2c" + struct.pack("<HHHHB", 0, 0, 4, 4, flags) + (bytes(24) * local_table) + data


COMMENT = b"\x21\xfe\x05hello\x03abc\x00"
NETSCAPE = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
PLAIN_TEXT = b"\x21\x01\x0c" + bytes(12) + b"\x02hi\x00"


def test_a_gif_walks_local_tables_and_every_kind_of_extension(memfd: int) -> None:
    data = gif(
        NETSCAPE,
        COMMENT,
        control(7),
        image(local_table=True),
        PLAIN_TEXT,
        control(11),
        image(),
        control(1),
        image(local_table=True, data=b"\x02" + b"\xff" + bytes(255) + b"\x01\x00\x00"),
        global_table=False,
    )
    assert on(memfd, data, "GIF") == (3, 0.19)


def test_a_gif_without_its_trailer_is_damaged(memfd: int) -> None:
    assert on(memfd, gif(control(5), image(), control(5), image(), trailer=b""), "GIF") == NONE
    assert on(memfd, gif(control(5), image(), control(5), image(), trailer=b"!"), "GIF") == NONE


def test_a_large_gif_is_walked_in_bounded_reads(memfd: int) -> None:
    """10 MB of image data in full sub-blocks: walked, not held, in well under a second."""
    data = b"\x02" + (b"\xff" + bytes(255)) * 40_000 + b"\x00"
    payload = gif(control(4), image(data=data), control(6), image(data=data))
    started = time.process_time()
    assert on(memfd, payload, "GIF") == (2, 0.1)
    assert time.process_time() - started < 2


# --- exiftool, the oracle ---------------------------------------------------------------


@pytest.mark.parametrize("durations", [DELAYS_MS, [40] * 12, [0, 0, 0], [1000, 10], None], ids=str)
def test_agrees_with_exiftool(durations: list[int] | None, tmp_path: Path) -> None:
    if (why := exiftool.missing()) is not None:
        pytest.skip(f"{why}: it is the oracle")
    paths = []
    for ext in FORMATS:
        path = tmp_path / f"a.{ext}"
        path.write_bytes(pillow_bytes(ext, durations))
        paths.append(path)
    tags = exiftool.read_tags(paths)
    compared = 0
    for path in paths:
        oracle = exiftool.fields_of(tags[path], image=True)
        frames, seconds = read(path.read_bytes(), FORMATS[path.suffix[1:]], tmp_path)
        for key, ours in (("frame_count", frames), ("duration_s", seconds)):
            if key == "duration_s" and oracle.get(key) == 0:
                # exiftool states a WebP's 0 ms; a total of 0 is no duration here
                assert ours is None
            elif key in oracle:  # exiftool 12.57 has no APNG duration nor WebP frame count
                assert agree(key, ours, oracle[key]), (path.name, key, ours, oracle[key])
                compared += 1
            elif durations is not None and any(durations):
                assert ours is not None, (path.name, key)  # beyond exiftool
    assert compared >= (2 if durations and len(durations) > 1 else 0)


# --- hostile input ----------------------------------------------------------------------

SMALL = {
    "gif": gif(control(5), image(local_table=True), COMMENT, control(7), image()),
    "png": pillow_bytes("png", [10, 20, 30]),
    "webp": pillow_bytes("webp", [10, 20, 30]),
}
SMALL_VALUES = {"gif": (2, 0.12), "png": (3, 0.06), "webp": (3, 0.06)}


@pytest.mark.parametrize("ext", SMALL)
def test_every_truncation_gives_nothing(ext: str, memfd: int) -> None:
    data = SMALL[ext]
    assert on(memfd, data, FORMATS[ext]) == SMALL_VALUES[ext]
    for end in range(len(data)):
        assert on(memfd, data[:end], FORMATS[ext]) == NONE, end


def plausible(result: tuple[int | None, float | None]) -> bool:
    frames, seconds = result
    if frames is None:
        return seconds is None
    return 2 <= frames <= animation.MAX_FRAMES and (seconds is None or 0 < seconds < 1e9)


@pytest.mark.parametrize("ext", SMALL)
def test_every_flipped_bit_gives_a_plausible_value_or_nothing(ext: str, memfd: int) -> None:
    data = SMALL[ext]
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert plausible(on(memfd, bytes(flipped), FORMATS[ext])), bit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ext=st.sampled_from(sorted(SMALL)),
    cut=st.integers(min_value=0, max_value=400),
    noise=st.binary(max_size=300),
)
def test_noise_after_a_real_header_never_raises(ext: str, cut: int, noise: bytes) -> None:
    fd = os.memfd_create("noise")
    try:
        assert plausible(on(fd, SMALL[ext][:cut] + noise, FORMATS[ext]))
    finally:
        os.close(fd)


def test_a_gif_sub_block_that_claims_more_than_the_file(memfd: int) -> None:
    assert on(memfd, gif(control(5), image(data=b"\x02\xff\x01\x02"), trailer=b""), "GIF") == NONE
    claims = gif(control(5), image(), control(5), image(data=b"\x02\xff" + bytes(10)))
    assert on(memfd, claims, "GIF") == NONE


def test_a_gif_past_the_step_cap_gives_nothing(memfd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = gif(control(5), image(data=b"\x02" + b"\x01\x00" * 600 + b"\x00"), control(5), image())
    assert on(memfd, data, "GIF") == (2, 0.1)
    monkeypatch.setattr(animation, "MAX_STEPS", 500)
    assert on(memfd, data, "GIF") == NONE


def riff(*chunks: bytes, extra: int = 0) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) + extra) + body


def webp_chunk(kind: bytes, data: bytes, claimed: int | None = None) -> bytes:
    size = len(data) if claimed is None else claimed
    return kind + struct.pack("<I", size) + data + b"\x00" * (len(data) & 1)


VP8X = webp_chunk(b"VP8X", b"\x02\x00\x00\x00" + bytes(6))
ANIM = webp_chunk(b"ANIM", bytes(6))


def anmf(ms: int, claimed: int | None = None) -> bytes:
    return webp_chunk(b"ANMF", bytes(12) + ms.to_bytes(3, "little") + b"\x00", claimed)


def test_a_webp_whose_sizes_lie_gives_nothing(memfd: int) -> None:
    assert on(memfd, riff(VP8X, ANIM, anmf(40), anmf(60)), "WebP") == (2, 0.1)
    assert on(memfd, riff(VP8X, ANIM, anmf(40), anmf(60), extra=100), "WebP") == NONE
    assert on(memfd, riff(VP8X, ANIM, anmf(40), anmf(60, claimed=2**32 - 1)), "WebP") == NONE
    assert on(memfd, riff(VP8X, ANIM, anmf(40), anmf(60, claimed=4)), "WebP") == NONE
    no_flag = webp_chunk(b"VP8X", bytes(10))
    assert on(memfd, riff(no_flag, ANIM, anmf(40), anmf(60)), "WebP") == NONE


def test_a_png_chunk_that_claims_gigabytes_gives_nothing(memfd: int) -> None:
    data = pillow_bytes("png", [10, 20])
    huge = data[:8] + struct.pack(">I", 0xFFFFFFF0) + data[12:]
    assert on(memfd, huge, "PNG") == NONE
    apng = apng_with_delays([(1, 10), (1, 10)])
    at = apng.index(b"acTL") - 4
    flipped = apng[: at + 11] + b"\x03" + apng[at + 12 :]  # 3 frames, the CRC left as it was
    assert on(memfd, flipped, "PNG") == NONE
    three = apng[:at] + chunk(b"acTL", struct.pack(">II", 3, 0)) + apng[at + 20 :]
    assert on(memfd, three, "PNG") == NONE  # acTL says 3, two fcTL follow


def test_an_iend_that_claims_a_gigabyte_is_not_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lying IEND length within a (sparse) file that large: its CRC is what says the
    chunk is whole, not its data held in memory (1.2 GB of it would exceed the worker's
    daemon.memory_limit_mb and fail the file out_of_memory)."""
    apng = pillow_bytes("png", [100, 100])
    assert apng[-8:-4] == b"IEND"
    claimed = 200_000_000
    path = tmp_path / "lying.png"
    with path.open("wb") as out:
        out.write(apng[:-12] + struct.pack(">I", claimed) + b"IEND")
        out.truncate(len(apng) - 12 + 8 + claimed + 4)  # sparse: no disk used
    asked: list[int] = []
    pread = os.pread

    def counted(fd: int, n: int, offset: int) -> bytes:
        asked.append(n)
        return pread(fd, n, offset)

    monkeypatch.setattr(animation.os, "pread", counted)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert animation_of(fd, os.fstat(fd).st_size, "PNG") == (2, 0.2)
    finally:
        os.close(fd)
    assert max(asked) <= animation.WINDOW


def test_reads_the_descriptor_not_the_path(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    path.write_bytes(pillow_bytes("gif", DELAYS_MS))
    fd = os.open(path, os.O_RDONLY)
    try:
        path.unlink()
        assert animation_of(fd, os.fstat(fd).st_size, "GIF") == (5, 0.38)
    finally:
        os.close(fd)


def test_an_unreadable_descriptor_gives_nothing(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)  # pread on a directory: EISDIR
    try:
        assert animation_of(fd, 4096, "GIF") == NONE
    finally:
        os.close(fd)
