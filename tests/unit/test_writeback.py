"""Write-back batching alone: when a batch goes, and what waits again when the database
takes none of it, or only its results. No processes, no database."""

from __future__ import annotations

import pytest

from mediad.daemon.writeback import WriteBack
from mediad.db.queue import FailureWrite
from mediad.errors import FailureClass
from mediad.extract.record import record_of
from mediad.models import Completion, Extracted, Failure, Fingerprint, Job


def done(n: int) -> Completion:
    job = Job(n, f"/m/{n}.mp4", 1, 10)
    return Completion(job, record_of(job, Extracted("{}", {}, Fingerprint(1, 1, n), job.path)))


def failed(n: int) -> Completion:
    return Completion(Job(n, f"/m/{n}.mp4", 2, 10), Failure(FailureClass.IO_ERROR, "EIO"))


def decide(job: Job, failure: Failure) -> FailureWrite:
    return FailureWrite(job, failure, final=job.attempts >= 3, delay_seconds=5.0)


def ids(completions: list[Completion]) -> list[int]:
    return [c.job.id for c in completions]


def test_a_batch_waits_for_the_flush_interval_while_workers_are_busy() -> None:
    wb = WriteBack(flush_seconds=0.5, batch_size=100)
    wb.add([done(1)], now=10.0)
    wb.add([done(2)], now=10.3)  # the oldest result sets the clock
    assert not wb.due(10.4, workers_busy=True)
    assert wb.due_in(10.4, workers_busy=True) == pytest.approx(0.1)
    assert wb.due(10.5, workers_busy=True)


def test_a_batch_goes_at_once_when_full_idle_or_forced() -> None:
    wb = WriteBack(flush_seconds=60.0, batch_size=2)
    wb.add([done(1)], now=0.0)
    assert not wb.due(1.0, workers_busy=True)
    assert wb.due(1.0, workers_busy=False)  # nothing can join it: no reason to wait
    assert wb.due_in(1.0, workers_busy=False) == 0.0
    assert wb.due(1.0, workers_busy=True, force=True)  # stopping
    wb.add([done(2)], now=1.0)
    assert wb.due(1.0, workers_busy=True)  # full


def test_one_write_back_at_a_time() -> None:
    wb = WriteBack(flush_seconds=0.0, batch_size=1)
    wb.add([done(1)], now=0.0)
    batch = wb.take(decide)
    wb.add([done(2)], now=1.0)
    assert not wb.due(5.0, workers_busy=False, force=True)
    assert wb.due_in(5.0, workers_busy=False) is None
    assert ids(batch.completions) == [1] and ids(wb.written()) == [1]
    assert wb.due(5.0, workers_busy=False)


def test_a_batch_is_split_into_results_and_decided_failures() -> None:
    wb = WriteBack(flush_seconds=0.0, batch_size=10)
    wb.add([done(1), failed(2), done(3)], now=0.0)
    batch = wb.take(decide)
    assert [job.id for job, _ in batch.done] == [1, 3]
    [write] = batch.failures
    assert (write.job.id, write.final, write.delay_seconds) == (2, False, 5.0)
    assert not wb.pending and ids(wb.writing) == [1, 2, 3]


def test_a_batch_the_database_did_not_take_waits_again_first_in_order() -> None:
    wb = WriteBack(flush_seconds=1.0, batch_size=10)
    wb.add([done(1), failed(2)], now=0.0)
    wb.take(decide)
    wb.add([done(3)], now=0.5)
    assert ids(wb.failed(now=2.0)) == [1, 2]
    assert ids(wb.pending) == [1, 2, 3] and not wb.writing
    # The clock starts again: the retry is not due at once while workers are busy.
    assert not wb.due(2.5, workers_busy=True) and wb.due(3.0, workers_busy=True)


def test_a_partial_failure_is_repaired_by_writing_the_failures_alone_again() -> None:
    wb = WriteBack(flush_seconds=1.0, batch_size=10)
    wb.add([done(1), failed(2), done(3), failed(4)], now=0.0)
    wb.take(decide)
    wb.add([done(5)], now=0.1)
    settled, again = wb.partly_written(now=0.2)
    assert ids(settled) == [1, 3] and ids(again) == [2, 4]
    assert ids(wb.pending) == [2, 4, 5]  # never the committed results a second time
    batch = wb.take(decide)
    assert [job.id for job, _ in batch.done] == [5]
    assert [w.job.id for w in batch.failures] == [2, 4]


def test_what_was_not_written_is_known_at_exit() -> None:
    wb = WriteBack(flush_seconds=1.0, batch_size=10)
    assert not wb
    wb.add([done(1)], now=0.0)
    wb.take(decide)
    wb.add([done(2)], now=0.1)
    assert wb and ids(wb.unwritten()) == [2, 1]
