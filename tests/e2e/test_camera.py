"""Camera metadata through a running daemon: what an application finds in the stored
`summary` and under `metadata->'reader'`, for tagged photos, a sidecar, a phone video and
hostile EXIF, and nothing of the reader's with `extract.second_reader = false`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.camera import (
    EXIFTOOL_MISSING,
    PHOTOS,
    hostile_exif,
    make_photos,
    make_videos,
    plain_jpeg,
)
from tests.support.processes import Daemon, counts, mediad, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXIFTOOL_MISSING is not None, reason=str(EXIFTOOL_MISSING)),
]

SQL = Callable[..., list[tuple[Any, ...]]]
MEDIA = ("gps_orientation6.jpg", "with_sidecar.jpg", "location.mov", "no_zone.jpg")
HOSTILE = ("ifd_loop.jpg", "huge_count.jpg", "nul_make.jpg", "segment_length_1.jpg")


Rows = dict[str, tuple[dict[str, Any], Any]]  # file name -> (summary, metadata->'reader')


@pytest.fixture
def stored(
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> Callable[[dict[str, str]], Rows]:
    """Camera files and hostile EXIF read by a daemon with the given extra environment,
    and what it stored for each."""

    def run(extra: dict[str, str]) -> Rows:
        env = {**mediad_env, **extra}
        media = tmp_path / "media"
        media.mkdir()
        make_photos(media)
        make_videos(media)
        hostile_exif(media)
        paths = [str(media / name) for name in (*MEDIA, *HOSTILE)]
        queued = mediad("enqueue", *paths, env=env)
        assert queued.returncode == 0, queued.stderr
        daemon = daemons(env=env)
        daemon.wait_started()
        wait_until(lambda: counts(sql, schema)["done"] == len(paths), 60, "every file done")
        assert daemon.stop() == 0
        rows = sql(
            f"SELECT path, summary, metadata->'reader', reader_version FROM \"{schema}\".files"
        )
        for _, _, reader, version in rows:  # the version only of a file the reader read
            assert version == (reader["library"] if reader and "error" not in reader else None)
        return {Path(path).name: (summary, reader) for path, summary, reader, _ in rows}

    return run


def test_the_stored_summary_and_reader_tags(stored: Callable[[dict[str, str]], Rows]) -> None:
    rows = stored({})
    summary, reader = rows["gps_orientation6.jpg"]
    assert {k: summary[k] for k in ("taken_at", "taken_at_offset_min", "taken_at_source")} == {
        "taken_at": "2021-06-15T12:34:56+02:00",
        "taken_at_offset_min": 120,
        "taken_at_source": "exif:DateTimeOriginal",
    }
    assert (summary["gps_lat"], summary["gps_lon"], summary["gps_alt_m"]) == (
        48.8584,
        2.2945,
        35.5,
    )
    assert (summary["orientation"], summary["rotation_deg"], summary["mirrored"]) == (
        6,
        90,
        False,
    )
    assert (summary["camera_make"], summary["lens"]) == ("Canon", "RF24-105mm F4 L IS USM")
    assert reader["exif"]["Exif.Image.Make"] == "Canon"
    assert reader["library"].startswith("python-exiv2")

    summary, reader = rows["with_sidecar.jpg"]
    assert summary["taken_at_source"] == "xmp-sidecar:DateTimeOriginal"
    assert reader["sidecar"]["xmp"]["Xmp.exif.GPSLatitude"] == "40,44.5000N"

    summary, _ = rows["location.mov"]
    assert (summary["gps_lat"], summary["taken_at"]) == (-33.8568, "2022-01-02T03:04:05+00:00")
    assert rows["no_zone.jpg"][0]["taken_at_offset_min"] is None

    # Hostile EXIF: every row done (MediaInfo read them), the reader's reason where it
    # failed, nothing PostgreSQL refused.
    assert rows["segment_length_1.jpg"][1]["error"] == "Failed to read image data"
    assert rows["nul_make.jpg"][0]["camera_make"] == "Can"
    for name in HOSTILE:
        assert rows[name][0]["container"] == "JPEG", name


def test_second_reader_off_stores_none_of_its_fields(
    stored: Callable[[dict[str, str]], Rows],
) -> None:
    rows = stored({"MEDIAD_EXTRACT_SECOND_READER": "false"})
    for name in (*MEDIA, *HOSTILE):
        summary, reader = rows[name]
        assert reader is None, name
        if name != "location.mov":  # MediaInfo states a phone video's place itself
            assert summary["taken_at"] is None and summary["gps_lat"] is None, name
            assert summary["orientation"] is None and summary["camera_make"] is None, name
    assert rows["location.mov"][0]["gps_lat"] == -33.8568


def test_a_missing_second_reader_is_the_workers_start_error(
    tmp_path: Path, mediad_env: dict[str, str]
) -> None:
    """libexiv2 is loaded as a worker starts: without it no file is charged, the command
    says why and how to run without it; with the switch off it is never imported."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "exiv2.py").write_text("raise ImportError('libexiv2.so.28: cannot open')\n")
    env = {**mediad_env, "PYTHONPATH": f"{shadow}:{mediad_env['PYTHONPATH']}"}
    media = tmp_path / "media"
    media.mkdir()
    photo = plain_jpeg(media / "a.jpg")
    assert mediad("enqueue", str(photo), env=env).returncode == 0
    result = mediad("extract", env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "workers cannot start: cannot load the second reader (python-exiv2)" in result.stderr
    assert "extract.second_reader = false" in result.stderr
    assert "Traceback" not in result.stderr
    off = mediad("extract", env={**env, "MEDIAD_EXTRACT_SECOND_READER": "false"}, timeout=60)
    assert off.returncode == 0, off.stderr


def test_the_sidecar_the_worker_read_is_what_the_next_scan_compares(
    tmp_path: Path, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    """The worker stores the fingerprint of the sidecar it read: a scan right after
    queues nothing, an edit of the sidecar queues its photo again, and the `.xmp` file is
    never a row."""
    media = tmp_path / "media"
    media.mkdir()
    make_photos(media)
    for name in list(PHOTOS)[1:]:
        if name != "with_sidecar.jpg":
            (media / name).unlink()
    (media / "stem_sidecar.xmp").unlink()
    assert mediad("scan", str(media), env=mediad_env).returncode == 0
    assert mediad("extract", env=mediad_env).returncode == 0
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    ((size,),) = sql(
        f'SELECT sidecar_size_bytes FROM "{schema}".files WHERE path LIKE %s',
        ("%/with_sidecar.jpg",),
    )
    assert size == (media / "with_sidecar.jpg.xmp").stat().st_size
    assert mediad("scan", str(media), env=mediad_env).returncode == 0
    assert counts(sql, schema)["pending"] == 0
    sidecar = media / "with_sidecar.jpg.xmp"
    sidecar.write_text(sidecar.read_text().replace("18:30:00", "19:45:00"))
    assert mediad("scan", str(media), env=mediad_env).returncode == 0
    assert counts(sql, schema)["pending"] == 1
    assert mediad("extract", env=mediad_env).returncode == 0
    ((taken,),) = sql(
        f"SELECT summary->>'taken_at' FROM \"{schema}\".files WHERE path LIKE %s",
        ("%/with_sidecar.jpg",),
    )
    assert taken == "2019-07-04T19:45:00-04:00"
