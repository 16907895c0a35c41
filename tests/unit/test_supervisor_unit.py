"""The supervisor's bookkeeping without processes or a database: what happens to a batch
when the database fails half-way through writing it."""

from __future__ import annotations

import os
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

from mediad.config import Config
from mediad.db.queue import Queue, WriteResult
from mediad.dbthread import Answer
from mediad.errors import DatabaseUnavailable, FailureClass
from mediad.extract.record import record_of
from mediad.models import Completion, Extracted, Failure, Fingerprint, Job
from mediad.mounts import Mount, MountTable
from mediad.storage import Storage, StorageSettings
from mediad.supervisor import Supervisor


def test_results_committed_before_a_failed_failure_write_are_not_written_again() -> None:
    supervisor = Supervisor(Config(), cast(Queue, object()))
    done_job, failed_job = Job(1, "/m/a.mp4", 1, 10), Job(2, "/m/b.mp4", 1, 10)
    extracted = record_of(done_job, Extracted("{}", {}, Fingerprint(1, 1, 1), "/m/a.mp4"))
    failure = Failure(FailureClass.IO_ERROR, "EIO")
    batch = [Completion(done_job, extracted), Completion(failed_job, failure)]
    supervisor._held = {1: done_job, 2: failed_job}
    supervisor._writing = batch
    value: Any = (WriteResult(frozenset({1}), 0), DatabaseUnavailable("connection lost"))
    supervisor._written(Answer("write", value, None, context=[]))
    # The completion is committed and counted once; only the failure waits for a retry.
    assert supervisor.tally.done == 1 and supervisor.tally.stale == 0
    assert [c.job.id for c in supervisor._results] == [2]
    assert set(supervisor._held) == {2}
    assert supervisor._db_retry_at > 0  # backing off before the retry
    supervisor.pool.close()


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
        assert "stalled" not in supervisor._status_text()
        assert supervisor.report().state == "running"
        for n in (1, 2):
            job = Job(n, f"/mnt/nas/{n}.mkv", 1, n)
            supervisor._held[n] = job
            supervisor.storage.assign(job)
            timeout = Completion(job, Failure(FailureClass.TIMEOUT, "no result after 3 s"))
            supervisor._timed_out[n] = None
            supervisor._record([timeout])
        assert supervisor._results == []  # not charged: given back instead
        assert "mount stalled: /mnt/nas" in supervisor._status_text()
        report = supervisor.report()
        assert report.state == "degraded"
        [mount] = report.mounts
        assert (mount.mount, mount.state, mount.timeouts_recent) == ("/mnt/nas", "stalled", 2)
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
