"""What the second reader finds in hostile files is stored: files read by the real
extractor (MediaInfo, libexiv2, the sidecar) and written by the real write-back, so a
value PostgreSQL refuses (an impossible day in a timestamptz, Infinity in jsonb) would
show as a failed row here (docs/schema.md: a file MediaInfo read is done)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.mix import SIDECAR
from bench.mix_av import AvSpec, write_av
from mediad.db import intake
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from mediad.models import Extracted
from tests.integration.test_store import records
from tests.support.camera import plain_jpeg

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
