"""The store against a real PostgreSQL: claim, fence, release, rescue, enqueue, scan."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest

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
from mediad.store import FailureWrite, Store

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


def test_migrate_is_idempotent_and_versioned(store: Store) -> None:
    assert store.migrate() == []
    assert store.check_schema() == latest_version()


def test_unmigrated_schema_is_refused_with_what_to_run(test_dsn: str, schema: str) -> None:
    with Store(test_dsn, schema) as bare, pytest.raises(SchemaError, match="mediad migrate"):
        bare.check_schema()


def test_newer_schema_is_refused(store: Store, sql: SQL, schema: str) -> None:
    sql(f'INSERT INTO "{schema}".schema_version (version) VALUES (%s)', [latest_version() + 1])
    with pytest.raises(SchemaError, match="newer than this mediad"):
        store.check_schema()


def test_claim_takes_priority_first_and_charges_an_attempt(store: Store) -> None:
    store.enqueue(["/m/low.mp4"], priority=0)
    store.enqueue(["/m/high.mp4"], priority=10)
    jobs = store.claim(1, lease_seconds=30)
    assert [j.path for j in jobs] == ["/m/high.mp4"]
    assert jobs[0].attempts == 1
    assert store.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}


def test_concurrent_claims_never_share_a_row(store: Store, test_dsn: str, schema: str) -> None:
    store.enqueue([f"/m/{i}.mp4" for i in range(100)])
    with Store(test_dsn, schema, owner="other:2") as other:
        first = store.claim(60, 30)
        second = other.claim(60, 30)
    assert len(first) == 60 and len(second) == 40
    assert not {j.id for j in first} & {j.id for j in second}


def test_claim_walks_the_index_even_with_stale_statistics(
    store: Store, sql: SQL, schema: str
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
    assert len(store.claim(50, 30)) == 50


def test_complete_writes_summary_and_document(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4"])
    [job] = store.claim(10, 30)
    result = store.complete(records([(job, extracted())]))
    assert (result.written, result.stale) == (1, 0)
    row = sql(
        f"SELECT state, container, width, metadata->'media'->>'@ref', size_bytes, "
        f'lease_token, attempts FROM "{schema}".files'
    )[0]
    assert row == ("done", "MPEG-4", 320, "/m/a.mp4", 1234, None, 1)


def test_a_stale_claim_cannot_overwrite_a_newer_one(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4"])
    [old] = store.claim(10, 30)
    # The lease expires (the daemon was paused) and another claim takes the row.
    sql(f"UPDATE \"{schema}\".files SET lease_expires_at = now() - interval '1 s'")
    assert store.rescue_expired(max_attempts=5) == (1, 0)
    [new] = store.claim(10, 30)
    assert new.lease_token != old.lease_token
    assert store.complete(records([(old, extracted())])).stale == 1
    failure = FailureWrite(old, Failure(FailureClass.TIMEOUT, "late"), True, 0)
    assert store.fail([failure]).stale == 1
    assert store.counts()["running"] == 1
    assert store.complete(records([(new, extracted())])).written == 1
    assert sql(f'SELECT state, attempts FROM "{schema}".files') == [("done", 2)]


def test_failure_is_retried_then_final(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4"])
    [job] = store.claim(10, 30)
    failure = Failure(FailureClass.IO_ERROR, "EIO")
    store.fail([FailureWrite(job, failure, final=False, delay_seconds=3600)])
    assert store.claim(10, 30) == []  # backing off
    row = sql(
        f"SELECT state, error_class, run_after > now() + interval '59 min' FROM \"{schema}\".files"
    )
    assert row == [("pending", "io_error", True)]
    sql(f'UPDATE "{schema}".files SET run_after = now()')
    [again] = store.claim(10, 30)
    store.fail([FailureWrite(again, failure, final=True, delay_seconds=0)])
    assert sql(f'SELECT state, attempts, error FROM "{schema}".files') == [("failed", 2, "EIO")]


def test_release_gives_rows_back_without_charging(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4", "/m/b.mp4"])
    jobs = store.claim(10, 30)
    assert store.release(jobs) == 2
    assert sql(f'SELECT state, attempts, lease_owner FROM "{schema}".files') == [
        ("pending", 0, None),
        ("pending", 0, None),
    ]


def test_renew_extends_only_our_leases(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4", "/m/b.mp4"])
    a, b = store.claim(10, 5)
    forged = Job(b.id, b.path, b.attempts, b.lease_token + 1000)
    assert store.renew([a, forged], 600) == {a.id}
    rows = sql(
        f"SELECT path, lease_expires_at > now() + interval '5 min' "
        f'FROM "{schema}".files ORDER BY path'
    )
    assert rows == [("/m/a.mp4", True), ("/m/b.mp4", False)]


def test_rescue_fails_rows_out_of_attempts(store: Store, sql: SQL, schema: str) -> None:
    store.enqueue(["/m/a.mp4"])
    store.claim(10, 30)
    sql(f"UPDATE \"{schema}\".files SET lease_expires_at = now() - interval '1 s'")
    assert store.rescue_expired(max_attempts=1) == (0, 1)
    assert sql(f'SELECT state, error_class FROM "{schema}".files') == [("failed", "lease_expired")]


def test_enqueue_requeues_finished_rows_only(store: Store) -> None:
    assert store.enqueue(["/m/a.mp4", "/m/b.mp4"]) == (2, 0)
    [a, _b] = store.claim(10, 30)
    store.complete(records([(a, extracted())]))
    # a is done: queued again; b is running: left alone.
    assert store.enqueue(["/m/a.mp4", "/m/b.mp4"]) == (0, 1)
    assert store.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}


def test_scan_skips_unchanged_and_requeues_changed(store: Store) -> None:
    entry = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_123_456)
    assert store.scan_upsert([entry]) == (1, 0)
    [job] = store.claim(10, 30)
    store.complete(records([(job, extracted())]))
    assert store.scan_upsert([entry]) == (0, 0)
    changed = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_999_999)
    assert store.scan_upsert([changed]) == (0, 1)


def test_plain_sql_enqueue_function(store: Store, sql: SQL, schema: str) -> None:
    [(row_id,)] = sql(f'SELECT "{schema}".enqueue(%s, 5)', ["/m/app.mp4"])
    assert row_id is not None
    sql(
        f'INSERT INTO "{schema}".files (path) VALUES (%s) ON CONFLICT (path) DO NOTHING',
        ["/m/app2.mp4"],
    )
    assert [j.path for j in store.claim(10, 30)] == ["/m/app.mp4", "/m/app2.mp4"]


def test_a_document_postgres_refuses_fails_only_its_row(
    store: Store, sql: SQL, schema: str
) -> None:
    store.enqueue(["/m/good.mp4", "/m/bad.mp4"])
    good, bad = store.claim(10, 30)
    broken = Extracted("{not json", extracted().summary, extracted().fingerprint, "/m/bad.mp4")
    result = store.complete(records([(good, extracted("/m/good.mp4")), (bad, broken)]))
    assert result.written == 2  # one done, one recorded as failed
    rows = sql(f'SELECT path, state, error_class FROM "{schema}".files ORDER BY path')
    assert rows == [("/m/bad.mp4", "failed", "internal"), ("/m/good.mp4", "done", None)]


def test_notify_on_new_pending_work(store: Store, test_dsn: str, schema: str) -> None:
    with psycopg.connect(test_dsn, autocommit=True) as listener:
        listener.execute(f'LISTEN "{schema}.work"')
        store.enqueue(["/m/a.mp4"])
        notes = list(listener.notifies(timeout=2.0, stop_after=1))
    assert [n.channel for n in notes] == [f"{schema}.work"]


def test_unreachable_database_is_reported_as_unavailable() -> None:
    from mediad.errors import DatabaseUnavailable

    unreachable = Store("postgresql://nobody@127.0.0.1:1/none", "mediad", timeout=1)
    with pytest.raises(DatabaseUnavailable):
        unreachable.open()
    unreachable.close()


def test_a_crash_keeps_the_fingerprint_so_rescans_skip_unchanged_files(store: Store) -> None:
    entry = ScanEntry("/m/a.mp4", 1234, 1_700_000_000_123_456)
    store.scan_upsert([entry])
    [job] = store.claim(10, 30)
    crash = Failure(FailureClass.WORKER_CRASH, "killed by SIGSEGV")
    store.fail([FailureWrite(job, crash, final=True, delay_seconds=0)])
    assert store.scan_upsert([entry]) == (0, 0)
    # A file that was missing has no fingerprint: when it appears, the scan queues it.
    store.scan_upsert([ScanEntry("/m/b.mp4", 1, 1)])
    [job_b] = store.claim(10, 30)
    missing = Failure(FailureClass.NOT_FOUND, "cannot resolve path: No such file or directory")
    store.fail([FailureWrite(job_b, missing, final=True, delay_seconds=0)])
    assert store.scan_upsert([ScanEntry("/m/b.mp4", 1, 1)]) == (0, 1)


def test_a_batch_comes_back_in_priority_order(store: Store) -> None:
    for i, priority in enumerate([0, 5, 1, 9, 5]):
        store.enqueue([f"/m/{i}.mp4"], priority=priority)
    assert [j.path for j in store.claim(10, 30)] == [
        "/m/3.mp4",
        "/m/1.mp4",
        "/m/4.mp4",
        "/m/2.mp4",
        "/m/0.mp4",
    ]


def test_a_rescan_after_a_crash_does_not_reset_the_attempts(store: Store) -> None:
    store.scan_upsert([ScanEntry("/m/a.mp4", 10, 1)])
    [job] = store.claim(10, 30)
    store.complete(records([(job, extracted())]))
    assert store.scan_upsert([ScanEntry("/m/a.mp4", 20, 1)]) == (0, 1)  # changed: queued
    [again] = store.claim(10, 30)
    crash = Failure(FailureClass.WORKER_CRASH, "killed by SIGSEGV")
    store.fail([FailureWrite(again, crash, final=False, delay_seconds=0)])
    # The change was already seen; the crash looked at nothing: the same scan again must
    # leave the row (and its charged attempt) alone.
    assert store.scan_upsert([ScanEntry("/m/a.mp4", 20, 1)]) == (0, 0)


def test_a_resolved_name_that_is_not_utf8_is_stored_escaped(
    store: Store, sql: SQL, schema: str
) -> None:
    store.enqueue(["/m/link.mp4", "/m/good.mp4"])
    link, good = store.claim(10, 30)
    odd = os.fsdecode(b"/m/caf\xe9.mp4")  # what realpath returns for such a target
    result = store.complete(
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


def test_a_heartbeat_inserts_the_row_then_rewrites_it(store: Store, sql: SQL, schema: str) -> None:
    store.heartbeat(daemon_report())
    [(started, first)] = sql(f'SELECT started_at, heartbeat_at FROM "{schema}".daemons')
    stalled = MountReport("/mnt/nas", "nfs4", "stalled", in_flight=2, stuck=1, timeouts_recent=3)
    store.heartbeat(daemon_report(workers_alive=3, workers_stuck=1, mounts=(stalled,)))
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
    [seen] = store.live_daemons()
    assert seen.live and 0 <= seen.heartbeat_age_seconds < 5
    assert seen.report.mounts == (stalled,)
    assert (seen.report.workers_alive, seen.report.workers_stuck) == (3, 1)


def test_a_daemon_is_gone_after_three_of_its_own_intervals(
    store: Store, sql: SQL, schema: str
) -> None:
    store.heartbeat(daemon_report("fast:1", heartbeat_seconds=5.0))
    store.heartbeat(daemon_report("slow:2", heartbeat_seconds=30.0))
    sql(f"UPDATE \"{schema}\".daemons SET heartbeat_at = now() - interval '20 seconds'")
    seen = {d.report.owner: d for d in store.daemons()}
    assert not seen["fast:1"].live and seen["slow:2"].live
    assert 20 <= seen["fast:1"].heartbeat_age_seconds < 25
    assert [d.report.owner for d in store.live_daemons()] == ["slow:2"]
    store.heartbeat(daemon_report("fast:1"))  # it beats again: live again
    assert {d.report.owner for d in store.live_daemons()} == {"fast:1", "slow:2"}


def test_forget_deletes_only_its_row_and_prune_only_day_old_rows(
    store: Store, sql: SQL, schema: str
) -> None:
    for owner in ("a:1", "b:2", "c:3", "d:4"):
        store.heartbeat(daemon_report(owner))
    store.forget_daemon("a:1")
    for owner, age in (("b:2", "25 hours"), ("c:3", "23 hours")):
        sql(
            f'UPDATE "{schema}".daemons SET heartbeat_at = now() - %s::interval WHERE owner = %s',
            [age, owner],
        )
    assert store.prune_daemons() == 1
    rows = sql(f'SELECT owner FROM "{schema}".daemons ORDER BY owner')
    assert rows == [("c:3",), ("d:4",)]
