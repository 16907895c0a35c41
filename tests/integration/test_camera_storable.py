"""What the second reader finds in hostile files is stored: files read by the real
extractor (MediaInfo, libexiv2, the sidecar) and written by the real write-back, so a
value PostgreSQL refuses (an impossible day in a timestamptz, Infinity in jsonb) would
show as a failed row here (docs/schema.md: a file MediaInfo read is done)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.mix import SIDECAR
from bench.mix_av import AvSpec, write_av
from mediad.db import intake
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from mediad.extract.sidecar import MAX_SIDECAR_BYTES
from mediad.models import Extracted
from mediad.scan import scan_into
from tests.integration.test_store import records
from tests.support.camera import STEM_SIDECAR, plain_jpeg

SQL = Callable[..., list[tuple[Any, ...]]]


def _sidecar_dated(path: Path, date: str) -> None:
    plain_jpeg(path)
    Path(f"{path}.xmp").write_text(SIDECAR.replace("2019-07-04T18:30:00", date), encoding="utf-8")


def test_hostile_dates_and_places_leave_every_row_of_the_batch_done(
    db: Database, queue: Queue, sql: SQL, schema: str, tmp_path: Path
) -> None:
    _sidecar_dated(tmp_path / "fine.jpg", "2019-07-04T18:30:00")
    _sidecar_dated(tmp_path / "feb31.jpg", "2021-02-31T18:30:00")  # no such day
    _sidecar_dated(tmp_path / "digits.jpg", "\u0662\u0660\u0661\u0669-07-04T18:30:00")
    # A phone video whose ISO 6709 place has an altitude no float holds: Infinity in JSON.
    write_av(
        tmp_path,
        AvSpec(
            "alt.mov",
            "libx264",
            (),
            (64, 48),
            0.2,
            metadata={"location": "+48.8584+002.2945+" + "9" * 400 + "/"},
        ),
    )
    names = ("fine.jpg", "feb31.jpg", "digits.jpg", "alt.mov")
    intake.enqueue(db, [str(tmp_path / name) for name in names])
    jobs = queue.claim(10, 30)
    read = [(job, extract(job.path, ExtractOptions())) for job in jobs]
    assert all(isinstance(outcome, Extracted) for _, outcome in read)
    queue.complete(records(read))  # type: ignore[arg-type]

    rows = {
        Path(r[0]).name: r[1:]
        for r in sql(
            f"SELECT path, state, error, summary->>'taken_at', gps_lat, gps_alt_m "
            f'FROM "{schema}".files'
        )
    }
    assert {name: row[:2] for name, row in rows.items()} == {name: ("done", None) for name in names}
    # What cannot be a date or a height is no value; the rest of the file stands.
    assert rows["fine.jpg"][2] == "2019-07-04T18:30:00-04:00"
    assert rows["feb31.jpg"][2] is None
    assert rows["digits.jpg"][2] is None
    assert rows["alt.mov"][3:] == (48.8584, None)


def test_a_sidecar_the_worker_cannot_read_does_not_queue_its_file_at_every_scan(
    db: Database, queue: Queue, sql: SQL, schema: str, tmp_path: Path
) -> None:
    """The scan compares what it sees beside each file with what the worker stored: a
    sidecar the worker refuses to read (too large, a link out of the roots, a name taken
    by a directory) is still there at the next scan, and must not be a change."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.xmp").write_text(SIDECAR, encoding="utf-8")
    plain_jpeg(root / "big.jpg")
    (root / "big.jpg.xmp").write_bytes(b" " * (MAX_SIDECAR_BYTES + 1))
    plain_jpeg(root / "escape.jpg")
    (root / "escape.jpg.xmp").symlink_to(outside / "secret.xmp")
    # name.ext.xmp is a directory: the scan takes name.xmp, so must the worker.
    plain_jpeg(root / "dir.jpg")
    (root / "dir.jpg.xmp").mkdir()
    (root / "dir.xmp").write_text(SIDECAR, encoding="utf-8")
    # A link to a photo elsewhere in the roots: the scan looks beside the link.
    (root / "store").mkdir()
    plain_jpeg(root / "store" / "real.jpg")
    (root / "store" / "real.jpg.xmp").write_text(SIDECAR, encoding="utf-8")
    (root / "linked.jpg").symlink_to(root / "store" / "real.jpg")
    (root / "linked.jpg.xmp").write_text(STEM_SIDECAR, encoding="utf-8")
    options = ExtractOptions(roots=(str(root),))
    scan = partial(scan_into, partial(intake.scan_upsert, db), [str(root)], 0)
    assert scan()[:2] == (5, 0)
    jobs = queue.claim(10, 30)
    read = [(job, extract(job.path, options)) for job in jobs]
    queue.complete(records(read))  # type: ignore[arg-type]
    assert [r[0] for r in sql(f'SELECT DISTINCT state FROM "{schema}".files')] == ["done"]

    assert scan()[:2] == (0, 0)
    pending = sql(f"SELECT path FROM \"{schema}\".files WHERE state = 'pending'")
    assert pending == []
    (taken,) = sql(
        f"SELECT summary->>'taken_at' FROM \"{schema}\".files WHERE path = %s",
        [str(root / "dir.jpg")],
    )
    assert taken == ("2019-07-04T18:30:00-04:00",)  # the sidecar the scan compares
    (taken,) = sql(
        f"SELECT summary->>'taken_at' FROM \"{schema}\".files WHERE path = %s",
        [str(root / "linked.jpg")],
    )
    assert taken == ("2012-12-12T12:12:12+00:00",)


def test_an_upper_case_xmp_sidecar_is_read_and_compared(
    db: Database, queue: Queue, sql: SQL, schema: str, tmp_path: Path
) -> None:
    """`IMG_0001.XMP` beside `IMG_0001.JPG` (as cameras' cards and some photo managers
    name them) is no row of its own: it must be the photo's sidecar, read and compared."""
    plain_jpeg(tmp_path / "IMG_0001.JPG")
    (tmp_path / "IMG_0001.XMP").write_text(STEM_SIDECAR, encoding="utf-8")
    scan = partial(scan_into, partial(intake.scan_upsert, db), [str(tmp_path)], 0)
    assert scan()[:2] == (1, 0)
    jobs = queue.claim(10, 30)
    queue.complete(records([(job, extract(job.path, ExtractOptions())) for job in jobs]))  # type: ignore[list-item]
    rows = sql(f"SELECT state, summary->>'taken_at_source' FROM \"{schema}\".files")
    assert rows == [("done", "xmp-sidecar:DateTimeOriginal")]
    assert scan()[:2] == (0, 0)
    (tmp_path / "IMG_0001.XMP").write_text(SIDECAR, encoding="utf-8")
    assert scan()[:2] == (0, 1)  # an edit of it queues the photo again
