"""The queue's hot path, as the daemon runs it: claim, renew, write (complete and fail),
release, give back, rescue, measure, and the daemon's heartbeat row.

Every statement is autocommitted and short; the writes are fenced by the claim's lease
token (sql/queries.sql), so a late write from an older claim changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mediad.attach import Source
from mediad.db import pauses, reads, table_sql
from mediad.db.connection import Database, first_line
from mediad.errors import FailureClass
from mediad.extract.record import batch_text, storable_text
from mediad.models import DaemonReport, DaemonSeen, Failure, Job, Record
from mediad.pauses import Pause


@dataclass(frozen=True)
class FailureWrite:
    """A failure with the retry decision already taken by the policy."""

    job: Job
    failure: Failure
    final: bool
    delay_seconds: float


@dataclass(frozen=True)
class WriteResult:
    written_ids: frozenset[int]
    stale: int  # refused by the fence: the row was no longer ours

    @property
    def written(self) -> int:
        return len(self.written_ids)


# Failures that happen without the file being looked at (the worker died, hung, or the
# lease ran out): they say nothing about the file's fingerprint.
UNOBSERVED = frozenset(
    {
        FailureClass.WORKER_CRASH,
        FailureClass.TIMEOUT,
        FailureClass.OUT_OF_MEMORY,
        FailureClass.LEASE_EXPIRED,
        FailureClass.INTERNAL,
    }
)


# What PostgreSQL may answer to a write-back it refuses (a value a column cannot hold, an
# application constraint or trigger, a column dropped after the attach): the batch is
# written again row by row and the row that cannot be stored fails with class internal.
# Connection errors (OperationalError, deadlocks included) are not here: they are retried.
# Errors about the values of one row (SQLSTATE classes 22 and 23): that row fails, the
# rest of the batch is written. Anything else is about the database, not the row.
REFUSED = (psycopg.DataError, psycopg.IntegrityError)


class Queue:
    """The daemon's statements, over one database handle: `Queue(runtime.connect(config,
    owner))`, or `Queue(db)` for the handle a command opened. `db` is for the connection
    itself: its label, listener, reconnect count, close."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sources: dict[int, Source] = {}  # attached tables by id, for the write-back

    @property
    def owner(self) -> str:
        """The lease owner this queue claims as."""
        return self.db.owner

    def claim(
        self,
        limit: int,
        lease_seconds: float,
        skip_existing: bool = False,
        skip_prefixes: Sequence[str] = (),
    ) -> list[Job]:
        """`skip_prefixes`: rows whose path starts with one of these are left alone (the
        mount points of stalled mounts, each ending in "/")."""
        rows = self.db.run(
            "claim",
            {
                "limit": limit,
                "owner": self.owner,
                "lease_seconds": lease_seconds,
                "skip_existing": skip_existing,
                "skip_prefixes": list(skip_prefixes),
            },
        )
        # RETURNING has no order: hand files to workers in claim order.
        rows.sort(key=lambda r: (-r["priority"], r["id"]))
        return [Job(r["id"], r["path"], r["attempts"], r["lease_token"]) for r in rows]

    def renew(self, held: Sequence[Job], lease_seconds: float) -> set[int]:
        if not held:
            return set()
        rows = self.db.run(
            "renew_leases",
            {
                "ids": [j.id for j in held],
                "tokens": [j.lease_token for j in held],
                "lease_seconds": lease_seconds,
            },
        )
        return {r["id"] for r in rows}

    def complete(self, results: Sequence[tuple[Job, Record]]) -> WriteResult:
        if not results:
            return WriteResult(frozenset(), 0)
        records = [record for _, record in results]
        try:
            rows = self._complete(records)
        except REFUSED:
            # One document PostgreSQL refuses must not sink the batch: write one by one,
            # and record the row that cannot be stored as a failure.
            return self._complete_one_by_one([job for job, _ in results], records)
        except psycopg.Error as exc:
            # Not about a row (a revoked grant, a read-only server after a failover):
            # back off and write the batch again later; never fail rows for it.
            raise self.db.unavailable(exc) from None
        written = frozenset(r["id"] for r in rows)
        return WriteResult(written, len(results) - len(written))

    def _complete_one_by_one(self, jobs: Sequence[Job], records: Sequence[Record]) -> WriteResult:
        written: set[int] = set()
        for job, record in zip(jobs, records, strict=True):
            try:
                rows = self._complete([record])
            except REFUSED as exc:
                fingerprint, resolved_path = record.observed()
                failure = Failure(
                    FailureClass.INTERNAL,
                    f"the database refused the result: {first_line(exc)}",
                    fingerprint,
                    resolved_path,
                )
                # Counted as written: the row holds our (failed) outcome.
                rows = [
                    {"id": i}
                    for i in self.fail([FailureWrite(job, failure, True, 0.0)]).written_ids
                ]
            written.update(r["id"] for r in rows)
        return WriteResult(frozenset(written), len(records) - len(written))

    def _complete(self, records: Sequence[Record]) -> list[dict[str, Any]]:
        """The fenced update and, for rows of attached tables, the write-back into the
        application's rows: one transaction, so both are written or neither."""
        with (
            self.db.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(self.db.query("complete"), {"records": batch_text(records)})
            rows = cur.fetchall()
            attached: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}
            by_id = {record.row_id: record for record in records}
            for row in rows:  # only what the fence let through
                if row["source_id"] is not None:
                    record = by_id[row["id"]]
                    attached.setdefault(row["source_id"], []).append(
                        (row["source_row"], record.document(), record.summary())
                    )
            for source_id, written in sorted(attached.items()):
                source = self._source_on(conn, source_id)
                statement = table_sql.write_back(source) if source else None
                if source and statement is not None:
                    written.sort(key=lambda w: w[0])
                    cur.execute(statement, table_sql.write_back_params(source, written))
            return rows

    def _source_on(self, conn: psycopg.Connection[Any], source_id: int) -> Source | None:
        """Sources are read again only when a row names one not seen yet: ids are never
        reused, and a changed mapping is a new attach (a new id)."""
        if source_id not in self._sources:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(self.db.query("sources_all"))
                self._sources = {r["id"]: Source.from_row(r) for r in cur.fetchall()}
        return self._sources.get(source_id)

    def fail(self, failures: Sequence[FailureWrite]) -> WriteResult:
        if not failures:
            return WriteResult(frozenset(), 0)
        fps = [f.failure.fingerprint for f in failures]
        params = {
            "ids": [f.job.id for f in failures],
            "tokens": [f.job.lease_token for f in failures],
            "states": ["failed" if f.final else "pending" for f in failures],
            "delays": [0.0 if f.final else f.delay_seconds for f in failures],
            "classes": [str(f.failure.failure_class) for f in failures],
            "messages": [storable_text(f.failure.message) for f in failures],
            "resolved_paths": [storable_text(f.failure.resolved_path) for f in failures],
            "sizes": [fp.size_bytes if fp else None for fp in fps],
            "mtimes_us": [fp.mtime_us if fp else None for fp in fps],
            "inodes": [fp.inode if fp else None for fp in fps],
            # A worker that died or hung never reported a fingerprint: keep the one we had,
            # so an unchanged file is not queued again by the next scan.
            "keep_fingerprints": [
                fp is None and f.failure.failure_class in UNOBSERVED
                for f, fp in zip(failures, fps, strict=True)
            ],
        }
        written = frozenset(r["id"] for r in self.db.run("fail", params))
        return WriteResult(written, len(failures) - len(written))

    def release(self, jobs: Sequence[Job]) -> int:
        if not jobs:
            return 0
        rows = self.db.run(
            "release", {"ids": [j.id for j in jobs], "tokens": [j.lease_token for j in jobs]}
        )
        return len(rows)

    def give_back(self, jobs: Sequence[Job], delay_seconds: float) -> int:
        """Claimed rows back to pending, uncharged, due `delay_seconds` from now."""
        if not jobs:
            return 0
        rows = self.db.run(
            "give_back",
            {
                "ids": [j.id for j in jobs],
                "tokens": [j.lease_token for j in jobs],
                "delay": delay_seconds,
            },
        )
        return len(rows)

    def rescue_expired(self, max_attempts: int, limit: int = 1000) -> tuple[int, int]:
        """Expired leases back to pending (or failed); returns (requeued, failed)."""
        rows = self.db.run("rescue_expired", {"max_attempts": max_attempts, "limit": limit})
        failed = sum(1 for r in rows if r["state"] == "failed")
        return len(rows) - failed, failed

    # --- measuring the queue (the pace and the gauges) ---------------------------------

    def counts(self) -> dict[str, int]:
        return reads.counts(self.db)

    def oldest_pending_seconds(self) -> float | None:
        return reads.oldest_pending_seconds(self.db)

    def daemons(self) -> list[DaemonSeen]:
        """Every daemon's row, live or gone: the fleet's view each daemon exports."""
        return reads.daemons(self.db)

    # --- pauses (mediad/db/pauses.py) ----------------------------------------------------

    def pauses(self) -> list[Pause]:
        return pauses.pauses(self.db)

    def expire_pauses(self) -> int:
        return pauses.expire(self.db)

    def clear_pause_marks(self) -> int:
        return pauses.clear_marks(self.db)

    # --- the daemon's own row (the fleet) ---------------------------------------------

    def heartbeat(self, report: DaemonReport) -> None:
        """Publish the daemon's row: one plain statement, nothing kept in the session."""
        self.db.run(
            "daemon_heartbeat",
            {
                "owner": report.owner,
                "host": report.host,
                "pid": report.pid,
                "instance": report.instance,
                "mediad_version": report.mediad_version,
                "uptime_s": max(0.0, report.uptime_seconds),
                "heartbeat_seconds": report.heartbeat_seconds,
                "state": report.state,
                "workers_target": report.workers_target,
                "workers_alive": report.workers_alive,
                "workers_stuck": report.workers_stuck,
                "workers_stuck_limit": report.workers_stuck_limit,
                "mounts": json.dumps([m.as_json() for m in report.mounts]),
                "in_flight": json.dumps([f.as_json() for f in report.in_flight]),
                "mediainfo_version": report.mediainfo_version,
                "files_finished": report.files_finished,
            },
        )

    def forget_daemon(self, owner: str) -> None:
        """A clean exit: the daemon's row goes."""
        self.db.run("daemon_forget", {"owner": owner})

    def prune_daemons(self) -> int:
        """Rows of daemons gone for a day, deleted: how many."""
        return len(self.db.run("daemons_prune"))
