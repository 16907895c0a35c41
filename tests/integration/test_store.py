"""The database layer against a real PostgreSQL: claim, fence, release, rescue, enqueue,
scan, heartbeat, migrations."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from mediad.db import intake, migrations, reads
from mediad.db.connection import Database, Target, compose
from mediad.db.queue import FailureWrite, Queue
from mediad.errors import FailureClass, SchemaError
from mediad.extract.record import record_of
from mediad.models import (
    DaemonReport,
    Extracted,
    Failure,
    Fingerprint,
    Job,
    MountReport,
    Record,
    ScanEntry,
)
from mediad.queries import latest_version
from mediad.queries import migrations as all_migrations

SQL = Callable[..., list[tuple[Any, ...]]]


def records(pairs: list[tuple[Job, Extracted]]) -> list[tuple[Job, Record]]:
    """What workers send: each extraction as its write-back record."""
    return [(job, record_of(job, extracted)) for job, extracted in pairs]


def extracted(path: str = "/m/a.mp4") -> Extracted:
    summary = {
        "container": "MPEG-4",
        "duration_s": 2.0,
        "width": 320,
        "height": 240,
        "video_codec": "AVC",
        "audio_codec": "AAC",
        "audio_channels": 2,
        "sample_rate": 48000,
        "video_tracks": 1,
        "audio_tracks": 1,
        "text_tracks": 0,
        "truncated": False,
    }
    document = json.dumps({"media": {"@ref": path, "track": [{"@type": "General"}]}})
    return Extracted(document, summary, Fingerprint(1234, 1_700_000_000_123_456, 42), path)


def test_migrate_is_idempotent_and_versioned(db: Database) -> None:
    assert migrations.migrate(db) == []
    assert migrations.check_schema(db) == latest_version()


def test_unmigrated_schema_is_refused_with_what_to_run(test_dsn: str, schema: str) -> None:
    with (
        Database(Target(test_dsn, schema)) as bare,
        pytest.raises(SchemaError, match="mediad migrate"),
    ):
        migrations.check_schema(bare)


def test_newer_schema_is_refused(db: Database, sql: SQL, schema: str) -> None:
    sql(f'INSERT INTO "{schema}".schema_version (version) VALUES (%s)', [latest_version() + 1])
    with pytest.raises(SchemaError, match="newer than this mediad"):
        migrations.check_schema(db)


def test_claim_takes_priority_first_and_charges_an_attempt(db: Database, queue: Queue) -> None:
    intake.enqueue(db, ["/m/low.mp4"], priority=0)
    intake.enqueue(db, ["/m/high.mp4"], priority=10)
    jobs = queue.claim(1, lease_seconds=30)
    assert [j.path for j in jobs] == ["/m/high.mp4"]
    assert jobs[0].attempts == 1
    assert queue.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}


def test_concurrent_claims_never_share_a_row(
    db: Database, queue: Queue, test_dsn: str, schema: str
) -> None:
    intake.enqueue(db, [f"/m/{i}.mp4" for i in range(100)])
    with Database(Target(test_dsn, schema, owner="other:2")) as other:
        first = queue.claim(60, 30)
        second = Queue(other).claim(60, 30)
    assert len(first) == 60 and len(second) == 40
    assert not {j.id for j in first} & {j.id for j in second}


def test_claim_walks_the_index_even_with_stale_statistics(
    queue: Queue, sql: SQL, schema: str
) -> None:
    # Statistics taken while the queue was empty; then a bulk insert nobody analysed yet:
    # exactly when a planner left alone would fetch and sort the whole backlog.
    sql(f'ANALYZE "{schema}".files')
    sql(
        f'INSERT INTO "{schema}".files (path) '
        f"SELECT '/bulk/' || g FROM generate_series(1, 20000) g"
    )
    [(config,)] = sql(
        "SELECT proconfig FROM pg_proc WHERE proname = 'claim' AND pronamespace = %s::regnamespace",
        [schema],
    )
    assert "enable_sort=off" in config
    sql("BEGIN")
    for setting in config:
        name, value = setting.split("=")
        sql(f"SET LOCAL {name} = {value}")
    plan = "\n".join(
        r[0]
        for r in sql(
            f"EXPLAIN SELECT id FROM \"{schema}\".files WHERE state = 'pending' "
            f"AND run_after <= now() ORDER BY priority DESC, run_after, id LIMIT 50 "
            f"FOR UPDATE SKIP LOCKED"
        )
    )
    sql("ROLLBACK")
    assert "Index Scan using files_claim_idx" in plan and "Sort" not in plan, plan
    assert len(queue.claim(50, 30)) == 50


def test_complete_writes_summary_and_document(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/a.mp4"])
    [job] = queue.claim(10, 30)
    result = queue.complete(records([(job, extracted())]))
    assert (result.written, result.stale) == (1, 0)
    row = sql(
        f"SELECT state, container, width, metadata->'media'->>'@ref', size_bytes, "
        f'lease_token, attempts FROM "{schema}".files'
    )[0]
    assert row == ("done", "MPEG-4", 320, "/m/a.mp4", 1234, None, 1)


def test_a_large_document_is_stored_with_lz4_where_the_server_has_it_and_reads_back(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """A document large enough to be compressed: lz4 on a server built with it (migration
    15), pglz on one without (the embedded server); the same document either way."""
    try:
        sql("CREATE TEMP TABLE lz4_probe (x text COMPRESSION lz4)")
        server_has_lz4 = True
    except psycopg.errors.FeatureNotSupported:
        server_has_lz4 = False
    tracks = [{"@type": "Other", "Index": str(n), "Title": "x" * 40} for n in range(200)]
    document = json.dumps({"media": {"@ref": "/m/a.mp4", "track": tracks}})
    intake.enqueue(db, ["/m/a.mp4"])
    [job] = queue.claim(10, 30)
    queue.complete(records([(job, replace(extracted(), document=document))]))
    [(method, stored)] = sql(
        f'SELECT pg_column_compression(metadata), metadata FROM "{schema}".files'
    )
    assert method == ("lz4" if server_has_lz4 else "pglz")
    assert stored == json.loads(document)


def test_a_stale_claim_cannot_overwrite_a_newer_one(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/a.mp4"])
    [old] = queue.claim(10, 30)
    # The lease expires (the daemon was paused) and another claim takes the row.
    sql(f"UPDATE \"{schema}\".files SET lease_expires_at = now() - interval '1 s'")
    assert queue.rescue_expired(max_attempts=5) == (1, 0)
    [new] = queue.claim(10, 30)
    assert new.lease_token != old.lease_token
    assert queue.complete(records([(old, extracted())])).stale == 1
    failure = FailureWrite(old, Failure(FailureClass.TIMEOUT, "late"), True, 0)
    assert queue.fail([failure]).stale == 1
    assert queue.counts()["running"] == 1
    assert queue.complete(records([(new, extracted())])).written == 1
    assert sql(f'SELECT state, attempts FROM "{schema}".files') == [("done", 2)]


def test_failure_is_retried_then_final(db: Database, queue: Queue, sql: SQL, schema: str) -> None:
    intake.enqueue(db, ["/m/a.mp4"])
    [job] = queue.claim(10, 30)
    failure = Failure(FailureClass.IO_ERROR, "EIO")
    queue.fail([FailureWrite(job, failure, final=False, delay_seconds=3600)])
    assert queue.claim(10, 30) == []  # backing off
    row = sql(
        f"SELECT state, error_class, run_after > now() + interval '59 min' FROM \"{schema}\".files"
    )
    assert row == [("pending", "io_error", True)]
    sql(f'UPDATE "{schema}".files SET run_after = now()')
    [again] = queue.claim(10, 30)
    queue.fail([FailureWrite(again, failure, final=True, delay_seconds=0)])
    assert sql(f'SELECT state, attempts, error FROM "{schema}".files') == [("failed", 2, "EIO")]


def test_release_gives_rows_back_without_charging(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/a.mp4", "/m/b.mp4"])
    jobs = queue.claim(10, 30)
    assert queue.release(jobs) == 2
    assert sql(f'SELECT state, attempts, lease_owner FROM "{schema}".files') == [
        ("pending", 0, None),
        ("pending", 0, None),
    ]


def test_renew_extends_only_our_leases(db: Database, queue: Queue, sql: SQL, schema: str) -> None:
    intake.enqueue(db, ["/m/a.mp4", "/m/b.mp4"])
    a, b = queue.claim(10, 5)
    forged = Job(b.id, b.path, b.attempts, b.lease_token + 1000)
    assert queue.renew([a, forged], 600) == {a.id}
    rows = sql(
        f"SELECT path, lease_expires_at > now() + interval '5 min' "
        f'FROM "{schema}".files ORDER BY path'
    )
    assert rows == [("/m/a.mp4", True), ("/m/b.mp4", False)]


def test_rescue_fails_rows_out_of_attempts(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/a.mp4"])
    queue.claim(10, 30)
    sql(f"UPDATE \"{schema}\".files SET lease_expires_at = now() - interval '1 s'")
    assert queue.rescue_expired(max_attempts=1) == (0, 1)
    assert sql(f'SELECT state, error_class FROM "{schema}".files') == [("failed", "lease_expired")]


def test_enqueue_requeues_finished_rows_only(db: Database, queue: Queue) -> None:
    assert intake.enqueue(db, ["/m/a.mp4", "/m/b.mp4"]) == (2, 0)
    [a, _b] = queue.claim(10, 30)
    queue.complete(records([(a, extracted())]))
    # a is done: queued again; b is running: left alone.
    assert intake.enqueue(db, ["/m/a.mp4", "/m/b.mp4"]) == (0, 1)
    assert queue.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}


def test_scan_skips_unchanged_and_requeues_changed(db: Database, queue: Queue) -> None:
    entry = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_123_456)
    assert intake.scan_upsert(db, [entry]) == (1, 0)
    [job] = queue.claim(10, 30)
    queue.complete(records([(job, extracted())]))
    assert intake.scan_upsert(db, [entry]) == (0, 0)
    changed = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_999_999)
    assert intake.scan_upsert(db, [changed]) == (0, 1)


def test_plain_sql_enqueue_function(queue: Queue, sql: SQL, schema: str) -> None:
    [(row_id,)] = sql(f'SELECT "{schema}".enqueue(%s, 5)', ["/m/app.mp4"])
    assert row_id is not None
    sql(
        f'INSERT INTO "{schema}".files (path) VALUES (%s) ON CONFLICT (path) DO NOTHING',
        ["/m/app2.mp4"],
    )
    assert [j.path for j in queue.claim(10, 30)] == ["/m/app.mp4", "/m/app2.mp4"]


def test_a_document_postgres_refuses_fails_only_its_row(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/good.mp4", "/m/bad.mp4"])
    good, bad = queue.claim(10, 30)
    broken = Extracted("{not json", extracted().summary, extracted().fingerprint, "/m/bad.mp4")
    result = queue.complete(records([(good, extracted("/m/good.mp4")), (bad, broken)]))
    assert result.written == 2  # one done, one recorded as failed
    rows = sql(f'SELECT path, state, error_class FROM "{schema}".files ORDER BY path')
    assert rows == [("/m/bad.mp4", "failed", "internal"), ("/m/good.mp4", "done", None)]


def test_notify_on_new_pending_work(db: Database, test_dsn: str, schema: str) -> None:
    with psycopg.connect(test_dsn, autocommit=True) as listener:
        listener.execute(f'LISTEN "{schema}.work"')
        intake.enqueue(db, ["/m/a.mp4"])
        notes = list(listener.notifies(timeout=2.0, stop_after=1))
    assert [n.channel for n in notes] == [f"{schema}.work"]


def test_unreachable_database_is_reported_as_unavailable() -> None:
    from mediad.errors import DatabaseUnavailable

    unreachable = Database(Target("postgresql://nobody@127.0.0.1:1/none", "mediad", timeout=1))
    with pytest.raises(DatabaseUnavailable):
        unreachable.open()
    unreachable.close()


def test_a_crash_keeps_the_fingerprint_so_rescans_skip_unchanged_files(
    db: Database, queue: Queue
) -> None:
    entry = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_123_456)
    intake.scan_upsert(db, [entry])
    [job] = queue.claim(10, 30)
    crash = Failure(FailureClass.WORKER_CRASH, "killed by SIGSEGV")
    queue.fail([FailureWrite(job, crash, final=True, delay_seconds=0)])
    assert intake.scan_upsert(db, [entry]) == (0, 0)
    # A file that was missing has no fingerprint: when it appears, the scan queues it.
    intake.scan_upsert(db, [ScanEntry("/m/b.mp4", 1, 1)])
    [job_b] = queue.claim(10, 30)
    missing = Failure(FailureClass.NOT_FOUND, "cannot resolve path: No such file or directory")
    queue.fail([FailureWrite(job_b, missing, final=True, delay_seconds=0)])
    assert intake.scan_upsert(db, [ScanEntry("/m/b.mp4", 1, 1)]) == (0, 1)


def test_a_batch_comes_back_in_priority_order(db: Database, queue: Queue) -> None:
    for i, priority in enumerate([0, 5, 1, 9, 5]):
        intake.enqueue(db, [f"/m/{i}.mp4"], priority=priority)
    assert [j.path for j in queue.claim(10, 30)] == [
        "/m/3.mp4",
        "/m/1.mp4",
        "/m/4.mp4",
        "/m/2.mp4",
        "/m/0.mp4",
    ]


def test_a_rescan_after_a_crash_does_not_reset_the_attempts(db: Database, queue: Queue) -> None:
    intake.scan_upsert(db, [ScanEntry("/m/a.mp4", 10, 1)])
    [job] = queue.claim(10, 30)
    queue.complete(records([(job, extracted())]))
    assert intake.scan_upsert(db, [ScanEntry("/m/a.mp4", 20, 1)]) == (0, 1)  # changed: queued
    [again] = queue.claim(10, 30)
    crash = Failure(FailureClass.WORKER_CRASH, "killed by SIGSEGV")
    queue.fail([FailureWrite(again, crash, final=False, delay_seconds=0)])
    # The change was already seen; the crash looked at nothing: the same scan again must
    # leave the row (and its charged attempt) alone.
    assert intake.scan_upsert(db, [ScanEntry("/m/a.mp4", 20, 1)]) == (0, 0)


def test_a_resolved_name_that_is_not_utf8_is_stored_escaped(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    intake.enqueue(db, ["/m/link.mp4", "/m/good.mp4"])
    link, good = queue.claim(10, 30)
    odd = os.fsdecode(b"/m/caf\xe9.mp4")  # what realpath returns for such a target
    result = queue.complete(
        records([(link, replace(extracted(), resolved_path=odd)), (good, extracted("/m/good.mp4"))])
    )
    assert result.written == 2
    assert sql(f'SELECT resolved_path FROM "{schema}".files WHERE path = %s', ["/m/link.mp4"]) == [
        (r"/m/caf\xe9.mp4",)
    ]


def daemon_report(owner: str = "h1:10", **changes: Any) -> DaemonReport:
    report = DaemonReport(
        owner=owner,
        host=owner.split(":")[0],
        pid=int(owner.split(":")[1]),
        instance="",
        mediad_version="0.1.0",
        uptime_seconds=60.0,
        heartbeat_seconds=5.0,
        workers_target=4,
        workers_alive=4,
        workers_stuck=0,
        workers_stuck_limit=4,
    )
    return replace(report, **changes)


def test_a_heartbeat_inserts_the_row_then_rewrites_it(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    queue.heartbeat(daemon_report())
    [(started, first)] = sql(f'SELECT started_at, heartbeat_at FROM "{schema}".daemons')
    stalled = MountReport("/mnt/nas", "nfs4", "stalled", in_flight=2, stuck=1, timeouts_recent=3)
    queue.heartbeat(daemon_report(workers_alive=3, workers_stuck=1, mounts=(stalled,)))
    [(started_again, second, state)] = sql(
        f'SELECT started_at, heartbeat_at, state FROM "{schema}".daemons'
    )
    assert started_again == started and second > first
    # started_at is the database's now() less the daemon's uptime.
    [(uptime,)] = sql(
        f'SELECT extract(epoch FROM heartbeat_at - started_at) FROM "{schema}".daemons'
    )
    assert 60 <= float(uptime) < 65
    assert state == "degraded"  # a mount stalled
    [seen] = reads.live_daemons(db)
    assert seen.live and 0 <= seen.heartbeat_age_seconds < 5
    assert seen.report.mounts == (stalled,)
    assert (seen.report.workers_alive, seen.report.workers_stuck) == (3, 1)


def test_a_daemon_is_gone_after_three_of_its_own_intervals(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    queue.heartbeat(daemon_report("fast:1", heartbeat_seconds=5.0))
    queue.heartbeat(daemon_report("slow:2", heartbeat_seconds=30.0))
    sql(f"UPDATE \"{schema}\".daemons SET heartbeat_at = now() - interval '20 seconds'")
    seen = {d.report.owner: d for d in reads.daemons(db)}
    assert not seen["fast:1"].live and seen["slow:2"].live
    assert 20 <= seen["fast:1"].heartbeat_age_seconds < 25
    assert [d.report.owner for d in reads.live_daemons(db)] == ["slow:2"]
    queue.heartbeat(daemon_report("fast:1"))  # it beats again: live again
    assert {d.report.owner for d in reads.live_daemons(db)} == {"fast:1", "slow:2"}


def test_forget_deletes_only_its_row_and_prune_only_day_old_rows(
    queue: Queue, sql: SQL, schema: str
) -> None:
    for owner in ("a:1", "b:2", "c:3", "d:4"):
        queue.heartbeat(daemon_report(owner))
    queue.forget_daemon("a:1")
    for owner, age in (("b:2", "25 hours"), ("c:3", "23 hours")):
        sql(
            f'UPDATE "{schema}".daemons SET heartbeat_at = now() - %s::interval WHERE owner = %s',
            [age, owner],
        )
    assert queue.prune_daemons() == 1
    rows = sql(f'SELECT owner FROM "{schema}".daemons ORDER BY owner')
    assert rows == [("c:3",), ("d:4",)]


def test_every_requeue_starts_a_new_request_and_the_daemons_own_returns_do_not(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """enqueued_at is when the current request for the file entered the queue: every
    re-queue (enqueue, scan, retry, extract --all, enqueue()) sets it; a retry after a
    failure, a release and a rescue keep it (docs/schema.md)."""
    files = f'"{schema}".files'

    def age_reset(path: str) -> bool:
        [(reset,)] = sql(
            f"SELECT enqueued_at > now() - interval '1 s' FROM {files} WHERE path = %s", [path]
        )
        return bool(reset)

    def make_old(state: str) -> None:
        sql(
            f"UPDATE {files} SET state = %s, enqueued_at = now() - interval '1 day', error = 'x'",
            [state],
        )

    intake.enqueue(db, ["/m/a.mp4"])
    make_old("failed")
    assert intake.retry_failed(db, None) == 1 and age_reset("/m/a.mp4")
    make_old("done")
    assert intake.requeue_finished(db) == 1 and age_reset("/m/a.mp4")
    make_old("done")
    sql(f'SELECT "{schema}".enqueue(%s, 3)', ["/m/a.mp4"])
    assert age_reset("/m/a.mp4")
    assert sql(f"SELECT state, priority, attempts, error, lease_token FROM {files}") == [
        ("pending", 3, 0, None, None)
    ]
    make_old("pending")
    [job] = queue.claim(10, 30)
    queue.fail([FailureWrite(job, Failure(FailureClass.IO_ERROR, "EIO"), False, 0)])
    [job] = queue.claim(10, 30)
    queue.release([job])
    assert not age_reset("/m/a.mp4")  # the same request, still waiting


def test_a_schema_one_version_behind_is_refused_then_upgraded_in_place(
    test_dsn: str, schema: str, sql: SQL
) -> None:
    """An installation of the version before: its rows stay, `check_schema` names
    `mediad migrate`, and after it the re-queue of its finished rows works."""
    with Database(Target(test_dsn, schema)) as old:
        with old.connection() as conn, conn.transaction():
            for migration in all_migrations()[:-1]:
                conn.execute(compose(migration.text, schema))
                conn.execute(old.query("record_migration"), {"version": migration.version})
        sql(f"INSERT INTO \"{schema}\".files (path, state) VALUES ('/m/a.mp4', 'done')")
        with pytest.raises(SchemaError, match="run `mediad migrate`"):
            migrations.check_schema(old)
        assert migrations.migrate(old) == [all_migrations()[-1].name]
        assert migrations.check_schema(old) == latest_version()
        assert intake.enqueue(old, ["/m/a.mp4"]) == (0, 1)
