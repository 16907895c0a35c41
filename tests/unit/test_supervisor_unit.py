"""The supervisor's bookkeeping without worker processes or a database: a store that
answers (or fails) as told, through the real database threads."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest
from structlog.testing import capture_logs

from mediad.config import Config
from mediad.daemon.ledger import Where
from mediad.daemon.loop import Supervisor
from mediad.daemon.requests import Measure, QueueMeasure, ReadPauses
from mediad.daemon.storage import Storage, StorageSettings
from mediad.db.queue import FailureWrite, Queue, WriteResult
from mediad.errors import DatabaseUnavailable, FailureClass
from mediad.extract.record import record_of
from mediad.models import Completion, Extracted, Failure, Fingerprint, Job, Record
from mediad.mounts import Mount, MountTable
from mediad.pauses import Pause


class FakeStore:
    """Commits results, then loses the connection before the failures are written."""

    owner = "host:1"

    def __init__(self) -> None:
        self.completed: list[int] = []

    def complete(self, results: Sequence[tuple[Job, Record]]) -> WriteResult:
        ids = frozenset(job.id for job, _ in results)
        self.completed.extend(ids)
        return WriteResult(ids, 0)

    def fail(self, failures: Sequence[FailureWrite]) -> WriteResult:
        raise DatabaseUnavailable("connection lost")


def answered(supervisor: Supervisor) -> None:
    assert supervisor.db.wait_and_handle(timeout=30) is not None


def test_results_committed_before_a_failed_failure_write_are_not_written_again() -> None:
    store = FakeStore()
    supervisor = Supervisor(Config(), cast(Queue, store))
    supervisor.db.start()
    try:
        done_job, failed_job = Job(1, "/m/a.mp4", 1, 10), Job(2, "/m/b.mp4", 1, 10)
        extracted = record_of(done_job, Extracted("{}", {}, Fingerprint(1, 1, 1), "/m/a.mp4"))
        failure = Failure(FailureClass.IO_ERROR, "EIO")
        supervisor.ledger.claimed([done_job, failed_job])
        supervisor.ledger.take(2)
        supervisor.results.results_in(
            [Completion(done_job, extracted), Completion(failed_job, failure)]
        )
        supervisor.results.maybe_flush(0.0, force=True)
        answered(supervisor)
        # The completion is committed and counted once; only the failure waits for a retry.
        assert supervisor.tally.done == 1 and supervisor.tally.stale == 0
        assert [c.job.id for c in supervisor.results.writeback.pending] == [2]
        assert 1 not in supervisor.ledger and supervisor.ledger.where(2) is Where.RESULT
        assert supervisor.db.retry_at > 0  # backing off before the retry
        supervisor.db.retry_now()
        supervisor.results.maybe_flush(0.0, force=True)
        answered(supervisor)
        assert store.completed == [1]  # never a second time
    finally:
        supervisor.db.stop()
        supervisor.pool.close()


class Measured:
    owner = "host:1"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def counts(self) -> dict[str, int]:
        raise self.error

    def oldest_pending_seconds(self) -> float | None:
        return None


def measure(error: Exception) -> Supervisor:
    supervisor = Supervisor(Config(), cast(Queue, Measured(error)))
    supervisor.db.start()
    seen: list[QueueMeasure] = []
    supervisor.db.submit(Measure(), seen.append)
    try:
        answered(supervisor)
    finally:
        supervisor.db.stop()
        supervisor.pool.close()
    assert seen == []
    return supervisor


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.InsufficientPrivilege("permission denied for table media_files"),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute UPDATE in a read-only transaction"),
        DatabaseUnavailable("connection lost"),
    ],
)
def test_any_error_of_the_database_is_waited_out_with_a_back_off(error: Exception) -> None:
    """A revoked grant or a read-only server after a failover: not a reason to exit (and
    be restarted in a loop until systemd's start limit), but to wait and try again."""
    supervisor = measure(error)
    assert supervisor.db.retry_at > 0


def test_a_bug_is_raised_not_retried_as_if_the_database_were_away() -> None:
    with pytest.raises(KeyError, match="pending"):
        measure(KeyError("pending"))


def test_a_reload_changes_how_many_files_a_worker_may_hold() -> None:
    supervisor = Supervisor(Config(), cast(Queue, object()))
    try:
        for _ in range(20):
            supervisor.pool.pace.observe(0.001)  # small files: the most a worker may hold
        assert supervisor.pool.depth() == Config().daemon.prefetch
        smaller = Config(daemon=replace(Config().daemon, prefetch=3))
        supervisor.apply_config(smaller)
        assert supervisor.pool.depth() == 3
    finally:
        supervisor.pool.close()


def test_a_stalled_mount_shows_in_the_status_line_and_the_daemons_report() -> None:
    supervisor = Supervisor(Config(), cast(Queue, SimpleNamespace(owner="host:1")))
    nas = Mount("/mnt/nas", "nfs4", "nas:/media", os.makedev(0, 40))
    table = MountTable([Mount("/", "ext4", "/dev/sda1", os.makedev(8, 1)), nas])
    supervisor.storage = Storage(StorageSettings(2, 60.0, 5.0), read_table=lambda: table)
    try:
        assert "stalled" not in supervisor.reporter.status_text()
        assert supervisor.report().state == "running"
        for n in (1, 2):
            job = Job(n, f"/mnt/nas/{n}.mkv", 1, n)
            supervisor.ledger.claimed([job])
            supervisor.storage.assign(job)
            supervisor.ledger.take(1)
            event: dict[str, Any] = {"pid": 9, "row_id": n, "device": None, "path": job.path}
            supervisor.reporter.pool_event("worker_timeout", event)
            timeout = Completion(job, Failure(FailureClass.TIMEOUT, "no result after 3 s"))
            supervisor.results.record([timeout])
            # Not charged: held for the mount's window, then given back.
            assert supervisor.ledger.where(n) is Where.PARKED
        assert not supervisor.results.writeback
        assert "mount stalled: /mnt/nas" in supervisor.reporter.status_text()
        report = supervisor.report()
        assert report.state == "degraded"
        [mount] = report.mounts
        assert (mount.mount, mount.state, mount.timeouts_recent) == ("/mnt/nas", "stalled", 2)
        # Stopping: both rows go back, uncharged, instead of waiting for their leases.
        assert {j.id for j in supervisor.ledger.at_stop()} == {1, 2}
    finally:
        supervisor.pool.close()


def test_stuck_probes_count_toward_the_limit_on_forking_workers() -> None:
    supervisor = Supervisor(Config(), cast(Queue, object()))
    pool = supervisor.pool
    try:
        pool.target_size = 2
        pool.stuck_elsewhere = lambda: (2, 2)  # two probes killed on dead mounts, stuck
        pool.maintain()
        assert pool.slots == [] and pool.next_start_in() is None
    finally:
        pool.close()


class GivingBack:
    """Fails the first give-back (the connection is lost), takes the next ones."""

    owner = "host:1"

    def __init__(self) -> None:
        self.taken: list[tuple[list[int], float]] = []
        self.failures = 1

    def give_back(self, jobs: Sequence[Job], delay_seconds: float) -> int:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("connection lost")
        self.taken.append(([job.id for job in jobs], delay_seconds))
        return len(jobs)


def test_a_paused_give_back_that_fails_is_given_back_again_as_paused_and_due_at_once() -> None:
    """Not as rows of a stalled mount: those are due a probe interval later and logged as
    "their mount is not answering", which would be wrong on both counts."""
    store = GivingBack()
    supervisor = Supervisor(Config(), cast(Queue, store))
    supervisor.db.start()
    try:
        job = Job(1, "/srv/media/a.mp4", 1, 10)
        supervisor.ledger.claimed([job])
        supervisor.pausing.active = [Pause("/srv/media", datetime.now(UTC), None)]
        with capture_logs() as logs:
            assert supervisor.pausing.hold_back(list(supervisor.ledger.buffer)) == []
            answered(supervisor)
            assert supervisor.ledger.where(1) is Where.PARKED  # held, its lease renewed
            supervisor.db.retry_now()  # the database answers again
            supervisor.mounts.tick(time.monotonic())
            answered(supervisor)
        assert store.taken == [([1], 0.0)]
        assert 1 not in supervisor.ledger and not supervisor.storage.holding()
        given = [e["event"] for e in logs if e["event"].startswith("rows given back")]
        assert given == ["rows given back: paused"]
    finally:
        supervisor.db.stop()
        supervisor.pool.close()


class HeldPause:
    """A pause over by the clock whose row another transaction holds: expiring skips it."""

    owner = "host:1"

    def __init__(self) -> None:
        self.expiries = 0
        self.over = Pause("/srv/media", datetime.now(UTC), None, expired=True)

    def expire_pauses(self) -> int:
        self.expiries += 1
        return 0

    def pauses(self) -> list[Pause]:
        return [self.over]

    def clear_pause_marks(self) -> int:
        return 0


def test_a_pause_that_could_not_be_expired_is_tried_again_at_the_next_read_not_at_once() -> None:
    """Its row is held (another daemon expiring it, or a marker: migration 0014): sending
    expiry after expiry until it is free would keep the database thread busy for nothing."""
    store = HeldPause()
    supervisor = Supervisor(Config(), cast(Queue, store))
    supervisor.db.start()
    try:
        supervisor.pausing.maybe_read(time.monotonic())
        answered(supervisor)  # the read: one pause over, so an expiry is sent
        answered(supervisor)  # the expiry, which found the row held
        assert store.expiries == 1 and not supervisor.db.busy(ReadPauses)
        assert supervisor.pausing.active == []
    finally:
        supervisor.db.stop()
        supervisor.pool.close()
