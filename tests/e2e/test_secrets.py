"""The database password never shows: not in logs, not in command output, not in errors,
and worker processes never receive it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from mediad import runtime, startup
from mediad.commands.daemon import scrub_secret_environment
from mediad.config import load
from tests.support.processes import Daemon, counts, mediad, wait_until

pytestmark = pytest.mark.slow

PASSWORD = "Corr3ct-Horse-Battery"
SQL = Callable[..., list[tuple[Any, ...]]]


def environ_of(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode()


def test_password_in_the_dsn_never_shows(
    tmp_path: Path,
    test_dsn: str,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    # The test server trusts local connections: the password is carried, never checked.
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": make_conninfo(test_dsn, password=PASSWORD),
        "MEDIAD_METRICS_LISTEN": "",
    }
    outputs = []
    for args in (
        ["check-config"],
        ["check-config", "--json"],
        ["migrate"],
        ["enqueue", str(tmp_path / "missing.mp4")],
        ["status"],
        ["status", "--json"],
        ["extract"],
        ["show", str(tmp_path / "missing.mp4")],
    ):
        result = mediad(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    daemon = daemons(env={**env, "MEDIAD_LOG_LEVEL": "debug"})
    daemon.wait_started()
    workers = wait_until(
        lambda: len(daemon.worker_pids()) == 2 and daemon.worker_pids(), 30, "two workers"
    )
    for pid in workers:
        assert PASSWORD not in environ_of(pid)
    assert PASSWORD in environ_of(daemon.pid)  # the control: it was there to leak
    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(tmp_path / "gone.mp4")])
    wait_until(lambda: counts(sql, schema)["failed"] == 2, 30, "the failure to be logged")
    assert daemon.stop() == 0
    outputs.append(daemon.log())
    for text in outputs:
        assert PASSWORD not in text
    assert "***" in outputs[0]


def test_password_file_and_connection_errors(tmp_path: Path, mediad_env: dict[str, str]) -> None:
    secret = tmp_path / "db-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": f"postgresql://mediad:{PASSWORD}@127.0.0.1:1/none",
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    }
    result = mediad("status", env=env)
    assert result.returncode == 1
    assert "database unavailable" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": "postgresql://mediad@127.0.0.1:1/none",
        "MEDIAD_DATABASE_PASSWORD_FILE": str(secret),
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    }
    result = mediad("status", env=env)
    assert result.returncode == 1 and PASSWORD not in result.stdout + result.stderr
    unreadable = mediad("status", env={**env, "MEDIAD_DATABASE_PASSWORD_FILE": "/nonexistent"})
    assert unreadable.returncode == 2
    assert "database.password_file" in unreadable.stderr


def test_pgpassword_still_reaches_the_database_once_run_has_hidden_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run` takes PGPASSWORD out of the environment its workers inherit; the database,
    reached afterwards, must still be given it."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("MEDIAD_DATABASE_DSN", "postgresql://mediad@db.invalid/media")
    monkeypatch.setattr(startup, "_kept", None)
    environ = scrub_secret_environment()
    assert "PGPASSWORD" not in os.environ and "MEDIAD_DATABASE_DSN" not in os.environ
    config = load(None, environ=environ)
    assert runtime.read_password(config) == PASSWORD
