"""The extractor on real files made by tests/support/media.py, and the gate on hostile paths.

No database: extract() is called in-process.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediad.errors import FailureClass
from mediad.extract import gate
from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from mediad.extract.view import descriptor_view
from mediad.models import Extracted, Failure, Outcome, Record
from mediad.pool import WorkerPool
from tests.support.media import Expected, make_bad_files
from tests.support.workers import extract_in_worker, one_worker

OPTIONS = ExtractOptions()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("bad")
    return directory, make_bad_files(directory)


def _extracted(outcome: Outcome) -> Extracted:
    assert isinstance(outcome, Extracted), outcome
    return outcome


def _failed(outcome: Outcome, expected: FailureClass) -> Failure:
    assert isinstance(outcome, Failure), outcome
    assert outcome.failure_class is expected, outcome
    return outcome


# --- good files -------------------------------------------------------------------------

CORPUS_NAMES = (
    "h264_aac.mp4",
    "h264_two_audio_subs.mkv",
    "vp9_opus.webm",
    "tone.mp3",
    "tone.flac",
    "tone.wav",
    "picture.jpg",
    "picture.png",
)


def test_corpus_is_small_and_complete(corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, expected = corpus
    assert set(expected) == set(CORPUS_NAMES)
    files = {p.name: p.stat().st_size for p in directory.iterdir()}
    assert set(files) == set(CORPUS_NAMES)  # no leftovers (the temporary .srt)
    assert all(size > 0 for size in files.values())
    assert sum(files.values()) < 2 * 1024 * 1024


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_good_file_summary(name: str, corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, expected = corpus
    want = expected[name]
    path = directory / name
    result = _extracted(extract(str(path), OPTIONS))
    summary = result.summary

    assert summary["container"] == want.container
    if want.duration_s is None:
        assert summary["duration_s"] is None
    else:
        assert summary["duration_s"] == pytest.approx(want.duration_s, rel=0.02)
    assert summary["width"] == want.width
    assert summary["height"] == want.height
    assert summary["video_codec"] == want.video_codec
    assert summary["audio_codec"] == want.audio_codec
    assert summary["audio_channels"] == want.audio_channels
    assert summary["sample_rate"] == want.sample_rate
    assert summary["video_tracks"] == want.video_tracks
    assert summary["audio_tracks"] == want.audio_tracks
    assert summary["text_tracks"] == want.text_tracks
    assert summary["image_tracks"] == want.image_tracks
    assert summary["languages"] == sorted(want.languages)
    assert summary["truncated"] is False
    assert len(summary["streams"]) == (
        want.video_tracks + want.audio_tracks + want.text_tracks + want.image_tracks
    )

    st_ = path.stat()
    assert result.fingerprint.size_bytes == st_.st_size
    assert result.fingerprint.inode == st_.st_ino
    assert result.resolved_path == os.path.realpath(path)
    assert result.seconds >= 0


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_document_is_json_naming_the_original_path(
    name: str, corpus: tuple[Path, dict[str, Expected]]
) -> None:
    directory, _ = corpus
    path = str(directory / name)
    result = _extracted(extract(path, OPTIONS))
    document = json.loads(result.document)
    assert document["media"]["@ref"] == path
    assert "/proc/self/fd/" not in result.document
    assert "\\u0000" not in result.document


@pytest.mark.parametrize("parse_speed", [0.5, 0.0])
def test_the_kept_handle_reads_what_pymediainfo_parse_reads(
    parse_speed: float, corpus: tuple[Path, dict[str, Expected]], tmp_path: Path
) -> None:
    """The worker keeps one libmediainfo handle (mediad.extract.mediainfo) instead of calling
    MediaInfo.parse per file: same options, so the same document, file after file, also
    after a file MediaInfo could not open."""
    from pymediainfo import MediaInfo

    from mediad.extract.mediainfo import read_json

    directory, _ = corpus
    missing = str(tmp_path / "gone.mp4")
    with pytest.raises(FileNotFoundError):
        read_json(missing, library_file=None, parse_speed=parse_speed, full=False)
    for name in CORPUS_NAMES * 2:
        path = str(directory / name)
        kept = read_json(path, library_file=None, parse_speed=parse_speed, full=False)
        parsed = MediaInfo.parse(path, output="JSON", parse_speed=parse_speed, full=False)
        assert kept == parsed, name
    full = read_json(
        str(directory / CORPUS_NAMES[0]), library_file=None, parse_speed=parse_speed, full=True
    )
    assert full == MediaInfo.parse(
        str(directory / CORPUS_NAMES[0]), output="JSON", parse_speed=parse_speed, full=True
    )
    assert len(full) > len(
        read_json(
            str(directory / CORPUS_NAMES[0]), library_file=None, parse_speed=parse_speed, full=False
        )
    )


def test_mkv_tracks_and_languages(corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, _ = corpus
    summary = _extracted(extract(str(directory / "h264_two_audio_subs.mkv"), OPTIONS)).summary
    assert summary["audio_tracks"] == 2
    assert summary["text_tracks"] == 1
    assert {"en", "fr"} <= set(summary["languages"])
    audio = [s for s in summary["streams"] if s["kind"] == "audio"]
    assert [(s["codec"], s["language"], s["channels"]) for s in audio] == [
        ("AAC", "en", 2),
        ("Opus", "fr", 1),
    ]
    (text,) = [s for s in summary["streams"] if s["kind"] == "text"]
    assert text["codec"] == "UTF-8"  # SubRip in Matroska (S_TEXT/UTF8)
    assert text["language"] == "en"


def test_mp4_video_stream_details(corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, _ = corpus
    summary = _extracted(extract(str(directory / "h264_aac.mp4"), OPTIONS)).summary
    assert summary["frame_rate"] == pytest.approx(25.0)
    (video,) = [s for s in summary["streams"] if s["kind"] == "video"]
    assert video["bit_depth"] == 8
    assert summary["bit_rate"] > 0


def test_symlink_inside_roots_keeps_the_row_path(
    corpus: tuple[Path, dict[str, Expected]], tmp_path: Path
) -> None:
    directory, _ = corpus
    link = tmp_path / "link.mp4"
    link.symlink_to(directory / "h264_aac.mp4")
    roots = (os.path.realpath(directory), os.path.realpath(tmp_path))
    result = _extracted(extract(str(link), ExtractOptions(roots=roots)))
    assert result.resolved_path == os.path.realpath(directory / "h264_aac.mp4")
    assert json.loads(result.document)["media"]["@ref"] == str(link)


def test_max_file_bytes_not_exceeded(corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, _ = corpus
    path = directory / "tone.mp3"
    options = ExtractOptions(max_file_bytes=path.stat().st_size)
    _extracted(extract(str(path), options))


# --- bad files --------------------------------------------------------------------------

BAD_NAMES = (
    "empty.mp4",
    "random.mkv",
    "text.mp4",
    "truncated.mp4",
    "truncated_faststart.mp4",
    "truncated.mkv",
    "truncated.mp3",
)


def test_bad_files_are_all_described(bad_files: tuple[Path, dict[str, str]]) -> None:
    directory, expected = bad_files
    assert set(expected) == set(BAD_NAMES)
    assert {p.name for p in directory.iterdir()} == set(BAD_NAMES)
    valid = {c.value for c in FailureClass} | {"done"}
    assert set(expected.values()) <= valid


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_file(name: str, bad_files: tuple[Path, dict[str, str]]) -> None:
    directory, expected = bad_files
    outcome = extract(str(directory / name), OPTIONS)
    if expected[name] == "done":
        result = _extracted(outcome)
        assert result.summary["truncated"] is True
        assert result.summary["container"] is not None
        json.loads(result.document)
    else:
        failure = _failed(outcome, FailureClass(expected[name]))
        assert failure.fingerprint is not None  # the file was opened: fingerprint kept
        assert failure.resolved_path == os.path.realpath(directory / name)


def test_truncated_files_keep_their_streams(bad_files: tuple[Path, dict[str, str]]) -> None:
    directory, _ = bad_files
    mkv = _extracted(extract(str(directory / "truncated.mkv"), OPTIONS)).summary
    assert (mkv["container"], mkv["video_codec"], mkv["width"]) == ("Matroska", "AVC", 320)
    mp4 = _extracted(extract(str(directory / "truncated_faststart.mp4"), OPTIONS)).summary
    assert (mp4["container"], mp4["video_codec"], mp4["audio_codec"]) == ("MPEG-4", "AVC", "AAC")
    mp3 = _extracted(extract(str(directory / "truncated.mp3"), OPTIONS)).summary
    assert (mp3["container"], mp3["audio_channels"]) == ("MPEG Audio", 1)


# --- the gate ---------------------------------------------------------------------------


def test_directory(tmp_path: Path) -> None:
    _failed(extract(str(tmp_path), OPTIONS), FailureClass.NOT_REGULAR)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    failure = _failed(extract(str(fifo), OPTIONS), FailureClass.NOT_REGULAR)
    assert time.monotonic() - started < 2.0
    assert "FIFO" in failure.message
    assert failure.fingerprint is None  # refused before opening


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_character_device(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} is missing")
    failure = _failed(extract(device, OPTIONS), FailureClass.NOT_REGULAR)
    assert "character device" in failure.message


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: AF_UNIX paths are limited to about 107 bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mediad-") as name:
        yield Path(name)


def test_socket(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        failure = _failed(extract(str(path), OPTIONS), FailureClass.NOT_REGULAR)
    assert "socket" in failure.message


def test_missing_path(tmp_path: Path) -> None:
    _failed(extract(str(tmp_path / "nope.mp4"), OPTIONS), FailureClass.NOT_FOUND)


def test_missing_parent(tmp_path: Path) -> None:
    _failed(extract(str(tmp_path / "no" / "such" / "f.mp4"), OPTIONS), FailureClass.NOT_FOUND)


def test_file_used_as_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    _failed(extract(str(tmp_path / "file" / "f.mp4"), OPTIONS), FailureClass.NOT_FOUND)


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "broken.mp4"
    link.symlink_to(tmp_path / "target-that-does-not-exist.mp4")
    _failed(extract(str(link), OPTIONS), FailureClass.NOT_FOUND)


def test_symlink_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.symlink_to(b)
    b.symlink_to(a)
    failure = _failed(extract(str(a), OPTIONS), FailureClass.NOT_FOUND)
    assert "loop" in failure.message


def test_self_symlink(tmp_path: Path) -> None:
    link = tmp_path / "self.mp4"
    link.symlink_to(link)
    _failed(extract(str(link), OPTIONS), FailureClass.NOT_FOUND)


@pytest.mark.parametrize("path", ["relative/file.mp4", "file.mp4", "./file.mp4", ""])
def test_relative_path(path: str) -> None:
    _failed(extract(path, OPTIONS), FailureClass.BAD_PATH)


def test_nul_byte(tmp_path: Path) -> None:
    _failed(extract(str(tmp_path / "a\x00b.mp4"), OPTIONS), FailureClass.BAD_PATH)


def test_name_too_long(tmp_path: Path) -> None:
    _failed(extract(str(tmp_path / ("x" * 300)), OPTIONS), FailureClass.BAD_PATH)


def test_outside_roots(corpus: tuple[Path, dict[str, Expected]], tmp_path: Path) -> None:
    directory, _ = corpus
    root = tmp_path / "root"
    root.mkdir()
    options = ExtractOptions(roots=(os.path.realpath(root),))
    failure = _failed(extract(str(directory / "h264_aac.mp4"), options), FailureClass.OUTSIDE_ROOTS)
    assert failure.resolved_path == os.path.realpath(directory / "h264_aac.mp4")


def test_root_prefix_is_not_a_parent(tmp_path: Path) -> None:
    """/x/root must not admit /x/root-other/file."""
    root, sibling = tmp_path / "root", tmp_path / "root-other"
    root.mkdir()
    sibling.mkdir()
    (sibling / "f.mp3").write_bytes(b"x" * 10)
    options = ExtractOptions(roots=(os.path.realpath(root),))
    _failed(extract(str(sibling / "f.mp3"), options), FailureClass.OUTSIDE_ROOTS)


def test_symlink_inside_roots_pointing_outside(
    corpus: tuple[Path, dict[str, Expected]], tmp_path: Path
) -> None:
    directory, _ = corpus
    root = tmp_path / "root"
    root.mkdir()
    link = root / "escape.mp4"
    link.symlink_to(directory / "h264_aac.mp4")
    options = ExtractOptions(roots=(os.path.realpath(root),))
    _failed(extract(str(link), options), FailureClass.OUTSIDE_ROOTS)


def test_dotdot_out_of_roots(corpus: tuple[Path, dict[str, Expected]], tmp_path: Path) -> None:
    directory, _ = corpus
    root = tmp_path / "root"
    root.mkdir()
    options = ExtractOptions(roots=(os.path.realpath(root),))
    sneaky = os.path.join(str(root), os.path.relpath(directory / "h264_aac.mp4", root))
    assert ".." in sneaky
    _failed(extract(sneaky, options), FailureClass.OUTSIDE_ROOTS)


def test_too_large(corpus: tuple[Path, dict[str, Expected]]) -> None:
    directory, _ = corpus
    path = directory / "tone.wav"
    options = ExtractOptions(max_file_bytes=path.stat().st_size - 1)
    failure = _failed(extract(str(path), options), FailureClass.TOO_LARGE)
    assert failure.fingerprint is not None
    assert failure.fingerprint.size_bytes == path.stat().st_size


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.mp3"
    path.write_bytes(b"x" * 10)
    path.chmod(0)
    _failed(extract(str(path), OPTIONS), FailureClass.PERMISSION)


def _gate_answer(path: str, options: ExtractOptions) -> tuple[object, ...]:
    opened = gate.open_checked(path, options)
    if isinstance(opened, Failure):
        return ("failed", opened.failure_class, opened.message, opened.resolved_path)
    fd, resolved, st = opened
    os.close(fd)
    return ("opened", resolved, st.st_ino)


def test_canonical_paths_skip_resolution_and_the_full_gate_agrees(
    corpus: tuple[Path, dict[str, Expected]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate opens a canonical path without resolving it; every path, canonical or
    not, must get the answer the full gate gives."""
    directory, _ = corpus
    real_tmp = Path(os.path.realpath(tmp_path))  # canonical, whatever the temporary folder
    root, outside = real_tmp / "root", real_tmp / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    good = directory / "tone.mp3"
    for target in (root / "sub" / "f.mp3", root / ".hidden.mp3", outside / "f.mp3"):
        target.write_bytes(good.read_bytes())
    (root / os.fsdecode(b"caf\xe9.mp3")).write_bytes(good.read_bytes())
    (root / "inside.mp3").symlink_to("sub/f.mp3")
    (root / "escape.mp3").symlink_to(outside / "f.mp3")
    (root / "linked").symlink_to("sub")
    os.mkfifo(root / "fifo.mp3")
    canonical = [f"{root}/sub/f.mp3", os.fsdecode(os.fsencode(root) + b"/caf\xe9.mp3")]
    others = [
        f"{root}/.hidden.mp3",
        f"{root}/inside.mp3",
        f"{root}/escape.mp3",
        f"{root}/linked/f.mp3",
        f"{root}/sub/../sub/f.mp3",
        f"{root}/./sub/f.mp3",
        f"{root}//sub/f.mp3",
        f"{root}/sub/f.mp3/",
        f"{root}/sub/../../outside/f.mp3",
        f"{outside}/f.mp3",
        f"{root}/fifo.mp3",
        f"{root}/sub",
        f"{root}/missing.mp3",
        f"{root}/no/such.mp3",
        f"{root}/sub/f.mp3/x.mp3",
        f"{root}/{'x' * 300}.mp3",
        "/dev/null",
    ]
    if gate.open_no_symlinks is None:
        pytest.skip("openat2(2) needs Linux 5.6: every path takes the full way")

    def unresolvable(path: str) -> str:
        raise AssertionError(f"resolved {path}")

    with_roots = ExtractOptions(roots=(os.path.realpath(root),))
    for options in (with_roots, OPTIONS):
        with monkeypatch.context() as patch:
            patch.setattr(gate, "resolve_strict", unresolvable)
            for path in canonical:  # opened without resolving
                assert _gate_answer(path, options)[0] == "opened", path
        fast = {path: _gate_answer(path, options) for path in canonical + others}
        with monkeypatch.context() as patch:
            patch.setattr(gate, "open_no_symlinks", None)
            full = {path: _gate_answer(path, options) for path in canonical + others}
        assert fast == full
    assert fast[f"{root}/sub/f.mp3"][:2] == ("opened", f"{root}/sub/f.mp3")


def test_a_file_swapped_between_the_check_and_the_open_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever way the gate takes, a file replaced after its stat and before its open
    (another inode under the same name) is not read."""
    path = Path(os.path.realpath(tmp_path)) / "film.mp3"
    path.write_bytes(b"checked")

    def swap() -> None:
        fresh = path.with_name("fresh")
        fresh.write_bytes(b"swapped in")
        os.replace(fresh, path)

    real_open, real_no_symlinks = os.open, gate.open_no_symlinks

    def swapping_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if name == str(path):
            swap()
        return real_open(name, flags, *args, **kwargs)

    def swapping_no_symlinks(name: str, flags: int) -> int:
        assert real_no_symlinks is not None
        swap()
        return real_no_symlinks(name, flags)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", swapping_open)
        if real_no_symlinks is not None:
            patch.setattr(gate, "open_no_symlinks", swapping_no_symlinks)
        outcome = gate.open_checked(str(path), OPTIONS)
    failure = _failed(outcome, FailureClass.NOT_REGULAR)
    assert "swapped" in failure.message


def test_a_folder_swapped_for_a_link_out_of_the_roots_before_the_open_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full way resolves, then opens: a folder on the way replaced by a link to the
    same file seen from outside the roots (a hard link: the inode checked is the one
    opened) still leaves the descriptor outside, and it is not read."""
    base = Path(os.path.realpath(tmp_path))
    root, outside = base / "root", base / "outside"
    (root / "sub").mkdir(parents=True)
    (outside / "sub").mkdir(parents=True)
    (root / "sub" / "f.mp3").write_bytes(b"checked")
    os.link(root / "sub" / "f.mp3", outside / "sub" / "f.mp3")
    real_open = os.open

    def swapping_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if name == f"{root}/sub/f.mp3":
            os.rename(root / "sub", root / "sub-before")
            (root / "sub").symlink_to(outside / "sub")
        return real_open(name, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gate, "open_no_symlinks", None)  # the full way
        patch.setattr(os, "open", swapping_open)
        outcome = gate.open_checked(f"{root}/sub/f.mp3", ExtractOptions(roots=(str(root),)))
    failure = _failed(outcome, FailureClass.NOT_REGULAR)
    assert "swapped" in failure.message


# --- hostile bytes ----------------------------------------------------------------------


def _extract_bytes(directory: Path, name: str, data: bytes) -> Outcome:
    path = directory / name
    path.write_bytes(data)
    try:
        return extract(str(path), OPTIONS)
    finally:
        path.unlink()


def _assert_classified(outcome: Outcome | Record) -> None:
    if isinstance(outcome, Record):  # what a worker sends: the write-back's JSON object
        row = json.loads(outcome.text)
        assert row["metadata"] == json.loads(outcome.document())
        assert "\\u0000" not in outcome.document()
        assert isinstance(row["summary"]["streams"], list)
    elif isinstance(outcome, Extracted):
        json.loads(outcome.document)
        assert "\\u0000" not in outcome.document
        assert isinstance(outcome.summary["streams"], list)
    else:
        assert isinstance(outcome, Failure)
        assert isinstance(outcome.failure_class, FailureClass)


_FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
_SUFFIXES = st.sampled_from([".mp4", ".mkv", ".mp3", ".bin", ""])


@_FUZZ
@given(data=st.binary(min_size=0, max_size=4096), suffix=_SUFFIXES)
def test_random_bytes_never_raise(tmp_path: Path, data: bytes, suffix: str) -> None:
    _assert_classified(_extract_bytes(tmp_path, f"fuzz{suffix}", data))


@pytest.fixture(scope="module")
def small_mp3(corpus: tuple[Path, dict[str, Expected]]) -> bytes:
    return (corpus[0] / "tone.mp3").read_bytes()


@pytest.fixture(scope="module")
def small_png(corpus: tuple[Path, dict[str, Expected]]) -> bytes:
    return (corpus[0] / "picture.png").read_bytes()


_MUTATIONS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2**31), st.integers(0, 255)),
    min_size=1,
    max_size=20,
)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer[: max(1, int(len(buffer) * cut))])


@_FUZZ
@given(
    edits=_MUTATIONS,
    cut=st.floats(min_value=0.0, max_value=1.0),
    which=st.sampled_from(["tone.mp3", "picture.png"]),
)
def test_mutated_media_never_raises(
    tmp_path: Path,
    small_mp3: bytes,
    small_png: bytes,
    edits: list[tuple[int, int]],
    cut: float,
    which: str,
) -> None:
    source = small_mp3 if which == "tone.mp3" else small_png
    _assert_classified(_extract_bytes(tmp_path, which, _mutate(source, edits, cut)))


def test_hostile_header_numbers_stay_out_of_the_columns(
    corpus: tuple[Path, dict[str, Expected]], tmp_path: Path
) -> None:
    """A WAV claiming a 4 294 967 280 Hz sample rate: MediaInfo says so, and an integer
    column cannot hold it, so the column value is None while the document keeps it."""
    data = bytearray((corpus[0] / "tone.wav").read_bytes())
    assert data[12:16] == b"fmt "
    data[24:28] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "huge.wav"
    path.write_bytes(bytes(data))
    result = _extracted(extract(str(path), OPTIONS))
    assert result.summary["container"] == "Wave"
    assert result.summary["sample_rate"] is None
    assert result.summary["audio_channels"] == 2
    (audio,) = [t for t in json.loads(result.document)["media"]["track"] if t["@type"] == "Audio"]
    assert audio["SamplingRate"] == str(0xFFFFFFF0)


@pytest.fixture(scope="module")
def worker_pool() -> Iterator[WorkerPool]:
    with one_worker(OPTIONS) as pool:
        yield pool


@_FUZZ
@given(
    edits=_MUTATIONS,
    cut=st.floats(min_value=0.0, max_value=1.0),
    which=st.sampled_from(["tone.mp3", "picture.png"]),
    job_id=st.integers(min_value=1, max_value=2**40),
)
def test_mutated_media_through_a_worker_process(
    tmp_path: Path,
    worker_pool: WorkerPool,
    small_mp3: bytes,
    small_png: bytes,
    edits: list[tuple[int, int]],
    cut: float,
    which: str,
    job_id: int,
) -> None:
    """The same bytes through the pipe and a real worker: a result or a classified
    failure (a worker that died would be `worker_crash`), never a lost file."""
    source = small_mp3 if which == "tone.mp3" else small_png
    path = tmp_path / which
    path.write_bytes(_mutate(source, edits, cut))
    try:
        _assert_classified(extract_in_worker(worker_pool, path, job_id))
    finally:
        path.unlink()


def test_the_view_keeps_the_extension_and_names_this_process_descriptor(
    small_mp4: Path, tmp_path: Path
) -> None:
    """MediaInfo reads through a named view of the descriptor the gate checked; a forked
    child (its descriptors are its own) gets views of its own."""
    other = tmp_path / "other.mp4"
    other.write_bytes(b"not the checked file")
    fd = os.open(small_mp4, os.O_RDONLY)
    try:
        view = descriptor_view(fd, str(small_mp4))
        assert view.endswith(".mp4")
        assert os.path.samestat(os.stat(view), os.fstat(fd))
        assert descriptor_view(fd, "/x/y.mp4") == view  # made once per number and extension
        pid = os.fork()
        if pid == 0:  # the child: its fd number now names another file
            code = 1
            try:
                os.dup2(os.open(other, os.O_RDONLY), fd)
                child_view = descriptor_view(fd, str(small_mp4))
                same = os.path.samestat(os.stat(child_view), os.stat(other))
                code = 0 if same and child_view != view else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
