"""The rows a run works on: queued with mediad's own enqueue, or made in bulk; dropped after."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.db import Sql
from bench.results import TableStats
from mediad.db import intake, migrations
from mediad.db.connection import Database, Target

# Rows per statement when work comes to a ready daemon: what `mediad enqueue` and
# `mediad scan` send in one statement.
ENQUEUE_BATCH = 1000


@contextlib.contextmanager
def enqueuer(dsn: str, schema: str, paths: list[str], batch: int) -> Iterator[Callable[[], float]]:
    """Migrates the schema, then gives a call that queues every path with mediad's own
    enqueue, `batch` per statement, and returns the seconds it took. Its connection is
    open before the call, so it can be told apart from the daemon's."""
    store = Database(Target(dsn, schema))
    store.open()
    try:
        migrations.migrate(store)

        def enqueue() -> float:
            started = time.perf_counter()
            for start in range(0, len(paths), batch):
                intake.enqueue(store, paths[start : start + batch])
            return time.perf_counter() - started

        yield enqueue
    finally:
        store.close()


def enqueue_paths(dsn: str, schema: str, paths: list[str]) -> float:
    """Migrate, then queue every path (batches of 10,000); returns seconds."""
    with enqueuer(dsn, schema, paths, 10_000) as enqueue:
        return enqueue()


def migrate(dsn: str, schema: str) -> None:
    """mediad's schema, made as the daemon would make it."""
    store = Database(Target(dsn, schema))
    store.open()
    try:
        migrations.migrate(store)
    finally:
        store.close()


def fill_noop_rows(dsn: str, sql: Sql, schema: str, count: int) -> None:
    migrate(dsn, schema)
    sql.rows(
        f'INSERT INTO "{schema}".files (path) '
        "SELECT '/noop/' || lpad(g::text, 9, '0') FROM generate_series(1, %s) AS g",
        (count,),
    )


def table_stats(sql: Sql, schema: str) -> TableStats:
    """Updates that stayed HOT (no new index entries) and dead rows left for autovacuum."""
    row = sql.one(
        "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, pg_total_relation_size(relid) "
        "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'files'",
        (schema,),
    )
    return TableStats(
        updates=row[0],
        hot_updates=row[1],
        dead_rows=row[2],
        table_total_mib=round(row[3] / 2**20, 1),
    )


def drop_schema(sql: Sql, schema: str) -> None:
    sql.rows(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
