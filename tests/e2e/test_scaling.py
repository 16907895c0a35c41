"""Many daemons on one database, directly and behind PgBouncer in transaction mode: every
row is claimed and done exactly once."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.scaling import pgbouncer
from tests.support.postgres import Server
from tests.support.processes import Daemon, counts, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


def test_two_daemons_behind_pgbouncer_in_transaction_mode(
    small_mp4: Path,
    tmp_path: Path,
    pg_server: Server,
    test_dsn: str,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    if not (shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()):
        pytest.skip("pgbouncer is not installed (make test installs it where it can)")
    link_files(small_mp4, tmp_path / "lib", 600)
    assert mediad("scan", str(tmp_path / "lib"), env=mediad_env).returncode == 0
    work = Path(tempfile.mkdtemp(prefix="mediad-pgbouncer-"))
    try:
        host = conninfo_to_dict(pg_server.admin_dsn).get("host", "")
        # A server on a Unix socket: PgBouncer must run as the user who can reach it.
        owner = Path(host).owner() if host.startswith("/") else "postgres"
        with pgbouncer(pg_server.admin_dsn, work, pool_size=4, run_as=owner) as port:
            database = conninfo_to_dict(test_dsn)["dbname"]
            through = make_conninfo(
                host="127.0.0.1",
                port=port,
                dbname=database,
                user=conninfo_to_dict(test_dsn).get("user", "postgres"),
            )
            # LISTEN needs a session and prepared statements a fixed server connection:
            # neither survives transaction pooling, so polling and no preparing.
            env = {
                **mediad_env,
                "MEDIAD_DATABASE_DSN": through,
                "MEDIAD_DATABASE_LISTEN": "false",
                "MEDIAD_DATABASE_PREPARED_STATEMENTS": "false",
                "MEDIAD_DAEMON_POLL_SECONDS": "0.2",
                "MEDIAD_DAEMON_BATCH_SIZE": "20",
            }
            first, second = daemons(env=env), daemons(env=env)
            first.wait_started()
            second.wait_started()
            wait_until(lambda: counts(sql, schema)["done"] == 600, 180, "every file done")
            assert first.stop() == 0 and second.stop() == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 600, "failed": 0}
    assert sql(f'SELECT attempts, count(*) FROM "{schema}".files GROUP BY 1') == [(1, 600)]
    for daemon in (first, second):
        assert "Traceback" not in daemon.log() and "database unavailable" not in daemon.log()
