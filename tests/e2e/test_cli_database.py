"""Which database a command uses, and what it says when it cannot use it: a database that
refuses (no such database or role, a wrong password) fails at once with the server's own
reason in one line; only a server that does not answer is waited for."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from mediad import connfail, logs
from mediad.config import database_label, load, mask_dsn
from tests.support.processes import free_port, mediad

PATIENT = "20"  # database.connect_timeout_seconds for the refusals: never reached
BOUND = 10.0  # a command that refuses at once returns well within this (a hang bound)


def run_timed(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = mediad(*args, env=env, timeout=60)
    return result, time.monotonic() - started


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 1, nothing on stdout, and on stderr one line (no library log lines, no JSON,
    no traceback) holding every fragment."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not any(line.lstrip().startswith("{") for line in lines), result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- refusals: at once, in the server's words -------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["extract"], ["scan", "/"]])
def test_a_database_that_does_not_exist_fails_at_once(
    command: list[str], test_dsn: str, mediad_env: dict[str, str]
) -> None:
    missing = f"mediad_missing_{uuid.uuid4().hex[:8]}"
    dsn = make_conninfo(test_dsn, dbname=missing)
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": dsn,
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": PATIENT,
    }
    result, seconds = run_timed(*command, env=env)
    line = assert_one_line_error(result, f'database "{missing}" does not exist', mask_dsn(dsn))
    assert seconds < BOUND, (seconds, line)


def test_an_unknown_role_fails_at_once(test_dsn: str, mediad_env: dict[str, str]) -> None:
    role = f"mediad_nobody_{uuid.uuid4().hex[:8]}"
    dsn = make_conninfo(test_dsn, user=role, password="Not-Used-1234")
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": dsn,
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": PATIENT,
    }
    result, seconds = run_timed("status", env=env)
    line = assert_one_line_error(result, f'role "{role}" does not exist')
    assert "Not-Used-1234" not in result.stdout + result.stderr
    assert "***" in line  # the DSN is named, its password masked
    assert seconds < BOUND, (seconds, line)


def test_the_daemon_does_not_start_on_a_database_that_refuses(
    test_dsn: str, mediad_env: dict[str, str]
) -> None:
    """`run` fails at once with exit 1 too: the service manager's restart policy, not a
    silent retry loop, handles a configuration that cannot work."""
    missing = f"mediad_missing_{uuid.uuid4().hex[:8]}"
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": make_conninfo(test_dsn, dbname=missing),
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": PATIENT,
    }
    result, seconds = run_timed("run", env=env)
    assert result.returncode == 1, result.stderr
    assert f'database "{missing}" does not exist' in result.stderr
    assert seconds < BOUND, (seconds, result.stderr)


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[str]:
    """A private server of this test's own that checks passwords (the shared test server
    trusts every local connection): the DSN of a role whose password is Right-Pass-1234."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pgserver = pytest.importorskip("pgserver")
        pgdata = tmp_path / "pgdata"
        pgdata.mkdir()
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        admin = server.get_uri("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute("CREATE ROLE mediad_pw LOGIN PASSWORD 'Right-Pass-1234'")
            conn.execute("GRANT CREATE ON DATABASE postgres TO mediad_pw")
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
            hba.write_text("local all mediad_pw scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        yield make_conninfo(admin, user="mediad_pw", dbname="postgres")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


@pytest.mark.slow
def test_a_wrong_password_fails_at_once_and_is_never_shown(
    password_server: str, mediad_env: dict[str, str], tmp_path: Path
) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("Wrong-Pass-5678\n")
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_DSN": password_server,
        "MEDIAD_DATABASE_PASSWORD_FILE": str(secret),
        "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": PATIENT,
    }
    result, seconds = run_timed("status", env=env)
    assert_one_line_error(result, 'password authentication failed for user "mediad_pw"')
    assert "Wrong-Pass-5678" not in result.stdout + result.stderr
    assert seconds < BOUND, (seconds, result.stderr)
    # The control: the right password gets in, so the refusal was about the password.
    secret.write_text("Right-Pass-1234\n")
    right = mediad("status", env=env, timeout=60)
    assert right.returncode == 0, right.stderr


# --- a server that does not answer is waited for --------------------------------------


def test_a_closed_port_is_waited_for_then_named(mediad_env: dict[str, str]) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    env = {**mediad_env, "MEDIAD_DATABASE_DSN": dsn, "MEDIAD_DATABASE_CONNECT_TIMEOUT_SECONDS": "2"}
    result, seconds = run_timed("status", env=env)
    assert_one_line_error(
        result, "database unavailable", dsn, "Connection refused", "tried for 2 s"
    )
    assert seconds >= 2.0, seconds  # it waited for the server to come
    assert seconds < 2.0 + BOUND, seconds


# --- reading libpq's message ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason", "transient"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  database "x" does not exist',
            'database "x" does not exist',
            False,
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: '
            'FATAL:  password authentication failed for user "m"',
            'password authentication failed for user "m"',
            False,
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: '
            'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "m", database "d", '
            "no encryption",
            'no pg_hba.conf entry for host "10.0.0.1", user "m", database "d", no encryption',
            False,
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: '
            "FATAL:  the database system is starting up",
            "the database system is starting up",
            True,
        ),
        (
            'connection failed: connection to server at "db", port 5432 failed: '
            "FATAL:  sorry, too many clients already",
            "sorry, too many clients already",
            True,
        ),
        ("connection timeout expired", "connection timeout expired", True),
        (
            'connection is bad: connection to server on socket "/run/pg/.s.PGSQL.5432" '
            "failed: No such file or directory\n\tIs the server running locally and "
            "accepting connections on that socket?",
            "No such file or directory. Is the server running locally and accepting "
            "connections on that socket?",
            True,
        ),
        (
            "failed to resolve host 'db.example': [Errno -2] Name or service not known",
            "failed to resolve host 'db.example': [Errno -2] Name or service not known",
            False,
        ),
        (  # the resolver not up yet at boot, or away for a moment: worth waiting for
            "failed to resolve host 'db': [Errno -3] Temporary failure in name resolution",
            "failed to resolve host 'db': [Errno -3] Temporary failure in name resolution",
            True,
        ),
    ],
)
def test_a_connection_failure_is_read_from_libpq_message(
    message: str, reason: str, transient: bool
) -> None:
    assert connfail.classify(message) == connfail.ConnectFailure(reason, transient)


def test_one_attempt_the_server_refused_makes_the_failure_final() -> None:
    """localhost: ::1 refused, 127.0.0.1 answered that the database is missing."""
    message = "\n".join(
        [
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  database "x" does not exist',
            "Multiple connection attempts failed. All failures were:",
            "- host: 'localhost', port: '5432', hostaddr: '::1': connection failed: "
            'connection to server at "::1", port 5432 failed: Connection refused',
            "\tIs the server running on that host and accepting TCP/IP connections?",
            "- host: 'localhost', port: '5432', hostaddr: '127.0.0.1': connection failed: "
            'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "x" '
            "does not exist",
        ]
    )
    assert connfail.classify(message) == connfail.ConnectFailure(
        'database "x" does not exist', transient=False
    )


def test_library_log_lines_are_only_for_the_daemon_or_debugging() -> None:
    import logging

    assert logs.library_level("info", libraries=True) == logging.WARNING
    assert logs.library_level("info", libraries=False) > logging.CRITICAL
    assert logs.library_level("debug", libraries=False) == logging.DEBUG


# --- naming the database ----------------------------------------------------------------


def test_the_embedded_database_is_named_with_its_home_relative_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_STATE_HOME", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    config = load(None, environ={})
    assert database_label(config) == "embedded (~/.local/state/mediad)"
    dsn = "postgresql://app:Secret-1234@db:5432/media"
    assert database_label(load(None, environ={"MEDIAD_DATABASE_DSN": dsn})) == (
        "postgresql://app:***@db:5432/media"
    )


@pytest.mark.slow
def test_every_command_names_the_database_it_used(
    tmp_path: Path,
    test_dsn: str,
    mediad_env: dict[str, str],
    small_mp4: Path,
    sql: Callable[..., list[tuple[Any, ...]]],
) -> None:
    env = mediad_env
    label = mask_dsn(test_dsn)
    library = tmp_path / "lib"
    library.mkdir()
    os.link(small_mp4, library / "a.mp4")
    table = f"public.media_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE TABLE {table} (id int PRIMARY KEY, path text, meta jsonb)")
    try:
        # Each command's summary line (the first of extract's and status's, the last of
        # the others') names the database.
        commands: dict[str, tuple[list[str], int]] = {
            "migrate": (["migrate"], -1),
            "scan": (["scan", str(library)], -1),
            "enqueue": (["enqueue", str(library / "a.mp4")], -1),
            "extract": (["extract"], 0),
            "status": (["status"], 0),
            "show": (["show", str(library / "a.mp4")], -1),
            "retry": (["retry"], -1),
            "reextract": (["reextract", "--all", "--dry-run"], -1),
            "check-config": (["check-config"], 1),
            "attach": (["attach", table, "--id", "id", "--path", "path", "--metadata", "meta"], -1),
            "detach": (["detach", table], -1),
        }
        for name, (args, line) in commands.items():
            result = mediad(*args, env=env)
            assert result.returncode == 0, (name, result.stderr)
            assert label in result.stdout.strip().splitlines()[line], (name, result.stdout)
        # `show --json` stays one object per path, with the keys docs/schema.md lists.
        for args in (["status", "--json"], ["extract", "--json"]):
            shown = json.loads(mediad(*args, env=env).stdout.strip().splitlines()[-1])
            assert shown["database"] == label, (args, shown)  # as `status --json` always had it
            assert shown["database_label"] == label, (args, shown)
        missing = mediad("attach", "public.no_such_table", "--id", "i", "--path", "p", env=env)
        assert missing.returncode == 2
        assert f"does not exist in {label}" in missing.stderr
    finally:
        sql(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.slow
def test_commands_on_the_embedded_database_say_so(
    tmp_path: Path, mediad_env: dict[str, str]
) -> None:
    """No config, no DSN: an empty result must not look like the configured database's."""
    pytest.importorskip("pgserver")
    env = {k: v for k, v in mediad_env.items() if k not in ("MEDIAD_DATABASE_DSN",)}
    env.pop("MEDIAD_DAEMON_STATE_DIR")
    env.pop("XDG_STATE_HOME", None)
    env["HOME"] = str(tmp_path)
    named = "embedded (~/.local/state/mediad)"
    extract = mediad("extract", env=env)
    assert extract.returncode == 0, extract.stderr
    assert extract.stdout.startswith("processed 0 files") and named in extract.stdout
    attach = mediad("attach", "public.media", "--id", "id", "--path", "path", env=env)
    assert attach.returncode == 2
    assert f"table public.media does not exist in {named}" in attach.stderr
    status = json.loads(mediad("status", "--json", env=env).stdout)
    assert status["database"] == "embedded"  # unchanged, a stable interface
    assert status["database_label"] == named
