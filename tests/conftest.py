"""Shared fixtures: a real PostgreSQL (MEDIAD_TEST_DSN or a throwaway server), one database
per run (dropped at the end), one schema per test, and helpers to run `mediad` for real."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from mediad.db import migrations
from mediad.db.connection import Database, Target
from mediad.db.queue import Queue
from tests import fusefs


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the tests may use; `owned` when the tests started it."""

    admin_dsn: str
    pgdata: Path | None = None
    owned: bool = False

    def restart(self) -> None:
        """Restart the server the tests own (fast mode: connections are cut)."""
        self._pg_ctl("-l", str(self._owned_pgdata() / "log"), "restart")

    def stop(self) -> None:
        """Stop the server the tests own, whichever postmaster runs it now. pgserver's
        own cleanup only stops the postmaster it started: after a restart it would
        delete the data directory under a server still running."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._pg_ctl("stop")

    def _owned_pgdata(self) -> Path:
        assert self.owned and self.pgdata is not None
        return self.pgdata

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "-m", "fast", *args], pgdata=self._owned_pgdata(), user=user, timeout=60)


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


# --- running mediad as a user would -----------------------------------------------------

REPOSITORY = Path(__file__).resolve().parent.parent
TEST_ENGINE = "tests.support.engine:ENGINE"


def engine_env() -> dict[str, str]:
    """The test engine (tests/support/README.md), active only where a test adds
    MEDIAD_TEST_HOOKS=1; PYTHONPATH lets mediad and its workers import it."""
    path = os.pathsep.join(p for p in (str(REPOSITORY), os.environ.get("PYTHONPATH")) if p)
    return {"MEDIAD_TEST_ENGINE": TEST_ENGINE, "PYTHONPATH": path}


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


def mediad(
    *args: str, env: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediad", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def mediad_bytes_in(
    *args: str, env: dict[str, str], stdin: bytes, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`mediad` fed raw bytes, e.g. names that are not UTF-8; its output must be UTF-8."""
    done = subprocess.run(
        [sys.executable, "-m", "mediad", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        input=stdin,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


class Daemon:
    """A `mediad run` subprocess with its log in a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *args: str, command: list[str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "mediad"]), "run", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_started(self, timeout: float = 60) -> None:
        wait_until(
            lambda: '"started"' in self.log() or self.process.poll() is not None,
            timeout,
            "the daemon to start",
        )
        assert self.process.poll() is None, f"mediad run exited early:\n{self.log()}"

    def ready_worker_pids(self, timeout: float = 60) -> list[int]:
        """The workers, once the daemon logged that every one reported ready."""
        wait_until(lambda: '"ready"' in self.log(), timeout, "the workers to be ready")
        return self.worker_pids()

    def worker_pids(self) -> list[int]:
        return children_of(self.pid, "spawn_main")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._log.close()
        return code


def children_of(pid: int, marker: str = "") -> list[int]:
    """Child pids of `pid` whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and marker in cmdline:
            found.append(int(entry.name))
    return found


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


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll a condition a user would check, up to a bound; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def fuse_mount() -> Iterator[Callable[[Path], fusefs.FuseMount]]:
    """Mount a directory through a FUSE filesystem that stalls or lags on command
    (tests/fusefs.py): `fs = fuse_mount(source)`, then `fs.block(...)`, `fs.lag(ms)`,
    `fs.release()`. Every mount is released, unmounted and its server stopped afterwards.
    Skips where FUSE cannot be used."""
    reason = fusefs.unavailable()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as mounts:
        yield lambda source: mounts.enter_context(fusefs.mounted(source))


def counts(sql: Callable[..., list[tuple[Any, ...]]], schema: str) -> dict[str, int]:
    rows = sql(f'SELECT state, count(*) FROM "{schema}".files GROUP BY state')
    result = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    result.update({state: n for state, n in rows})
    return result


# --- media made by the tests -----------------------------------------------------------


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Real files in real formats (tests/media.py), made once per run."""
    from tests.media import make_corpus

    directory = tmp_path_factory.mktemp("corpus")
    return directory, make_corpus(directory)


@pytest.fixture(scope="session")
def small_mp4(corpus: tuple[Path, dict[str, Any]]) -> Path:
    directory, expected = corpus
    return directory / next(name for name in expected if name.endswith(".mp4"))


def link_files(source: Path, directory: Path, count: int, marker: str = "") -> list[Path]:
    """`count` hard links of one file: thousands of files for no disk. A marker in the name
    triggers a fault of the test engine (MEDIAD_TEST_HOOKS=1, tests/support/engine.py), e.g.
    __mediad_sleep_20ms__."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{marker}f{i:05d}.mp4" for i in range(count)]
    for path in paths:
        os.link(source, path)
    return paths


def free_port() -> int:
    """A loopback port nobody listens on now (for metrics endpoints and servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
