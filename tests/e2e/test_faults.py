"""Fault injection: the real `mediad run` against real PostgreSQL and real files, with the
faults done for real (kill -9, SIGSTOP, a database restart, signals), and at the end the
check a user would make: every row done or failed with a class, none lost, none running."""

from __future__ import annotations

import ctypes.util
import json
import os
import random
import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import Server
from tests.support.processes import Daemon, counts, free_port, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


def all_terminal(sql: SQL, schema: str, total: int) -> bool:
    c = counts(sql, schema)
    return c["done"] + c["failed"] == total and c["running"] == 0 and c["pending"] == 0


def assert_nothing_lost(sql: SQL, schema: str, total: int) -> dict[str, int]:
    c = counts(sql, schema)
    assert sum(c.values()) == total, c
    assert c["running"] == 0 and c["pending"] == 0, c
    unclassified = sql(
        f'SELECT count(*) FROM "{schema}".files '
        f"WHERE state = 'failed' AND (error_class IS NULL OR error = '')"
    )
    assert unclassified == [(0,)]
    # Done exactly once in effect: every done row holds one complete result.
    incomplete = sql(
        f"SELECT count(*) FROM \"{schema}\".files WHERE state = 'done' "
        f"AND (metadata IS NULL OR container <> 'MPEG-4' OR lease_token IS NOT NULL)"
    )
    assert incomplete == [(0,)]
    return c


def connections_opened(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(r"^mediad_db_connections_opened_total (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def zombies_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] == "Z":
            found.append(int(entry.name))
    return found


def stopped_line(daemon: Daemon) -> dict[str, Any]:
    lines = [json.loads(line) for line in daemon.log().splitlines() if '"stopped"' in line]
    assert lines, daemon.log()
    return lines[-1]


def test_kill_9_storm_of_workers_loses_nothing(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "10",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.05",
    }
    link_files(small_mp4, tmp_path / "lib", 2000, marker="__mediad_sleep_20ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    rng = random.Random(7)
    kills = 0
    storm_ends = time.monotonic() + 20
    while time.monotonic() < storm_ends and daemon.process.poll() is None:
        workers = daemon.worker_pids()
        if workers:
            try:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(0.5)  # the storm's cadence, not a wait for a result
    assert daemon.process.poll() is None, daemon.log()
    assert kills >= 30
    wait_until(lambda: all_terminal(sql, schema, 2000), 180, "every row to finish")
    c = assert_nothing_lost(sql, schema, 2000)
    failed_classes = sql(
        f"SELECT DISTINCT error_class FROM \"{schema}\".files WHERE state = 'failed'"
    )
    assert set(failed_classes) <= {("worker_crash",)}
    assert c["done"] >= 1990
    crashed = sql(f'SELECT count(*) FROM "{schema}".files WHERE attempts > 1')[0][0]
    assert crashed > 0, "the storm should have hit files mid-read"
    assert zombies_of(daemon.pid) == []
    assert daemon.stop() == 0
    assert daemon.log().count('"worker died"') >= 30


def test_killed_supervisor_rows_are_reclaimed_within_the_lease(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    lease = 3
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_DAEMON_LEASE_SECONDS": str(lease)}
    link_files(small_mp4, tmp_path / "lib", 400, marker="__mediad_sleep_20ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    first = daemons(env=env)
    first.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] >= 50, 60, "the first daemon to make progress")
    os.kill(first.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    orphaned = {r[0] for r in sql(f"SELECT id FROM \"{schema}\".files WHERE state = 'running'")}
    assert orphaned, "the killed daemon held rows"
    killed_at = time.monotonic()
    second = daemons(env=env)
    second.wait_started()

    def reclaimed() -> bool:
        still = sql(
            f"SELECT count(*) FROM \"{schema}\".files WHERE state = 'running' AND id = ANY(%s)",
            [list(orphaned)],
        )
        return still == [(0,)]

    # The lease runs out `lease` s after its last renewal; then any daemon rescues the row
    # within a fraction of a lease. Allow for the second daemon's own start-up.
    wait_until(reclaimed, lease * 2 + 15, "the dead daemon's rows to be reclaimed")
    reclaim_seconds = time.monotonic() - killed_at
    wait_until(lambda: all_terminal(sql, schema, 400), 120, "every row to finish")
    assert_nothing_lost(sql, schema, 400)
    assert counts(sql, schema)["done"] == 400
    again = sql(f'SELECT min(attempts) FROM "{schema}".files WHERE id = ANY(%s)', [list(orphaned)])
    assert again[0][0] >= 2  # the attempt charged to the dead daemon stays charged
    assert reclaim_seconds < lease * 2 + 15
    assert second.stop() == 0


def test_database_restart_mid_run(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    pg_server: Server,
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    if not pg_server.owned:
        pytest.skip("the server comes from MEDIAD_TEST_DSN: the tests may not restart it")
    port = free_port()
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}"}
    link_files(small_mp4, tmp_path / "lib", 600, marker="__mediad_sleep_20ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] >= 100, 60, "progress before the restart")
    opened_before = connections_opened(port)
    before = sql("SELECT pg_postmaster_start_time()")
    pg_server.restart()
    assert sql("SELECT pg_postmaster_start_time()") != before
    wait_until(lambda: all_terminal(sql, schema, 600), 180, "every row to finish after it")
    assert daemon.process.poll() is None, daemon.log()
    assert_nothing_lost(sql, schema, 600)
    assert counts(sql, schema)["done"] == 600
    log = daemon.log()
    # The outage was seen (by the loop, or by the pool replacing its broken connection),
    # and the connections it broke were opened again.
    assert "database unavailable" in log or "error connecting" in log, log
    assert connections_opened(port) > opened_before
    assert daemon.stop() == 0


def test_a_paused_daemon_is_fenced_off(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    lease = 2
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_LEASE_SECONDS": str(lease),
        "MEDIAD_DAEMON_WORKERS": "1",
    }
    # Each file takes 200 ms, so the paused daemon's worker is almost surely mid-file.
    link_files(small_mp4, tmp_path / "lib", 300, marker="__mediad_sleep_200ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    paused = daemons(env=env)
    paused.wait_started()
    others = [daemons(env=env), daemons(env=env)]
    for other in others:
        other.wait_started()
    owner_like = f"%:{paused.pid}"

    def held_by_paused() -> bool:
        rows = sql(
            f'SELECT count(*) FROM "{schema}".files '
            f"WHERE state = 'running' AND lease_owner LIKE %s",
            [owner_like],
        )
        return rows[0][0] > 0

    wait_until(held_by_paused, 30, "the daemon to be paused to hold rows")
    paused.signal(signal.SIGSTOP)
    try:
        # The pause itself is the fault: well past the lease, so the others rescue its rows.
        wait_until(
            lambda: not held_by_paused(),
            lease * 5 + 10,
            "the other daemons to take the paused daemon's rows",
        )
    finally:
        paused.signal(signal.SIGCONT)
    wait_until(lambda: all_terminal(sql, schema, 300), 180, "every row to finish")
    assert_nothing_lost(sql, schema, 300)
    assert counts(sql, schema)["done"] == 300
    assert paused.stop() == 0
    summary = stopped_line(paused)
    assert summary["stale"] >= 1, paused.log()
    assert "refused by the fence" in paused.log()
    for other in others:
        assert other.stop() == 0


def test_sigterm_twice_stops_at_once_and_gives_rows_back(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {**mediad_env, "MEDIAD_TEST_HOOKS": "1", "MEDIAD_DAEMON_SHUTDOWN_GRACE_SECONDS": "120"}
    hanging = link_files(small_mp4, tmp_path / "hang", 2, marker="__mediad_hang__")
    link_files(small_mp4, tmp_path / "lib", 100)
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] == 100, 60, "the ordinary files")
    assert mediad("scan", str(tmp_path / "hang"), env=env).returncode == 0
    wait_until(lambda: counts(sql, schema)["running"] == 2, 30, "both workers to hang")
    daemon.signal(signal.SIGTERM)
    wait_until(lambda: '"draining"' in daemon.log(), 10, "the drain to start")
    assert daemon.process.poll() is None  # both hanging files hold it in the drain
    stopped_at = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    assert time.monotonic() - stopped_at < 30  # not the 120 s grace
    assert_nothing_lost_but_pending(sql, schema, hanging)


def assert_nothing_lost_but_pending(sql: SQL, schema: str, hanging: list[Path]) -> None:
    c = counts(sql, schema)
    assert c == {"pending": 2, "running": 0, "done": 100, "failed": 0}
    rows = sql(
        f"SELECT path, attempts FROM \"{schema}\".files WHERE state = 'pending' ORDER BY path"
    )
    assert rows == [(str(p), 0) for p in sorted(hanging)]


def start_with_one_bad_file(
    small_mp4: Path,
    root: Path,
    env: dict[str, str],
    daemons: Callable[..., Daemon],
    marker: str,
    good: int,
) -> Daemon:
    """A daemon (test hooks on) on `good` readable files and one whose name carries a
    fault marker (tests/support/engine.py)."""
    link_files(small_mp4, root / "bad", 1, marker=marker)
    link_files(small_mp4, root / "lib", good)
    assert mediad("scan", str(root), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    return daemon


def the_one_failure(sql: SQL, schema: str, total: int) -> tuple[str, int, str]:
    """Once every row finished: the one failed row's class, attempts and error; the rest done."""
    wait_until(lambda: all_terminal(sql, schema, total), 90, "every row to finish")
    rows = sql(
        f"SELECT error_class, attempts, error FROM \"{schema}\".files WHERE state = 'failed'"
    )
    assert len(rows) == 1
    assert counts(sql, schema)["done"] == total - 1
    error_class, attempts, error = rows[0]
    return error_class, attempts, error


def test_a_file_that_crashes_its_worker_ends_failed_without_stopping_the_pool(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "3",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.05",
    }
    daemon = start_with_one_bad_file(small_mp4, tmp_path, env, daemons, "__mediad_crash__", 200)
    error_class, attempts, error = the_one_failure(sql, schema, 201)
    assert (error_class, attempts) == ("worker_crash", 3)
    assert "SIGSEGV" in error
    assert daemon.stop() == 0


def test_a_file_whose_reading_raises_a_bug_fails_alone_and_the_worker_lives_on(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_WORKERS": "1",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "2",
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "0.05",
    }
    daemon = start_with_one_bad_file(small_mp4, tmp_path, env, daemons, "__mediad_raise__", 50)
    workers = daemon.ready_worker_pids()
    error_class, attempts, error = the_one_failure(sql, schema, 51)
    assert (error_class, attempts) == ("internal", 2)
    assert "KeyError" in error and "test hook: an error nothing expects" in error
    # The one worker served every file: the bug did not kill it, and no traceback
    # reached the log.
    assert daemon.worker_pids() == workers
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log() and '"worker died"' not in daemon.log()


@pytest.mark.parametrize(
    "library",
    (
        "/nonexistent/libmediainfo.so.0",  # no such file: OSError
        # A library that loads but is not MediaInfo: AttributeError on its first symbol.
        ctypes.util.find_library("c") or "libc.so.6",
    ),
)
def test_workers_that_cannot_load_mediainfo_stop_the_daemon_clearly(
    mediad_env: dict[str, str], library: str
) -> None:
    env = {**mediad_env, "MEDIAD_EXTRACT_LIBRARY_FILE": library}
    started = time.monotonic()
    result = mediad("run", env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "workers cannot start" in result.stderr
    assert f"cannot load MediaInfo from {library}" in result.stderr
    assert time.monotonic() - started < 60


def test_workers_run_under_the_memory_limit_and_are_recycled(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_DAEMON_MEMORY_LIMIT_MB": "700",
        "MEDIAD_DAEMON_MAX_FILES_PER_WORKER": "20",
        "MEDIAD_LOG_LEVEL": "debug",
    }
    daemon = daemons(env=env)
    daemon.wait_started()
    first = daemon.ready_worker_pids()
    assert len(first) == 2
    for pid in first:
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert line.split()[3] == str(700 * 1024 * 1024), line
    link_files(small_mp4, tmp_path / "lib", 200)
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    wait_until(lambda: all_terminal(sql, schema, 200), 60, "every row to finish")
    assert counts(sql, schema)["done"] == 200
    assert not set(daemon.worker_pids()) & set(first)
    assert daemon.log().count('"worker recycled"') >= 4
    assert '"worker died"' not in daemon.log()
    assert daemon.stop() == 0


def test_supervisor_memory_stays_flat_with_a_million_pending_rows(
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    assert mediad("migrate", env=mediad_env).returncode == 0
    sql(
        f'INSERT INTO "{schema}".files (path) '
        f"SELECT '/nonexistent/backlog/' || g || '.mp4' FROM generate_series(1, 1000000) g"
    )
    daemon = daemons()
    daemon.wait_started()

    def rss_mb() -> float:
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
        return kb / 1024

    wait_until(lambda: counts(sql, schema)["failed"] >= 2000, 60, "the backlog to be worked")
    early = rss_mb()
    wait_until(lambda: counts(sql, schema)["failed"] >= 12000, 120, "ten thousand more rows")
    late = rss_mb()
    assert counts(sql, schema)["pending"] > 900_000
    assert late < 150, f"supervisor RSS {late:.0f} MB"
    assert late - early < 15, f"RSS grew from {early:.0f} to {late:.0f} MB"
    assert daemon.stop() == 0


def test_a_file_that_burns_cpu_is_stopped_by_the_cpu_limit(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_EXTRACT_CPU_SECONDS": "1",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "600",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "1",
    }
    link_files(small_mp4, tmp_path / "spin", 1, marker="__mediad_spin__")
    link_files(small_mp4, tmp_path / "lib", 50)
    assert mediad("scan", str(tmp_path), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    # Well before the 600 s wall-clock timeout: the kernel's CPU limit stopped it.
    wait_until(lambda: all_terminal(sql, schema, 51), 60, "every row to finish")
    [(error_class, error)] = sql(
        f"SELECT error_class, error FROM \"{schema}\".files WHERE state = 'failed'"
    )
    assert error_class == "timeout" and "CPU" in error
    assert counts(sql, schema)["done"] == 50
    assert daemon.stop() == 0
