"""The database boundary: the only module that imports psycopg.

Runs the named queries of `sql/queries.sql` against mediad's schema, turns rows into
models and driver errors into mediad's own (DatabaseUnavailable, SchemaError).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from mediad import attach, connfail, logs
from mediad.attach import Source
from mediad.config import mask_dsn
from mediad.errors import (
    DatabaseRejected,
    DatabaseUnavailable,
    FailureClass,
    MediadError,
    SchemaError,
    UsageError,
)
from mediad.extract.record import batch_text, storable_text
from mediad.models import (
    DaemonReport,
    DaemonSeen,
    Failure,
    Job,
    MountReport,
    Record,
    ScanEntry,
)
from mediad.paths import UNSTORABLE_MESSAGE
from mediad.queries import latest_version, migrations, named_queries


class LockTimeout(MediadError):
    """The application's table stayed locked by others past lock_timeout: nothing changed."""


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


def compose(text: str, schema: str) -> sql.Composed:
    return sql.SQL(cast(LiteralString, text)).format(  # type: ignore[redundant-cast]
        schema=sql.Identifier(schema), channel=sql.Identifier(notify_channel(schema))
    )


def notify_channel(schema: str) -> str:
    return f"{schema}.work"


class Store:
    """Named queries over a small connection pool (one daemon needs at most two)."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        *,
        password: str | None = None,
        owner: str = "",
        max_connections: int = 2,
        timeout: float = 5.0,
        prepared_statements: bool = True,
        label: str = "",
    ) -> None:
        self.schema = schema
        self.owner = owner
        # Which database, in every error: the DSN masked, or what the caller calls it.
        self.label = label or mask_dsn(dsn)
        self.timeout = timeout
        self._dsn = dsn
        self._password = password
        self._prepared = prepared_statements
        self._queries = {name: compose(text, schema) for name, text in named_queries().items()}
        self._sources: dict[int, Source] = {}  # attached tables by id, for the write-back
        self._pool = ConnectionPool(
            dsn,
            kwargs=self.connect_kwargs(),
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=timeout,
            # Keep trying for a day: the daemon outlives database restarts and failovers.
            # A connection a restart broke fails its next statement and is replaced; the
            # supervisor retries. (No check before every use: that is one more round trip
            # per statement on the hot path.)
            reconnect_timeout=86400,
            name="mediad",
        )

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout))}
        if not self._prepared:
            # PgBouncer in transaction mode (before 1.21) shares server connections
            # between clients: a statement prepared on one is unknown, or a duplicate, on
            # the next.
            kwargs["prepare_threshold"] = None
        if self._password is not None:
            kwargs["password"] = self._password
        return kwargs

    def open(self, wait: bool = True) -> None:
        if self._pool.closed:
            self._check_reachable()
        try:
            self._pool.open(wait=wait, timeout=self.timeout)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self._unavailable(exc) from None

    def _check_reachable(self) -> None:
        """One direct connection before the pool opens. The pool logs why it cannot
        connect and retries whatever the reason until its timeout; this fails at once,
        with the server's reason, when waiting cannot help (DatabaseRejected), and waits
        up to `timeout` only for a server that is down, restarting or out of reach."""
        deadline = time.monotonic() + self.timeout
        delay = 0.1
        while True:
            try:
                psycopg.connect(self._dsn, **self.connect_kwargs()).close()
                return
            except psycopg.Error as exc:
                failure = connfail.classify(str(exc))
            reason = self._masked(failure.reason)
            if not failure.transient:
                raise DatabaseRejected(f"cannot connect to database {self.label}: {reason}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailable(
                    f"database unavailable: {self.label}: {reason} (tried for "
                    f"{self.timeout:g} s, database.connect_timeout_seconds)"
                )
            time.sleep(min(delay, remaining))  # the last try at the deadline
            delay = min(1.0, delay * 2)

    def _masked(self, text: str) -> str:
        """libpq quotes pieces of a DSN it cannot parse: never the password."""
        text = logs.mask_text(text)
        return text.replace(self._password, logs.MASK) if self._password else text

    def _unavailable(self, exc: Exception) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"database unavailable: {self.label}: {self._masked(_first_line(exc))}"
        )

    def close(self) -> None:
        self._pool.close(timeout=2.0)

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection(timeout=self.timeout) as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unavailable(exc) from None

    def _fetch(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._queries[name], params)
            return cur.fetchall() if cur.description else []

    # --- schema ---------------------------------------------------------------------

    def schema_version(self) -> int:
        present = self._fetch("schema_exists", {"schema": self.schema})[0]["present"]
        if not present:
            return 0
        return int(self._fetch("schema_version")[0]["version"])

    def check_schema(self) -> int:
        """The schema's version, or SchemaError saying what to run."""
        version = self.schema_version()
        latest = latest_version()
        if version == 0:
            raise SchemaError(
                f'schema "{self.schema}" is not set up: run `mediad migrate` '
                "(or set database.auto_migrate = true)"
            )
        if version < latest:
            raise SchemaError(
                f'schema "{self.schema}" is at version {version}, this mediad needs {latest}: '
                "run `mediad migrate`"
            )
        if version > latest:
            raise SchemaError(
                f'schema "{self.schema}" is at version {version}, newer than this mediad '
                f"knows ({latest}): upgrade mediad"
            )
        return version

    def migrate(self) -> list[str]:
        """Apply missing migrations under an advisory lock; idempotent and safe to race."""
        applied: list[str] = []
        with self._connection() as conn, conn.transaction():
            conn.execute(self._queries["migration_lock"], {"schema": self.schema})
            current = self.schema_version_on(conn)
            if current > latest_version():
                raise SchemaError(
                    f'schema "{self.schema}" is at version {current}, newer than this '
                    f"mediad knows ({latest_version()}): upgrade mediad"
                )
            for migration in migrations():
                if migration.version <= current:
                    continue
                conn.execute(compose(migration.text, self.schema))
                conn.execute(self._queries["record_migration"], {"version": migration.version})
                applied.append(migration.name)
        return applied

    def schema_version_on(self, conn: psycopg.Connection[Any]) -> int:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._queries["schema_exists"], {"schema": self.schema})
            row = cur.fetchone()
            if not row or not row["present"]:
                return 0
            cur.execute(self._queries["schema_version"])
            row = cur.fetchone()
            return int(row["version"]) if row else 0

    # --- the hot path ---------------------------------------------------------------

    def claim(
        self,
        limit: int,
        lease_seconds: float,
        skip_existing: bool = False,
        skip_prefixes: Sequence[str] = (),
    ) -> list[Job]:
        """`skip_prefixes`: rows whose path starts with one of these are left alone (the
        mount points of stalled mounts, each ending in "/")."""
        rows = self._fetch(
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
        rows = self._fetch(
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
            raise self._unavailable(exc) from None
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
                    f"the database refused the result: {_first_line(exc)}",
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
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(self._queries["complete"], {"records": batch_text(records)})
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
                statement = attach.write_back(source) if source else None
                if source and statement is not None:
                    written.sort(key=lambda w: w[0])
                    cur.execute(statement, attach.write_back_params(source, written))
            return rows

    def _source_on(self, conn: psycopg.Connection[Any], source_id: int) -> Source | None:
        if source_id not in self._sources:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(self._queries["sources_all"])
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
        written = frozenset(r["id"] for r in self._fetch("fail", params))
        return WriteResult(written, len(failures) - len(written))

    def release(self, jobs: Sequence[Job]) -> int:
        if not jobs:
            return 0
        rows = self._fetch(
            "release", {"ids": [j.id for j in jobs], "tokens": [j.lease_token for j in jobs]}
        )
        return len(rows)

    def give_back(self, jobs: Sequence[Job], delay_seconds: float) -> int:
        """Claimed rows back to pending, uncharged, due `delay_seconds` from now."""
        if not jobs:
            return 0
        rows = self._fetch(
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
        rows = self._fetch("rescue_expired", {"max_attempts": max_attempts, "limit": limit})
        failed = sum(1 for r in rows if r["state"] == "failed")
        return len(rows) - failed, failed

    # --- adding work ----------------------------------------------------------------

    def enqueue(self, paths: Sequence[str], priority: int = 0) -> tuple[int, int]:
        """Returns (inserted, queued again)."""
        if not paths:
            return 0, 0
        rows = self._fetch("enqueue", {"paths": list(paths), "priorities": [priority] * len(paths)})
        inserted = sum(1 for r in rows if r["inserted"])
        return inserted, len(rows) - inserted

    def record_unstorable(self, escaped_paths: Sequence[str], message: str) -> int:
        if not escaped_paths:
            return 0
        return len(
            self._fetch("record_unstorable", {"paths": list(escaped_paths), "message": message})
        )

    def scan_upsert(self, entries: Sequence[ScanEntry], priority: int = 0) -> tuple[int, int]:
        bad = [e.path for e in entries if e.unstorable]
        if bad:
            self.record_unstorable(bad, UNSTORABLE_MESSAGE)
            entries = [e for e in entries if not e.unstorable]
        if not entries:
            return 0, 0
        rows = self._fetch(
            "scan_upsert",
            {
                "paths": [e.path for e in entries],
                "priorities": [priority] * len(entries),
                "sizes": [e.size_bytes for e in entries],
                "mtimes_us": [e.mtime_us for e in entries],
            },
        )
        inserted = sum(1 for r in rows if r["inserted"])
        return inserted, len(rows) - inserted

    # --- reading --------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
        for row in self._fetch("counts_by_state"):
            counts[row["state"]] = int(row["n"])
        return counts

    def failures_by_class(self) -> dict[str, int]:
        return {str(r["error_class"]): int(r["n"]) for r in self._fetch("failures_by_class")}

    def oldest_pending_seconds(self) -> float | None:
        value = self._fetch("oldest_pending_seconds")[0]["seconds"]
        return None if value is None else float(value)

    def finished_since(self, seconds: float) -> tuple[int, int]:
        row = self._fetch("finished_since", {"seconds": seconds})[0]
        return int(row["done"]), int(row["failed"])

    def show(self, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = self._fetch("show", {"paths": list(paths)})
        return {r["path"]: {k: _jsonable(v) for k, v in r.items()} for r in rows}

    def retry_failed(self, error_class: str | None) -> int:
        return len(self._fetch("retry_failed", {"error_class": error_class}))

    def requeue_finished(self, limit: int | None = None) -> int:
        """Finished rows queued again, oldest first; at most `limit` (None: all)."""
        return int(self._fetch("requeue_finished", {"limit": limit})[0]["n"])

    def settle_existing(self) -> int:
        """Pending rows that already hold metadata, back to done untouched: how many."""
        return int(self._fetch("settle_existing")[0]["n"])

    # --- daemons (the fleet) ------------------------------------------------------------

    def heartbeat(self, report: DaemonReport) -> None:
        """Publish the daemon's row: one plain statement, nothing kept in the session."""
        self._fetch(
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
            },
        )

    def forget_daemon(self, owner: str) -> None:
        """A clean exit: the daemon's row goes."""
        self._fetch("daemon_forget", {"owner": owner})

    def prune_daemons(self) -> int:
        """Rows of daemons gone for a day, deleted: how many."""
        return len(self._fetch("daemons_prune"))

    def daemons(self) -> list[DaemonSeen]:
        """Every row, live or gone, with ages from the database's clock."""
        return [_daemon_seen(row) for row in self._fetch("daemons_list")]

    def live_daemons(self) -> list[DaemonSeen]:
        """Daemons whose heartbeat is at most 3 of their own intervals old."""
        return [seen for seen in self.daemons() if seen.live]

    # --- attached application tables (docs/attach.md) ---------------------------------

    def clone(self) -> Store:
        """A store of its own (own pool) on the same database and schema, not yet open."""
        return Store(
            self._dsn,
            self.schema,
            password=self._password,
            owner=self.owner,
            timeout=self.timeout,
            prepared_statements=self._prepared,
            label=self.label,
        )

    def table_info(self, table: str) -> dict[str, Any] | None:
        """The table `table` designates (as PostgreSQL resolves it), or None."""
        try:
            rows = self._fetch("table_info", {"table": table})
        except psycopg.ProgrammingError as exc:
            raise UsageError(f"{table!r} is not a table name: {_first_line(exc)}") from None
        return rows[0] if rows else None

    def table_columns(self, oid: int) -> list[attach.Column]:
        return [
            attach.Column(r["name"], r["type"], r["category"], r["is_unique"])
            for r in self._fetch("table_columns", {"oid": oid})
        ]

    def sources(self) -> list[Source]:
        found = [Source.from_row(r) for r in self._fetch("sources_all")]
        self._sources = {s.id: s for s in found}
        return found

    def attach(
        self, source: Source, *, lock_timeout_ms: int, dry_run: bool = False
    ) -> tuple[Source, list[str]]:
        """Record the source and create its trigger function and triggers, in one short
        transaction. The triggers need a SHARE ROW EXCLUSIVE lock on the application's
        table: lock_timeout makes a busy table fail the attach instead of queueing every
        later writer behind it. Returns the source and the statements (as text); with
        dry_run, nothing runs: not even the INSERT, whose id would consume a sequence value
        and so make the names shown differ from the ones a real attach then creates."""
        with self._connection() as conn:
            lock = attach.set_lock_timeout(lock_timeout_ms)
            params = source.params()
            shown = [
                lock.as_string(conn),
                psycopg.ClientCursor(conn).mogrify(self._queries["source_insert"], params),
            ]
            if dry_run:
                row = conn.execute(self._queries["source_next_id"]).fetchone()
                assert row is not None
                source = source.with_id(int(row[0]))
                shown.extend(s.as_string(conn) for s in self._attach_ddl(source))
                return source, shown
            try:
                with conn.transaction():
                    conn.execute(lock)
                    row = conn.execute(self._queries["source_insert"], params).fetchone()
                    assert row is not None
                    source = source.with_id(int(row[0]))
                    ddl = self._attach_ddl(source)
                    shown.extend(s.as_string(conn) for s in ddl)
                    for statement in ddl:
                        conn.execute(statement)
            except psycopg.errors.LockNotAvailable:
                raise _lock_timeout(source, lock_timeout_ms, "create") from None
            except psycopg.errors.UniqueViolation:
                raise UsageError(f"{source.table_name} is already attached") from None
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MediadError(f"{source.table_name}: {_first_line(exc)}") from None
        self._sources.pop(source.id, None)
        return source, shown

    def trigger_outdated(self, source: Source) -> bool:
        """Whether the table's trigger function is not the one this mediad writes: an
        older mediad attached it, and its trigger lacks what has been added since (ids
        followed, the path prefix)."""
        params = {"schema": self.schema, "function": attach.function_name(source)}
        with self._connection() as conn:
            row = conn.execute(self._queries["source_function_body"], params).fetchone()
            current = attach.function_body(self.schema, source).as_string(conn)
        return row is None or row[0] != current

    def refresh_trigger(self, source: Source, *, lock_timeout_ms: int) -> None:
        """Replace the table's trigger function and triggers with this mediad's, in one
        short transaction under lock_timeout (as attach does): queued rows stay."""
        with self._connection() as conn:
            ddl = [
                attach.set_lock_timeout(lock_timeout_ms),
                *attach.drop_triggers(self.schema, source),
                attach.drop_function(self.schema, source),
                *self._attach_ddl(source),
            ]
            try:
                with conn.transaction():
                    for statement in ddl:
                        conn.execute(statement)
            except psycopg.errors.LockNotAvailable:
                raise _lock_timeout(source, lock_timeout_ms, "update") from None

    def _attach_ddl(self, source: Source) -> list[sql.Composed]:
        return [
            attach.create_function(self.schema, source),
            *attach.create_triggers(self.schema, source),
        ]

    def backfill_text(self, source: Source) -> str:
        """The backfill statement, for --dry-run."""
        with self._connection() as conn:
            return attach.backfill(self.schema, source, first=False).as_string(conn)

    def backfill(
        self,
        source: Source,
        *,
        batch_size: int = 1000,
        skip_existing: bool | None = None,
        resume: bool = True,
        record: bool = True,
        stop: threading.Event | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        max_queued: int | None = None,
    ) -> tuple[int, int]:
        """Queue the rows already in the table, batch by batch (keyset on the id column),
        each batch its own short transaction that only reads the application's table.
        Records its progress in `sources`, so an interrupted backfill resumes. Returns
        (rows seen, rows queued). `max_queued`: queue no more than that many; the batches
        then see only the rows they queue."""
        skip = source.skip_existing if skip_existing is None else skip_existing
        after = source.backfill_after if resume else None
        seen_total = queued_total = 0
        while (stop is None or not stop.is_set()) and (
            max_queued is None or queued_total < max_queued
        ):
            capped = max_queued is not None
            statement = attach.backfill(self.schema, source, first=after is None, capped=capped)
            limit = batch_size if max_queued is None else min(batch_size, max_queued - queued_total)
            params = {"after": after, "limit": limit, "skip_existing": skip}
            with (
                self._connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                cur.execute(statement, params)
                row = cur.fetchone()
                assert row is not None
                seen, queued = int(row["seen"]), int(row["queued"])
                finished = seen < limit
                after = row["last"] if row["last"] is not None else after
                if record:
                    cur.execute(
                        self._queries["source_progress"],
                        {"id": source.id, "after": after, "finished": finished},
                    )
            seen_total += seen
            queued_total += queued
            if on_batch:
                on_batch(seen, queued)
            if finished:
                break
        return seen_total, queued_total

    def detach(self, source: Source, *, lock_timeout_ms: int, dry_run: bool = False) -> list[str]:
        """Drop the triggers and the function (one short transaction under lock_timeout),
        then the source and its files rows. The application's rows are not touched."""
        with self._connection() as conn:
            present = self._table_present(conn, source)
            lock = attach.set_lock_timeout(lock_timeout_ms)
            ddl = [
                *(attach.drop_triggers(self.schema, source) if present else []),
                attach.drop_function(self.schema, source),
            ]
            delete = psycopg.ClientCursor(conn).mogrify(
                self._queries["source_delete"], {"id": source.id}
            )
            shown = [lock.as_string(conn), *(s.as_string(conn) for s in ddl), delete]
            if dry_run:
                return shown
            try:
                with conn.transaction():
                    conn.execute(lock)
                    for statement in ddl:
                        conn.execute(statement)
            except psycopg.errors.LockNotAvailable:
                raise _lock_timeout(source, lock_timeout_ms, "drop") from None
            conn.execute(self._queries["source_delete"], {"id": source.id})
        self._sources.pop(source.id, None)
        return shown

    def _table_present(self, conn: psycopg.Connection[Any], source: Source) -> bool:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._queries["table_info"], {"table": source.table_name})
            row = cur.fetchone()
            return row is not None and row["qualified"] == source.table_name

    def listener(self, on_notify: Callable[[], None]) -> Listener:
        return Listener(self._dsn, self.connect_kwargs(), self._queries["listen"], on_notify)

    def connections_opened(self) -> int:
        """Connections this store's pool has opened so far: beyond the first, reconnects."""
        return int(self._pool.get_stats().get("connections_num", 0))


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


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _lock_timeout(source: Source, lock_timeout_ms: int, verb: str) -> LockTimeout:
    return LockTimeout(
        f"{source.table_name}: could not lock the table within {lock_timeout_ms} ms to "
        f"{verb} the trigger (a long transaction holds it?); nothing was changed, try again"
    )


def _daemon_seen(row: dict[str, Any]) -> DaemonSeen:
    report = DaemonReport(
        owner=row["owner"],
        host=row["host"],
        pid=int(row["pid"]),
        instance=row["instance"],
        mediad_version=row["mediad_version"],
        uptime_seconds=float(row["uptime_s"]),
        heartbeat_seconds=float(row["heartbeat_seconds"]),
        workers_target=int(row["workers_target"]),
        workers_alive=int(row["workers_alive"]),
        workers_stuck=int(row["workers_stuck"]),
        workers_stuck_limit=int(row["workers_stuck_limit"]),
        mounts=tuple(MountReport.from_json(m) for m in row["mounts"] or []),
        draining=row["state"] == "draining",
    )
    return DaemonSeen(report, row["state"], float(row["heartbeat_age_s"]), bool(row["live"]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Listener:
    """A dedicated connection that LISTENs for new work and calls `on_notify`.

    Runs in its own thread, reconnecting after errors; the supervisor's loop only sees a
    wake-up, so losing notifications costs latency (polling still runs), never rows.
    """

    def __init__(
        self,
        dsn: str,
        kwargs: dict[str, Any],
        listen_statement: sql.Composed,
        on_notify: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._kwargs = kwargs
        self._listen = listen_statement
        self._on_notify = on_notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediad-listen", daemon=True)
        self.connected = threading.Event()
        self.connections_opened = 0  # written by its thread only; read for the metrics

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, **self._kwargs) as conn:
                    self.connections_opened += 1
                    conn.execute(self._listen)
                    self.connected.set()
                    # A notification may have been missed while (re)connecting.
                    self._on_notify()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._on_notify()
            except psycopg.Error:
                self.connected.clear()
                self._stop.wait(1.0)
