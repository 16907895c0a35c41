"""The database handle: a small connection pool, named queries composed for one schema,
and driver errors turned into mediad's own (DatabaseUnavailable, DatabaseRejected).

Every other module of this package runs its statements through a `Database`; a
`Database` is built from a `Target` alone, so there is one way to make one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from mediad import connfail, logs
from mediad.config import Config, database_label, mask_dsn
from mediad.db.listener import Listener
from mediad.errors import DatabaseRejected, DatabaseUnavailable
from mediad.queries import named_queries
from mediad.retry import Backoff

# A server that is down or restarting is asked again after 0.1 s, 0.2 s ... then every second.
CONNECT_BACKOFF = Backoff(0.1, 1.0)


def compose(text: str, schema: str) -> sql.Composed:
    return sql.SQL(cast(LiteralString, text)).format(  # type: ignore[redundant-cast]
        schema=sql.Identifier(schema), channel=sql.Identifier(notify_channel(schema))
    )


def notify_channel(schema: str) -> str:
    return f"{schema}.work"


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass(frozen=True)
class Target:
    """Which database, which schema, and how to connect: all a `Database` is built from."""

    dsn: str
    schema: str
    password: str | None = None
    owner: str = ""  # the lease owner this handle claims as
    timeout: float = 5.0
    prepared_statements: bool = True
    label: str = ""  # what errors call the database; default: the DSN masked
    max_connections: int = 2  # one daemon needs at most two

    @classmethod
    def of(cls, config: Config, dsn: str, password: str | None, owner: str = "") -> Target:
        """The target a configuration names (`dsn`: configured, or the embedded one's)."""
        return cls(
            dsn,
            config.database.schema,
            password=password,
            owner=owner,
            timeout=config.database.connect_timeout_seconds,
            prepared_statements=config.database.prepared_statements,
            label=database_label(config),
        )


class Database:
    """Named queries over a small connection pool, for one schema."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.schema = target.schema
        self.owner = target.owner
        # Which database, in every error: the DSN masked, or what the caller calls it.
        self.label = target.label or mask_dsn(target.dsn)
        self.timeout = target.timeout
        self._queries = {name: compose(text, self.schema) for name, text in named_queries().items()}
        self._pool = ConnectionPool(
            target.dsn,
            kwargs=self.connect_kwargs(),
            min_size=1,
            max_size=target.max_connections,
            open=False,
            timeout=target.timeout,
            # Keep trying for a day: the daemon outlives database restarts and failovers.
            # A connection a restart broke fails its next statement and is replaced; the
            # supervisor retries. (No check before every use: that is one more round trip
            # per statement on the hot path.)
            reconnect_timeout=86400,
            name="mediad",
        )

    def clone(self) -> Database:
        """A handle of its own (own pool) on the same database and schema, not yet open."""
        return Database(self.target)

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout))}
        if not self.target.prepared_statements:
            # PgBouncer in transaction mode (before 1.21) shares server connections
            # between clients: a statement prepared on one is unknown, or a duplicate, on
            # the next.
            kwargs["prepare_threshold"] = None
        if self.target.password is not None:
            kwargs["password"] = self.target.password
        return kwargs

    def open(self, wait: bool = True) -> None:
        if self._pool.closed:
            self._check_reachable()
        try:
            self._pool.open(wait=wait, timeout=self.timeout)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self.unavailable(exc) from None

    def _check_reachable(self) -> None:
        """One direct connection before the pool opens. The pool logs why it cannot
        connect and retries whatever the reason until its timeout; this fails at once,
        with the server's reason, when waiting cannot help (DatabaseRejected), and waits
        up to `timeout` only for a server that is down, restarting or out of reach."""
        deadline = time.monotonic() + self.timeout
        tries = 0
        while True:
            try:
                psycopg.connect(self.target.dsn, **self.connect_kwargs()).close()
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
            tries += 1
            time.sleep(min(CONNECT_BACKOFF.delay(tries), remaining))  # the last at the deadline

    def _masked(self, text: str) -> str:
        """libpq quotes pieces of a DSN it cannot parse: never the password."""
        text = logs.mask_text(text)
        password = self.target.password
        return text.replace(password, logs.MASK) if password else text

    def unavailable(self, exc: Exception) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"database unavailable: {self.label}: {self._masked(first_line(exc))}"
        )

    def close(self) -> None:
        self._pool.close(timeout=2.0)

    def __enter__(self) -> Database:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, name: str) -> sql.Composed:
        """The named statement of `sql/queries.sql`, composed for this schema."""
        return self._queries[name]

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection(timeout=self.timeout) as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unavailable(exc) from None

    def run(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a named statement on its own (autocommitted); its rows as dicts."""
        with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._queries[name], params)
            return cur.fetchall() if cur.description else []

    def listener(
        self, on_notify: Callable[[], None], on_pause: Callable[[], None] | None = None
    ) -> Listener:
        return Listener(
            self.target.dsn, self.connect_kwargs(), self.query("listen"), on_notify, on_pause
        )

    def connections_opened(self) -> int:
        """Connections this handle's pool has opened so far: beyond the first, reconnects."""
        return int(self._pool.get_stats().get("connections_num", 0))
