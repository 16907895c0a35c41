"""Attached application tables (docs/attach.md): attach, refresh, backfill and detach,
each in short transactions that hold the application's table as briefly as they can."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from mediad.attach import Column, Source
from mediad.db import table_sql
from mediad.db.connection import Database, first_line
from mediad.errors import MediadError, UsageError


class LockTimeout(MediadError):
    """The application's table stayed locked by others past lock_timeout: nothing changed."""


def table_info(db: Database, table: str) -> dict[str, Any] | None:
    """The table `table` designates (as PostgreSQL resolves it), or None."""
    try:
        rows = db.run("table_info", {"table": table})
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"{table!r} is not a table name: {first_line(exc)}") from None
    return rows[0] if rows else None


def table_columns(db: Database, oid: int) -> list[Column]:
    return [
        Column(r["name"], r["type"], r["category"], r["is_unique"])
        for r in db.run("table_columns", {"oid": oid})
    ]


def sources(db: Database) -> list[Source]:
    return [Source.from_row(r) for r in db.run("sources_all")]


def set_summary_columns(db: Database, source: Source, columns: tuple[str, ...]) -> None:
    """Record the summary columns a table has now (the same mapping, attached again)."""
    db.run("source_summary_columns", {"id": source.id, "summary_columns": list(columns)})


def attach(
    db: Database, source: Source, *, lock_timeout_ms: int, dry_run: bool = False
) -> tuple[Source, list[str]]:
    """Record the source and create its trigger function and triggers, in one short
    transaction. The triggers need a SHARE ROW EXCLUSIVE lock on the application's
    table: lock_timeout makes a busy table fail the attach instead of queueing every
    later writer behind it. Returns the source and the statements (as text); with
    dry_run, nothing runs: not even the INSERT, whose id would consume a sequence value
    and so make the names shown differ from the ones a real attach then creates."""
    with db.connection() as conn:
        lock = table_sql.set_lock_timeout(lock_timeout_ms)
        params = source.params()
        shown = [
            lock.as_string(conn),
            psycopg.ClientCursor(conn).mogrify(db.query("source_insert"), params),
        ]
        if dry_run:
            row = conn.execute(db.query("source_next_id")).fetchone()
            assert row is not None
            source = source.with_id(int(row[0]))
            shown.extend(s.as_string(conn) for s in _attach_ddl(db.schema, source))
            return source, shown
        try:
            with conn.transaction():
                conn.execute(lock)
                row = conn.execute(db.query("source_insert"), params).fetchone()
                assert row is not None
                source = source.with_id(int(row[0]))
                ddl = _attach_ddl(db.schema, source)
                shown.extend(s.as_string(conn) for s in ddl)
                for statement in ddl:
                    conn.execute(statement)
        except psycopg.errors.LockNotAvailable:
            raise _lock_timeout(source, lock_timeout_ms, "create") from None
        except psycopg.errors.UniqueViolation:
            raise UsageError(f"{source.table_name} is already attached") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise MediadError(f"{source.table_name}: {first_line(exc)}") from None
    return source, shown


def trigger_outdated(db: Database, source: Source) -> bool:
    """Whether the table's trigger function is not the one this mediad writes: an older
    mediad attached it, and its trigger lacks what has been added since (ids followed,
    the path prefix, the shared `queued_again`)."""
    params = {"schema": db.schema, "function": table_sql.function_name(source)}
    with db.connection() as conn:
        row = conn.execute(db.query("source_function_body"), params).fetchone()
        current = table_sql.function_body(db.schema, source).as_string(conn)
    return row is None or row[0] != current


def refresh_trigger(db: Database, source: Source, *, lock_timeout_ms: int) -> None:
    """Replace the table's trigger function and triggers with this mediad's, in one
    short transaction under lock_timeout (as attach does): queued rows stay."""
    with db.connection() as conn:
        ddl = [
            table_sql.set_lock_timeout(lock_timeout_ms),
            *table_sql.drop_triggers(db.schema, source),
            table_sql.drop_function(db.schema, source),
            *_attach_ddl(db.schema, source),
        ]
        try:
            with conn.transaction():
                for statement in ddl:
                    conn.execute(statement)
        except psycopg.errors.LockNotAvailable:
            raise _lock_timeout(source, lock_timeout_ms, "update") from None


def _attach_ddl(schema: str, source: Source) -> list[sql.Composed]:
    return [
        table_sql.create_function(schema, source),
        *table_sql.create_triggers(schema, source),
    ]


def backfill_text(db: Database, source: Source) -> str:
    """The backfill statement, for --dry-run."""
    with db.connection() as conn:
        return table_sql.backfill(db.schema, source, first=False).as_string(conn)


def backfill(
    db: Database,
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
    while (stop is None or not stop.is_set()) and (max_queued is None or queued_total < max_queued):
        capped = max_queued is not None
        statement = table_sql.backfill(db.schema, source, first=after is None, capped=capped)
        limit = batch_size if max_queued is None else min(batch_size, max_queued - queued_total)
        params = {"after": after, "limit": limit, "skip_existing": skip}
        with (
            db.connection() as conn,
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
                    db.query("source_progress"),
                    {"id": source.id, "after": after, "finished": finished},
                )
        seen_total += seen
        queued_total += queued
        if on_batch:
            on_batch(seen, queued)
        if finished:
            break
    return seen_total, queued_total


def detach(
    db: Database, source: Source, *, lock_timeout_ms: int, dry_run: bool = False
) -> list[str]:
    """Drop the triggers and the function (one short transaction under lock_timeout),
    then the source and its files rows. The application's rows are not touched."""
    with db.connection() as conn:
        present = _table_present(db, conn, source)
        lock = table_sql.set_lock_timeout(lock_timeout_ms)
        ddl = [
            *(table_sql.drop_triggers(db.schema, source) if present else []),
            table_sql.drop_function(db.schema, source),
        ]
        delete = psycopg.ClientCursor(conn).mogrify(db.query("source_delete"), {"id": source.id})
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
        conn.execute(db.query("source_delete"), {"id": source.id})
    return shown


def _table_present(db: Database, conn: psycopg.Connection[Any], source: Source) -> bool:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(db.query("table_info"), {"table": source.table_name})
        row = cur.fetchone()
        return row is not None and row["qualified"] == source.table_name


def _lock_timeout(source: Source, lock_timeout_ms: int, verb: str) -> LockTimeout:
    return LockTimeout(
        f"{source.table_name}: could not lock the table within {lock_timeout_ms} ms to "
        f"{verb} the trigger (a long transaction holds it?); nothing was changed, try again"
    )
