"""`mediad reextract` on a real PostgreSQL: which rows its filters select, alone and
combined, that --dry-run counts what a run queues, that queued rows go behind new work,
in bounded windows of ids, and that `extract --skip-existing` does not skip them
(settle and claim), while it still skips the rows queued by anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mediad.db import intake
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.reextract import REEXTRACT_PRIORITY, Selection

SQL = Callable[..., list[tuple[Any, ...]]]

# path: (state, container, mapping_version, error_class)
LIBRARY: dict[str, tuple[str, str | None, int | None, str | None]] = {
    "/m/old.mp4": ("done", "MPEG-4", None, None),
    "/m/new.MP4": ("done", "MPEG-4", 2, None),
    "/m/photo.jpg": ("done", "JPEG", 1, None),
    "/m/photo2.JPEG": ("done", "JPEG", 2, None),
    "/m/song.flac": ("done", "FLAC", None, None),
    "/m/broken.jpg": ("failed", None, None, "corrupt"),
    "/m/gone.mp4": ("failed", None, None, "not_found"),
    "/m/slow.jpg": ("failed", None, None, "timeout"),
    "/m/waiting.jpg": ("pending", None, None, None),
}


@pytest.fixture
def library(db: Database, sql: SQL, schema: str) -> dict[str, int]:
    """LIBRARY as rows (finished ones with old metadata); their ids by path."""
    files = f'"{schema}".files'
    intake.enqueue(db, list(LIBRARY), priority=5)
    for path, (state, container, mapping, error_class) in LIBRARY.items():
        sql(
            f"UPDATE {files} SET state = %s, container = %s, mapping_version = %s, "
            "error_class = %s, finished_at = CASE WHEN %s <> 'pending' THEN now() END, "
            """metadata = CASE WHEN %s = 'done' THEN '{"old": true}'::jsonb END """
            "WHERE path = %s",
            [state, container, mapping, error_class, state, state, path],
        )
    return {p: i for p, i in sql(f"SELECT path, id FROM {files}")}


def pending_at_low_priority(sql: SQL, schema: str) -> set[str]:
    rows = sql(
        f'SELECT path FROM "{schema}".files WHERE state = %s AND priority = %s',
        ["pending", REEXTRACT_PRIORITY],
    )
    return {p for (p,) in rows}


@pytest.fixture
def run(db: Database, sql: SQL, schema: str, library: dict[str, int]) -> Callable[..., set[str]]:
    """Counts a selection (dry run), queues it, checks both say the same and that
    nothing else changed state; returns the paths queued."""

    def queue_again(window: int = 5000, **filters: Any) -> set[str]:
        selection = Selection(**filters)
        counted = intake.reextract(db, selection, dry_run=True, window=window)
        assert pending_at_low_priority(sql, schema) == set()  # the dry run changed nothing
        count = intake.reextract(db, selection, window=window)
        paths = pending_at_low_priority(sql, schema)
        assert counted == count == len(paths)
        return paths

    return queue_again


# --- what is selected -----------------------------------------------------------------


def test_mapping_below_selects_done_rows_with_an_older_or_no_mapping(
    run: Callable[..., set[str]],
) -> None:
    assert run(mapping_below=2) == {"/m/old.mp4", "/m/photo.jpg", "/m/song.flac"}


def test_mapping_below_one_selects_the_rows_written_before_versions_were_recorded(
    run: Callable[..., set[str]],
) -> None:
    assert run(mapping_below=1) == {"/m/old.mp4", "/m/song.flac"}


def test_container_is_matched_exactly(run: Callable[..., set[str]]) -> None:
    assert run(containers=("JPEG", "FLAC")) == {"/m/photo.jpg", "/m/photo2.JPEG", "/m/song.flac"}


def test_container_does_not_match_by_case_or_part(run: Callable[..., set[str]]) -> None:
    assert run(containers=("jpeg", "MPEG")) == set()


def test_extension_matches_any_case_with_or_without_the_dot(
    run: Callable[..., set[str]],
) -> None:
    assert run(extensions=("JPG", ".jpeg", "mp4")) == {
        "/m/photo.jpg",
        "/m/photo2.JPEG",
        "/m/old.mp4",
        "/m/new.MP4",
    }


def test_extension_characters_of_like_are_taken_literally(
    db: Database, run: Callable[..., set[str]], sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/a.m_v", "/m/b.mxv"])
    sql(f"""UPDATE "{schema}".files SET state = 'done' WHERE path LIKE '/m/_.m%%'""")
    assert run(extensions=(".m_v",)) == {"/m/a.m_v"}


def test_class_selects_failed_rows_of_that_class_and_no_done_row(
    run: Callable[..., set[str]],
) -> None:
    assert run(classes=("corrupt", "timeout")) == {"/m/broken.jpg", "/m/slow.jpg"}


def test_filters_combine_each_must_match(run: Callable[..., set[str]]) -> None:
    assert run(mapping_below=2, containers=("MPEG-4", "JPEG"), extensions=(".jpg",)) == {
        "/m/photo.jpg"
    }


def test_class_and_extension_combine(run: Callable[..., set[str]]) -> None:
    assert run(classes=("corrupt", "not_found"), extensions=("jpg",)) == {"/m/broken.jpg"}


def test_all_selects_every_done_row_and_no_failed_one(run: Callable[..., set[str]]) -> None:
    done = {p for p, (state, *_) in LIBRARY.items() if state == "done"}
    assert run(everything=True) == done


def test_windows_smaller_than_the_table_and_gaps_in_ids_miss_no_row(
    run: Callable[..., set[str]], sql: SQL, schema: str, library: dict[str, int]
) -> None:
    # A gap of deleted rows wider than a window, and matching rows on both sides of it.
    sql(
        f'DELETE FROM "{schema}".files WHERE id IN (%s, %s)',
        [library["/m/new.MP4"], library["/m/photo.jpg"]],
    )
    assert run(window=1, mapping_below=3) == {"/m/old.mp4", "/m/photo2.JPEG", "/m/song.flac"}


# --- what a queued row becomes ----------------------------------------------------------


def test_a_queued_row_is_a_new_request_that_keeps_its_metadata(
    db: Database, sql: SQL, schema: str, library: dict[str, int]
) -> None:
    intake.reextract(db, Selection(classes=("corrupt",)))
    [row] = sql(
        f"SELECT state, attempts, error_class, error, priority, enqueued_at > now() - "
        f"interval '1 minute', reextract_at = enqueued_at "
        f'FROM "{schema}".files WHERE path = %s',
        ["/m/broken.jpg"],
    )
    assert row == ("pending", 0, None, None, REEXTRACT_PRIORITY, True, True)


def test_pending_and_running_rows_are_left_alone(
    db: Database, queue: Queue, sql: SQL, schema: str, library: dict[str, int]
) -> None:
    [running] = queue.claim(1, 60)  # /m/waiting.jpg, the one pending row
    intake.enqueue(db, ["/m/later.jpg"], priority=7)

    # Of the .jpg rows: photo.jpg (done) is queued; waiting.jpg is running, later.jpg
    # pending, broken.jpg and slow.jpg failed (which --class selects).
    assert intake.reextract(db, Selection(extensions=("jpg",))) == 1
    rows = dict(sql(f'SELECT path, priority FROM "{schema}".files WHERE state <> %s', ["done"]))
    assert rows["/m/later.jpg"] == 7
    assert sql(f'SELECT state, priority FROM "{schema}".files WHERE id = %s', [running.id]) == [
        ("running", 5)
    ]


def test_new_work_is_claimed_before_the_rows_queued_again(
    db: Database, queue: Queue, library: dict[str, int]
) -> None:
    queue.claim(10, 60)  # the pending row of the library, out of the way
    assert intake.reextract(db, Selection(mapping_below=2)) == 3
    intake.enqueue(db, ["/m/new1.mkv", "/m/new2.mkv"])  # after them, at the default 0

    first = queue.claim(2, 60)
    rest = queue.claim(10, 60)

    assert {j.path for j in first} == {"/m/new1.mkv", "/m/new2.mkv"}
    assert {j.path for j in rest} == {"/m/old.mp4", "/m/photo.jpg", "/m/song.flac"}


# --- extract --skip-existing --------------------------------------------------------------


def test_skip_existing_settles_rows_queued_by_others_but_not_by_reextract(
    db: Database, sql: SQL, schema: str, library: dict[str, int]
) -> None:
    intake.reextract(db, Selection(mapping_below=2))  # old.mp4, photo.jpg, song.flac
    intake.enqueue(db, ["/m/new.MP4"])  # queued again by an application: skipped

    assert intake.settle_existing(db) == 1

    pending = {p for (p,) in sql(f"SELECT path FROM \"{schema}\".files WHERE state = 'pending'")}
    assert pending == {"/m/old.mp4", "/m/photo.jpg", "/m/song.flac", "/m/waiting.jpg"}


def test_skip_existing_claims_rows_queued_by_reextract(
    db: Database, queue: Queue, sql: SQL, schema: str, library: dict[str, int]
) -> None:
    queue.claim(10, 60)  # the pending row of the library, out of the way
    intake.reextract(db, Selection(extensions=("flac",)))
    intake.enqueue(db, ["/m/new.MP4"])  # holds metadata, queued by someone else

    claimed = queue.claim(10, 60, skip_existing=True)

    assert [j.path for j in claimed] == ["/m/song.flac"]


def test_a_row_given_back_stays_a_reextraction_and_a_later_requeue_is_not_one(
    db: Database, queue: Queue, sql: SQL, schema: str, library: dict[str, int]
) -> None:
    queue.claim(10, 60)
    intake.reextract(db, Selection(extensions=("flac",)))
    claimed = queue.claim(10, 60)
    queue.release(claimed)  # a drain: back to pending, the same request
    assert [j.path for j in queue.claim(10, 60, skip_existing=True)] == ["/m/song.flac"]

    sql(f"""UPDATE "{schema}".files SET state = 'done', lease_token = NULL
            WHERE path = '/m/song.flac'""")
    intake.enqueue(db, ["/m/song.flac"])  # a new request, by someone else
    assert queue.claim(10, 60, skip_existing=True) == []
    assert intake.settle_existing(db) == 1
