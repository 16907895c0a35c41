"""The benchmark's PostgreSQL: a given server, or a throwaway pgserver; always its own
database, dropped at the end."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo


@contextlib.contextmanager
def server(admin_dsn: str | None) -> Iterator[tuple[str, str]]:
    """(admin DSN, description). Without a DSN, a throwaway pgserver deleted afterwards."""
    if admin_dsn:
        yield admin_dsn, "given server"
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Not under a 0700 directory: as root, pgserver runs postgres as its own user.
        pgdata = Path(tempfile.mkdtemp(prefix="mediad-bench-pg-"))
        handle = pgserver.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield handle.get_uri("postgres"), "throwaway pgserver"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@contextlib.contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    """A database of this run's own; dropped (with any connection left) at the end."""
    name = f"mediad_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Sql:
    """One autocommit connection for the benchmark's own statements."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.backend_pid = self.conn.info.backend_pid
        row = self.one("SELECT current_database()")
        self.database = str(row[0])

    def rows(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def one(self, query: Any, params: Any = None) -> tuple[Any, ...]:
        found = self.rows(query, params)
        return found[0]

    def close(self) -> None:
        self.conn.close()

    def daemon_backends(self, exclude: set[int]) -> dict[int, str]:
        """Client backends on this database that are not the benchmark's own: pid -> state."""
        found = self.rows(
            "SELECT pid, coalesce(state, '') FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend' AND pid <> ALL(%s)",
            (self.database, list(exclude | {self.backend_pid})),
        )
        return {int(pid): str(state) for pid, state in found}

    def listening(self, exclude: set[int]) -> bool:
        """Has a client that is not excluded (the daemon's listener) run LISTEN here?"""
        row = self.one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' AND query ILIKE 'LISTEN %%' "
            "AND pid <> ALL(%s)",
            (self.database, list(exclude | {self.backend_pid})),
        )
        return bool(row[0])

    def server_version(self) -> str:
        return str(self.one("SHOW server_version")[0])
