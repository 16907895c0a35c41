"""Shared fixtures: a real PostgreSQL (MEDIAD_TEST_DSN or a throwaway server), one database
per run (dropped at the end), one schema per test, daemons, FUSE mounts and media made by
the tests. The helpers they use live in tests/support/."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from mediad.db import migrations
from mediad.db.connection import Database, Target
from mediad.db.queue import Queue
from tests.support import fusefs
from tests.support.postgres import Server
from tests.support.processes import Daemon, engine_env


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    external = os.environ.get("MEDIAD_TEST_DSN")
    if external:
        yield Server(admin_dsn=external)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Not under pytest's 0700 tmp: when run as root, pgserver runs postgres as its
        # own unprivileged user, who must reach the data directory.
        pgdata = Path(tempfile.mkdtemp(prefix="mediad-test-pg-"))
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    owned = Server(admin_dsn=server.get_uri("postgres"), pgdata=pgdata, owned=True)
    try:
        yield owned
    finally:
        owned.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def test_dsn(pg_server: Server) -> Iterator[str]:
    """A database of this run's own, dropped at the end."""
    name = f"mediad_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(pg_server.admin_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def schema(request: pytest.FixtureRequest, test_dsn: str) -> Iterator[str]:
    """A schema name unique to this test; dropped afterwards."""
    base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    name = f"t_{base}_{uuid.uuid4().hex[:6]}"
    yield name
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def db(test_dsn: str, schema: str) -> Iterator[Database]:
    """An open handle on this test's schema, migrated."""
    handle = Database(Target(test_dsn, schema, owner="test-host:1"))
    handle.open()
    migrations.migrate(handle)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def queue(db: Database) -> Queue:
    """The daemon's statements on `db`."""
    return Queue(db)


@pytest.fixture
def sql(test_dsn: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run plain SQL as an application would; returns the rows."""
    holder = [psycopg.connect(test_dsn, autocommit=True)]

    def run(query: str, params: Any = None) -> list[tuple[Any, ...]]:
        for attempt in range(30):
            try:
                with holder[0].cursor() as cur:
                    cur.execute(query, params)
                    return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                # The fault tests restart the server: reconnect, as an application would.
                if attempt == 29:
                    raise
                time.sleep(0.5)
                with contextlib.suppress(psycopg.OperationalError):
                    holder[0].close()
                    holder[0] = psycopg.connect(test_dsn, autocommit=True)
        raise AssertionError("unreachable")

    try:
        yield run
    finally:
        holder[0].close()


@pytest.fixture
def app_schema(schema: str, test_dsn: str) -> Iterator[str]:
    """A schema for an application's own tables (attach), dropped afterwards."""
    name = f"{schema}_app"
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def mediad_env(test_dsn: str, schema: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    env.update(engine_env())
    env.update(
        MEDIAD_DATABASE_DSN=test_dsn,
        MEDIAD_DATABASE_SCHEMA=schema,
        MEDIAD_DATABASE_AUTO_MIGRATE="true",
        MEDIAD_LOG_FORMAT="json",
        MEDIAD_METRICS_LISTEN="",
        MEDIAD_DAEMON_STATE_DIR=str(tmp_path / "state"),
        MEDIAD_DAEMON_WORKERS="2",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def daemons(mediad_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(
        *args: str, env: dict[str, str] | None = None, command: list[str] | None = None
    ) -> Daemon:
        daemon = Daemon(
            env or mediad_env, tmp_path / f"daemon-{len(started)}.log", *args, command=command
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(timeout=30)


@pytest.fixture
def fuse_mount() -> Iterator[Callable[[Path], fusefs.FuseMount]]:
    """Mount a directory through a FUSE filesystem that stalls or lags on command
    (tests/support/fusefs.py): `fs = fuse_mount(source)`, then `fs.block(...)`, `fs.lag(ms)`,
    `fs.release()`. Every mount is released, unmounted and its server stopped afterwards.
    Skips where FUSE cannot be used."""
    reason = fusefs.unavailable()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as mounts:
        yield lambda source: mounts.enter_context(fusefs.mounted(source))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Real files in real formats (tests/support/media.py), made once per run."""
    from tests.support.media import make_corpus

    directory = tmp_path_factory.mktemp("corpus")
    return directory, make_corpus(directory)


@pytest.fixture(scope="session")
def small_mp4(corpus: tuple[Path, dict[str, Any]]) -> Path:
    directory, expected = corpus
    return directory / next(name for name in expected if name.endswith(".mp4"))


# --- the three kinds of test -------------------------------------------------------------

# What a kind of test may not ask for: unit tests run without PostgreSQL or a daemon, and
# integration tests reach PostgreSQL without starting mediad's processes (tests/README.md).
DATABASE_FIXTURES = {"pg_server", "test_dsn", "schema", "db", "queue", "sql", "app_schema"}
PROCESS_FIXTURES = {"mediad_env", "daemons", "fuse_mount"}
NOT_ALLOWED = {
    "unit": DATABASE_FIXTURES | PROCESS_FIXTURES,
    "integration": PROCESS_FIXTURES,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        kind = Path(str(item.path)).parent.name
        wrong = NOT_ALLOWED.get(kind, set()) & set(getattr(item, "fixturenames", ()))
        if wrong:
            misplaced.append(f"{item.nodeid} uses {', '.join(sorted(wrong))}")
    if misplaced:
        raise pytest.UsageError("tests in the wrong folder:\n" + "\n".join(misplaced))
