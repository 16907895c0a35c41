"""The command line at its edges: options before the command, unknown retry classes,
unexpected errors, a reader that leaves early, a metrics port already taken, and what
`show --json` gives for an unknown path. Every test runs the real `mediad`."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from mediad.errors import FailureClass
from tests.support.processes import free_port, mediad

ROOT = Path(__file__).resolve().parents[2]
GLOBAL_OPTIONS = ("--config", "--dsn", "--schema", "--state-dir", "--log-level", "--log-format")


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def mediad_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines mediad says to the user itself (log lines are JSON objects)."""
    return [line for line in stderr_lines(result) if line.startswith("mediad:")]


# --- 3: global options before the command ----------------------------------------------


def test_global_options_are_accepted_before_the_command(
    mediad_env: dict[str, str], schema: str, test_dsn: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in mediad_env.items() if k != "MEDIAD_DATABASE_SCHEMA"}
    config = tmp_path / "mediad.toml"
    config.write_text(f'[database]\nschema = "{schema}"\n')

    status = mediad("--config", str(config), "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["schema"] == schema

    state = tmp_path / "elsewhere"
    before = mediad(
        "--config",
        str(config),
        "--dsn",
        test_dsn,
        "--schema",
        "before_schema",
        "--state-dir",
        str(state),
        "--log-level",
        "warning",
        "--log-format",
        "console",
        "check-config",
        "--json",
        env=env,
    )
    assert before.returncode == 0, before.stderr
    shown = json.loads(before.stdout)
    assert shown["database"]["schema"] == "before_schema"
    assert shown["database"]["dsn"] == test_dsn  # no password in it: nothing masked
    assert shown["daemon"]["state_dir"] == str(state)
    assert shown["log"] == {"level": "warning", "format": "console"}


def test_an_option_given_before_and_after_the_command_takes_the_one_after(
    mediad_env: dict[str, str], schema: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in mediad_env.items() if k != "MEDIAD_DATABASE_SCHEMA"}
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[database]\nschema = "not_this_one"\n')
    right = tmp_path / "right.toml"
    right.write_text(f'[database]\nschema = "{schema}"\n')

    both = mediad(
        "--schema", "not_this_one", "--log-level", "error",
        "check-config", "--json", "--schema", schema, "--log-level", "debug",
        env=env,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    shown = json.loads(both.stdout)
    assert shown["database"]["schema"] == schema
    assert shown["log"]["level"] == "debug"

    # A command's own default never hides what was given before it.
    status = mediad("--config", str(wrong), "status", "--json", "--config", str(right), env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["schema"] == schema
    only_before = mediad("--schema", schema, "status", "--json", env=env)
    assert json.loads(only_before.stdout)["schema"] == schema


def test_top_level_help_lists_each_global_option_once(mediad_env: dict[str, str]) -> None:
    result = mediad("--help", env=mediad_env)
    assert result.returncode == 0
    for option in GLOBAL_OPTIONS:
        described = re.findall(rf"^\s+{re.escape(option)}\b", result.stdout, re.MULTILINE)
        assert len(described) == 1, (option, result.stdout)


# --- 4: retry --class ------------------------------------------------------------------


def test_retry_refuses_an_unknown_class_and_names_the_valid_ones(
    mediad_env: dict[str, str], schema: str, sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    assert mediad("migrate", env=mediad_env).returncode == 0
    sql(
        f'INSERT INTO "{schema}".files (path, state, error_class, error, finished_at) VALUES '
        "('/m/a.mkv', 'failed', 'timeout', 'slow', now()), "
        "('/m/b.mkv', 'failed', 'not_found', 'gone', now())"
    )

    bogus = mediad("retry", "--class", "bogus", env=mediad_env)
    assert bogus.returncode == 2
    assert bogus.stdout == ""
    assert "bogus" in bogus.stderr and "Traceback" not in bogus.stderr
    for cls in FailureClass:
        assert str(cls) in bogus.stderr, cls
    assert sql(f"SELECT count(*) FROM \"{schema}\".files WHERE state = 'failed'") == [(2,)]

    helped = mediad("retry", "--help", env=mediad_env)
    assert helped.returncode == 0
    flat = " ".join(helped.stdout.split())
    for cls in FailureClass:
        assert str(cls) in flat, cls

    known = mediad("retry", "--class", "timeout", env=mediad_env)
    assert known.returncode == 0, known.stderr
    assert known.stdout.startswith("1 failed rows queued again on ")
    states = dict(sql(f'SELECT path, state FROM "{schema}".files'))
    assert states == {"/m/a.mkv": "pending", "/m/b.mkv": "failed"}


# --- 7: no traceback reaches the user --------------------------------------------------


@pytest.fixture
def login_role(test_dsn: str) -> Iterator[str]:
    """A login role of this test's own (roles belong to the whole server)."""
    role = f"mediad_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        with psycopg.connect(test_dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_an_unexpected_error_is_one_line_and_the_traceback_only_at_debug(
    mediad_env: dict[str, str],
    schema: str,
    test_dsn: str,
    login_role: str,
    sql: Callable[..., list[tuple[Any, ...]]],
) -> None:
    assert mediad("migrate", env=mediad_env).returncode == 0
    sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{login_role}"')
    sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{login_role}"')
    env = mediad_env | {
        "MEDIAD_DATABASE_DSN": make_conninfo(test_dsn, user=login_role),
        "MEDIAD_DATABASE_AUTO_MIGRATE": "false",
    }
    allowed = mediad("status", env=env)
    assert allowed.returncode == 0, allowed.stderr

    sql(f'REVOKE USAGE ON SCHEMA "{schema}" FROM "{login_role}"')
    for command in (["status"], ["show", "/m/a.mkv"], ["retry"]):
        refused = mediad(*command, env=env)
        assert refused.returncode == 1, (command, refused.stderr)
        assert "Traceback" not in refused.stderr, refused.stderr
        assert len(stderr_lines(refused)) == 1, refused.stderr
        line = stderr_lines(refused)[0]
        assert line.startswith("mediad: ") and "permission denied" in line, line

    plain = stderr_lines(mediad("status", env=env))[0]
    debug = mediad("--log-level", "debug", "status", env=env)
    assert debug.returncode == 1
    assert stderr_lines(debug)[-1] == plain
    # An expected error (a MediadError) keeps its wording and has no traceback to show.
    assert ("Traceback" in debug.stderr) == plain.startswith("mediad: error: "), debug.stderr


def test_the_daemon_logs_the_traceback_of_an_unexpected_error(
    mediad_env: dict[str, str],
    schema: str,
    test_dsn: str,
    login_role: str,
    sql: Callable[..., list[tuple[Any, ...]]],
) -> None:
    """The journal keeps a daemon's crash: `run` logs it at error level, traceback
    included, and still ends with the one line a user reads."""
    assert mediad("migrate", env=mediad_env).returncode == 0
    env = mediad_env | {
        "MEDIAD_DATABASE_DSN": make_conninfo(test_dsn, user=login_role),
        "MEDIAD_DATABASE_AUTO_MIGRATE": "false",
        "MEDIAD_DAEMON_WORKERS": "1",
    }
    result = mediad("run", env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in stderr_lines(result) if line.startswith("{")]
    errors = [r for r in records if r["level"] == "error"]
    assert errors, result.stderr
    assert "Traceback" in errors[-1]["exception"]
    assert "permission denied" in errors[-1]["exception"]
    said = mediad_lines(result)
    assert len(said) == 1 and "permission denied" in said[0], result.stderr
    assert stderr_lines(result)[-1] == said[0]


def test_a_reader_that_closes_the_pipe_first_gets_no_traceback(
    mediad_env: dict[str, str],
) -> None:
    assert mediad("migrate", env=mediad_env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "mediad", "status"],
        env=mediad_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        process.stdout.close()  # the only reader leaves before mediad writes a byte
        with process.stderr:
            stderr = process.stderr.read()
        assert process.wait(timeout=120) == 141
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stderr == ""


def test_show_into_head_exits_quietly(mediad_env: dict[str, str]) -> None:
    """More output than a pipe holds, so that mediad writes after `head` has gone."""
    assert mediad("migrate", env=mediad_env).returncode == 0
    paths = [f"/m/unknown-{i:05d}.mkv" for i in range(3000)]
    command = " ".join(shlex.quote(p) for p in [sys.executable, "-m", "mediad", "show", *paths])
    result = subprocess.run(
        ["bash", "-c", f"{command} | head -1; exit ${{PIPESTATUS[0]}}"],
        env=mediad_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout == f"{paths[0]}\n"
    assert result.stderr == ""
    assert result.returncode == 141


# --- 10: two daemons, one metrics port -------------------------------------------------


def test_a_taken_metrics_port_says_how_to_fix_it(mediad_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mediad(
            "run",
            "--workers",
            "1",
            "--metrics-listen",
            f"127.0.0.1:{port}",
            env=mediad_env,
            timeout=120,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    said = mediad_lines(result)
    assert len(said) == 1, result.stderr
    assert f"127.0.0.1:{port}" in said[0] and "Address already in use" in said[0]
    assert "--metrics-listen HOST:PORT" in said[0] and "--metrics-listen ''" in said[0]
    assert "daemon.instance" in said[0]


@pytest.mark.slow
def test_a_second_daemon_on_the_same_config_fails_then_starts_as_told(
    mediad_env: dict[str, str], daemons: Callable[..., Any]
) -> None:
    env = mediad_env | {"MEDIAD_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    first = daemons(env=env)
    first.wait_started()

    second = mediad("run", env=env, timeout=120)
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    said = mediad_lines(second)
    assert len(said) == 1 and "Address already in use" in said[0], second.stderr

    # What the message says to do: no endpoint for this one, an instance name of its own.
    other = daemons("--metrics-listen", "", env=env | {"MEDIAD_DAEMON_INSTANCE": "second"})
    other.wait_started()
    assert ':second"' in other.log()  # the lease owner in the "started" line
    assert first.process.poll() is None


# --- 11: show --json for a path mediad does not know -----------------------------------


def test_show_json_of_an_unknown_path_is_what_the_docs_say(mediad_env: dict[str, str]) -> None:
    docs = (ROOT / "docs" / "schema.md").read_text()
    section = docs[docs.index("For a path mediad does not know") :]
    documented = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])

    assert mediad("migrate", env=mediad_env).returncode == 0
    result = mediad("show", "--json", documented["path"], env=mediad_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == documented
    assert list(json.loads(result.stdout)) == list(documented)


def test_check_config_shows_the_mount_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[daemon]\nmount_stall_window_seconds = 60\n[mounts."/mnt/nas"]\nmax_workers = 3\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    env["MEDIAD_DAEMON_STATE_DIR"] = str(tmp_path / "state")
    text = mediad("check-config", "--config", str(path), env=env)
    assert text.returncode == 0, text.stderr
    assert "mount_stall_window_seconds = 60.0" in text.stdout
    assert "max_stuck_workers = 0" in text.stdout
    assert '[mounts."/mnt/nas"]\nmax_workers = 3\n' in text.stdout
    shown = json.loads(mediad("check-config", "--json", "--config", str(path), env=env).stdout)
    assert shown["mounts"] == {"/mnt/nas": {"max_workers": 3}}
    assert shown["daemon"]["mount_probe_seconds"] == 15.0
    bad = tmp_path / "bad.toml"
    bad.write_text('[mounts."nas"]\nmax_workers = 3\n')
    refused = mediad("check-config", "--config", str(bad), env=env)
    assert refused.returncode == 2
    assert 'mounts."nas"' in refused.stderr and "Traceback" not in refused.stderr
