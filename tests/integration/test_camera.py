"""Camera metadata in the database: its columns written by `complete` and shown by `show`,
XMP sidecars as part of a file's fingerprint for `scan`, and the prefixed columns of an
attached table (docs/schema.md, docs/attach.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mediad import attach
from mediad.commands.report.output import print_show, show_record
from mediad.commands.tables.attaching import refresh_summary_columns
from mediad.db import intake, reads, tables
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.extract.summary import PHOTO_COLUMNS
from mediad.models import Extracted, Fingerprint, Job
from mediad.scan import scan_into
from tests.integration.test_store import extracted, records

SQL = Callable[..., list[tuple[Any, ...]]]

PHOTO = {
    "taken_at": "2021-06-15T12:34:56+02:00",
    "taken_at_offset_min": 120,
    "taken_at_source": "exif:DateTimeOriginal",
    "gps_lat": 48.858222,
    "gps_lon": -2.2945,
    "gps_alt_m": 35.5,
    "orientation": 6,
    "rotation_deg": 90,
    "mirrored": False,
    "camera_make": "Canon",
    "camera_model": "Canon EOS 5D",
    "lens": "EF24-105mm f/4L IS USM",
    "frame_count": None,
}


def photo(path: str, **fields: Any) -> Extracted:
    base = extracted(path)
    summary = base.summary | {"container": "JPEG"} | PHOTO | fields
    return replace(base, summary=summary, reader_version="0.17.5")


def complete(queue: Queue, made: Callable[[Job], Extracted]) -> dict[str, Job]:
    """Claim every due row and write each one's extraction through the real write-back."""
    jobs = queue.claim(100, 30)
    result = queue.complete(records([(job, made(job)) for job in jobs]))
    assert result.written == len(jobs)
    return {job.path: job for job in jobs}


def test_complete_writes_the_camera_columns_and_show_gives_the_summary(
    db: Database, queue: Queue, sql: SQL, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    intake.enqueue(db, ["/p/zone.jpg", "/p/nozone.jpg", "/p/clip.mp4"])
    by_path = {
        "/p/zone.jpg": photo("/p/zone.jpg"),
        "/p/nozone.jpg": photo(
            "/p/nozone.jpg", taken_at="2021-06-15T12:34:56", taken_at_offset_min=None
        ),
        "/p/clip.mp4": extracted("/p/clip.mp4"),
    }
    complete(queue, lambda job: by_path[job.path])

    rows = {
        r[0]: r[1:]
        for r in sql(
            f"SELECT path, {', '.join(PHOTO_COLUMNS)}, reader_version "
            f'FROM "{schema}".files ORDER BY path'
        )
    }
    zone = dict(zip((*PHOTO_COLUMNS, "reader_version"), rows["/p/zone.jpg"], strict=True))
    # The instant: 12:34:56 at +02:00 is 10:34:56 UTC.
    assert zone["taken_at"] == datetime(2021, 6, 15, 10, 34, 56, tzinfo=UTC)
    assert {k: v for k, v in zone.items() if k != "taken_at"} == {
        **{k: v for k, v in PHOTO.items() if k != "taken_at"},
        "reader_version": "0.17.5",
    }
    # No zone stated: the column reads the wall-clock time as UTC.
    nozone = dict(zip((*PHOTO_COLUMNS, "reader_version"), rows["/p/nozone.jpg"], strict=True))
    assert nozone["taken_at"] == datetime(2021, 6, 15, 12, 34, 56, tzinfo=UTC)
    assert nozone["taken_at_offset_min"] is None
    # A file that states none of it: every camera column NULL, no reader version.
    assert set(rows["/p/clip.mp4"]) == {None}

    shown = reads.show(db, ["/p/zone.jpg", "/p/nozone.jpg", "/p/clip.mp4"])
    summary = show_record("/p/nozone.jpg", shown["/p/nozone.jpg"])["summary"]
    # show --json keeps the file's own wall-clock text, not the instant.
    assert summary["taken_at"] == "2021-06-15T12:34:56"
    assert show_record("/p/zone.jpg", shown["/p/zone.jpg"])["summary"]["gps_lat"] == 48.858222
    clip = show_record("/p/clip.mp4", shown["/p/clip.mp4"])["summary"]
    assert {key: clip[key] for key in PHOTO_COLUMNS} == dict.fromkeys(PHOTO_COLUMNS)
    # The text form lists the fields the file states.
    print_show(show_record("/p/zone.jpg", shown["/p/zone.jpg"]))
    lines = capsys.readouterr().out.splitlines()
    assert "  taken_at        2021-06-15T12:34:56+02:00" in lines
    assert "  camera_model    Canon EOS 5D" in lines
    assert not any(line.split()[0] == "frame_count" for line in lines[1:])


def test_the_timeline_query_of_a_photo_app_uses_the_taken_at_index(
    db: Database, sql: SQL, schema: str
) -> None:
    sql(f"INSERT INTO \"{schema}\".files (path) SELECT '/v/' || g FROM generate_series(1, 2000) g")
    sql(
        f'INSERT INTO "{schema}".files (path, taken_at) '
        f"SELECT '/p/' || g, '2020-01-01'::timestamptz + g * interval '1 hour' "
        "FROM generate_series(1, 50) g"
    )
    sql(f'ANALYZE "{schema}".files')
    plan = sql(
        f'EXPLAIN SELECT path FROM "{schema}".files '
        "WHERE taken_at >= '2020-01-02' AND taken_at < '2020-01-03' ORDER BY taken_at"
    )
    assert "files_taken_at_idx" in "\n".join(r[0] for r in plan)


# --- XMP sidecars and scan ------------------------------------------------------------


def fingerprint(path: Path) -> Fingerprint:
    st = path.stat()
    return Fingerprint(st.st_size, st.st_mtime_ns // 1000, st.st_ino)


def read_by_worker(job: Job) -> Extracted:
    """What a worker reports: the file's fingerprint and, for the images the second
    reader reads, its version and the sidecar it read, if any."""
    path = Path(job.path)
    if path.suffix != ".jpg":
        return replace(extracted(job.path), fingerprint=fingerprint(path))
    sidecar = next(
        (
            path.parent / name
            for name in (path.name + ".xmp", path.stem + ".xmp")
            if (path.parent / name).is_file()
        ),
        None,
    )
    return replace(
        extracted(job.path),
        fingerprint=fingerprint(path),
        reader_version="0.17.5",
        sidecar=None if sidecar is None else fingerprint(sidecar),
    )


def touch(path: Path, seconds: int, text: str | None = None) -> None:
    if text is not None:
        path.write_text(text)
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_a_sidecar_that_appears_changes_or_goes_is_a_change_of_its_file(
    db: Database, queue: Queue, sql: SQL, schema: str, tmp_path: Path
) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg", "plain.mp4"):
        touch(tmp_path / name, 1_600_000_000, name)
    touch(tmp_path / "a.jpg.xmp", 1_600_000_100, "<x:xmpmeta/>")  # name.ext.xmp
    touch(tmp_path / "b.xmp", 1_600_000_100, "<x:xmpmeta/>")  # name.xmp
    touch(tmp_path / "orphan.xmp", 1_600_000_100, "<x:xmpmeta/>")
    # Beside a file the second reader does not read: no worker reports it.
    touch(tmp_path / "plain.mp4.xmp", 1_600_000_100, "<x:xmpmeta/>")
    scan = partial(scan_into, partial(intake.scan_upsert, db), [str(tmp_path)], 0)

    new, changed, report = scan()
    # Sidecars are no rows of their own, with or without a file beside them.
    assert (new, changed, report.seen) == (4, 0, 4)
    assert {r[0] for r in sql(f'SELECT path FROM "{schema}".files')} == {
        str(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg", "plain.mp4")
    }
    complete(queue, read_by_worker)
    stored = dict(
        sql(
            f'SELECT path, sidecar_size_bytes FROM "{schema}".files WHERE sidecar_mtime IS NOT NULL'
        )
    )
    assert stored == {str(tmp_path / n): 12 for n in ("a.jpg", "b.jpg", "plain.mp4")}
    assert scan()[:2] == (0, 0)  # nothing changed: nothing queued

    touch(tmp_path / "a.jpg.xmp", 1_600_000_200)  # edited: a new mtime
    (tmp_path / "b.xmp").unlink()  # gone
    touch(tmp_path / "c.jpg.xmp", 1_600_000_200, "<x:xmpmeta/>")  # appeared
    assert scan()[:2] == (0, 3)
    pending = sql(f"SELECT path FROM \"{schema}\".files WHERE state = 'pending' ORDER BY path")
    assert [r[0] for r in pending] == [str(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg")]
    # Queued again, not read yet: the same sidecars do not queue them a second time.
    assert scan()[:2] == (0, 0)
    complete(queue, read_by_worker)
    assert scan()[:2] == (0, 0)

    # name.ext.xmp wins over name.xmp: a change to the other one is no change.
    touch(tmp_path / "a.xmp", 1_600_000_300, "<other/>")
    assert scan()[:2] == (0, 0)

    # The reader read the image and found its sidecar gone (between the scan and the
    # read): none is recorded, and the next scan finds the change.
    (tmp_path / "a.xmp").unlink()
    assert intake.enqueue(db, [str(tmp_path / "a.jpg")]) == (0, 1)
    (tmp_path / "a.jpg.xmp").rename(tmp_path / "hidden")
    complete(queue, read_by_worker)
    (tmp_path / "hidden").rename(tmp_path / "a.jpg.xmp")
    assert sql(
        f'SELECT sidecar_size_bytes FROM "{schema}".files WHERE path = %s',
        [str(tmp_path / "a.jpg")],
    ) == [(None,)]
    assert scan()[:2] == (0, 1)


def test_rows_from_before_the_sidecar_columns_are_not_queued_again(
    db: Database, queue: Queue, sql: SQL, schema: str, tmp_path: Path
) -> None:
    for name in ("a.jpg", "b.jpg"):
        touch(tmp_path / name, 1_600_000_000, name)
    touch(tmp_path / "b.jpg.xmp", 1_600_000_100, "<x:xmpmeta/>")
    scan = partial(scan_into, partial(intake.scan_upsert, db), [str(tmp_path)], 0)
    scan()
    complete(queue, read_by_worker)
    # As a row done before schema version 12 is: no sidecar recorded.
    sql(f'UPDATE "{schema}".files SET sidecar_size_bytes = NULL, sidecar_mtime = NULL')

    new, changed, _ = scan()
    assert (new, changed) == (0, 1)  # only the file that has a sidecar, never read with it
    assert sql(f"SELECT path FROM \"{schema}\".files WHERE state = 'pending'") == [
        (str(tmp_path / "b.jpg"),)
    ]


def test_without_the_second_reader_sidecars_change_nothing(
    db: Database, queue: Queue, tmp_path: Path
) -> None:
    touch(tmp_path / "a.jpg", 1_600_000_000, "a")
    touch(tmp_path / "a.jpg.xmp", 1_600_000_100, "<x:xmpmeta/>")
    upsert = partial(intake.scan_upsert, db, sidecars=False)
    scan = partial(scan_into, upsert, [str(tmp_path)], 0)
    assert scan()[:2] == (1, 0)
    # No worker reads the sidecar: it reports none.
    complete(queue, lambda job: replace(read_by_worker(job), sidecar=None))
    assert scan()[:2] == (0, 0)
    touch(tmp_path / "a.jpg.xmp", 1_600_000_200)
    assert scan()[:2] == (0, 0)
    touch(tmp_path / "a.jpg", 1_600_000_300)  # the file itself still counts
    assert scan()[:2] == (0, 1)


# --- attached tables --------------------------------------------------------------------


def plan_of(db: Database, table: str) -> attach.Plan:
    """The mapping `attach TABLE --id id --path path --summary-prefix media_` checks."""
    info = tables.table_info(db, table)
    assert info is not None
    return attach.plan(
        info,
        tables.table_columns(db, int(info["oid"])),
        id_column="id",
        path_column="path",
        summary_prefix="media_",
    )


def attach_table(db: Database, table: str) -> attach.Source:
    source, _ = tables.attach(db, plan_of(db, table).source, lock_timeout_ms=1000)
    return source


def test_an_attached_table_gets_the_camera_fields_it_has_columns_for(
    db: Database, queue: Queue, sql: SQL, app_schema: str
) -> None:
    # Two applications: one keeps the instant and numbers of its own types, the other the
    # wall clock; neither has every column, and one column cannot hold its field.
    sql(
        f'CREATE TABLE "{app_schema}".photos (id bigint PRIMARY KEY, path text, '
        "media_width integer, media_taken_at timestamptz(0), media_gps_lat numeric, "
        "media_gps_lon real, media_orientation smallint, media_mirrored boolean, "
        "media_camera_model text, media_lens jsonb)"
    )
    sql(
        f'CREATE TABLE "{app_schema}".album (id bigint PRIMARY KEY, path text, '
        "media_taken_at timestamp, media_taken_at_offset_min integer, "
        "media_taken_at_source text)"
    )
    sql(
        f'CREATE TABLE "{app_schema}".notes (id bigint PRIMARY KEY, path text, '
        "media_taken_at text, media_frame_count bigint, media_camera_make varchar(20))"
    )
    photos = attach_table(db, f"{app_schema}.photos")
    assert photos.summary_columns == (
        "media_width",
        "media_taken_at",
        "media_gps_lat",
        "media_gps_lon",
        "media_orientation",
        "media_mirrored",
        "media_camera_model",
    )  # not media_lens: jsonb cannot hold text
    sql(f'CREATE TABLE "{app_schema}".days (id bigint PRIMARY KEY, path text, media_taken_at date)')
    sql(
        f'CREATE TABLE "{app_schema}".odd (id bigint PRIMARY KEY, path text, '
        "media_taken_at time, media_mirrored integer)"
    )
    for table in ("album", "notes", "days"):
        attach_table(db, f"{app_schema}.{table}")
    assert plan_of(db, f"{app_schema}.odd").ignored == (
        "media_taken_at (time without time zone cannot hold taken_at)",
        "media_mirrored (integer cannot hold mirrored)",
    )
    for table in ("photos", "album", "notes", "days"):
        sql(f"INSERT INTO \"{app_schema}\".{table} VALUES (1, '/p/1.jpg'), (2, '/p/2.jpg')")

    def made(job: Job) -> Extracted:
        if job.path == "/p/2.jpg":  # no zone stated
            return photo(job.path, taken_at="2021-06-15T12:34:56", taken_at_offset_min=None)
        return photo(job.path, frame_count=12)

    # Through the fenced write-back, in the daemon's own transaction.
    complete(queue, made)

    assert sql(f'SELECT * FROM "{app_schema}".photos ORDER BY id') == [
        (
            1,
            "/p/1.jpg",
            320,
            datetime(2021, 6, 15, 10, 34, 56, tzinfo=UTC),
            Decimal("48.858222"),
            -2.2945,
            6,
            False,
            "Canon EOS 5D",
            None,
        ),
        (
            2,
            "/p/2.jpg",
            320,
            datetime(2021, 6, 15, 12, 34, 56, tzinfo=UTC),
            Decimal("48.858222"),
            -2.2945,
            6,
            False,
            "Canon EOS 5D",
            None,
        ),
    ]
    # timestamp: the wall clock as the file states it, whatever its zone.
    assert sql(f'SELECT * FROM "{app_schema}".album ORDER BY id') == [
        (1, "/p/1.jpg", datetime(2021, 6, 15, 12, 34, 56), 120, "exif:DateTimeOriginal"),
        (2, "/p/2.jpg", datetime(2021, 6, 15, 12, 34, 56), None, "exif:DateTimeOriginal"),
    ]
    # text: the summary's own form.
    assert sql(f'SELECT * FROM "{app_schema}".notes ORDER BY id') == [
        (1, "/p/1.jpg", "2021-06-15T12:34:56+02:00", 12, "Canon"),
        (2, "/p/2.jpg", "2021-06-15T12:34:56", None, "Canon"),
    ]
    # date: the day of the wall clock (at +02:00 and UTC alike here).
    assert sql(f'SELECT media_taken_at FROM "{app_schema}".days ORDER BY id') == [
        (date(2021, 6, 15),),
        (date(2021, 6, 15),),
    ]


def test_columns_added_to_an_attached_table_are_written_once_it_is_attached_again(
    db: Database, sql: SQL, app_schema: str
) -> None:
    table = f"{app_schema}.media"
    sql(f'CREATE TABLE "{app_schema}".media (id bigint PRIMARY KEY, path text, media_width int)')
    source = attach_table(db, table)
    assert source.summary_columns == ("media_width",)
    sql(f'ALTER TABLE "{app_schema}".media ADD media_taken_at timestamptz, ADD media_lens text')
    sql(f"INSERT INTO \"{app_schema}\".media VALUES (1, '/p/1.jpg')")

    wanted = plan_of(db, table).source
    assert wanted.mapping() == source.mapping()  # the same mapping: no detach needed
    [existing] = tables.sources(db)
    assert refresh_summary_columns(db, existing, wanted, dry_run=True) != existing
    assert tables.sources(db) == [existing]  # a dry run records nothing
    refresh_summary_columns(db, existing, wanted)
    [recorded] = tables.sources(db)
    assert recorded.summary_columns == ("media_width", "media_taken_at", "media_lens")
    assert recorded.summary_types == ("integer", "timestamp with time zone", "text")

    # A daemon started now (a new queue reads the sources) writes them.
    complete(Queue(db), lambda job: photo(job.path))
    assert sql(f'SELECT media_width, media_taken_at, media_lens FROM "{app_schema}".media') == [
        (320, datetime(2021, 6, 15, 10, 34, 56, tzinfo=UTC), "EF24-105mm f/4L IS USM")
    ]
