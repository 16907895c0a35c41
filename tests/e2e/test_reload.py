"""Live reconfiguration: SIGHUP applies a new file without losing work; a bad file is kept
out; SIGTTIN/SIGTTOU add and remove a worker."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import Daemon, counts, free_port, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def config_env(mediad_env: dict[str, str], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A config file that drives the daemon (the environment must not override it)."""
    path = tmp_path / "mediad.toml"
    env = {
        k: v
        for k, v in mediad_env.items()
        if k not in ("MEDIAD_DAEMON_WORKERS", "MEDIAD_METRICS_LISTEN")
    }
    env.update(MEDIAD_CONFIG=str(path), MEDIAD_TEST_HOOKS="1")
    return path, env


def write_config(path: Path, workers: int, extra: str = "") -> None:
    if "[metrics]" not in extra:
        extra += '[metrics]\nlisten = ""\n'  # no port clashes between tests
    path.write_text(f"[daemon]\nworkers = {workers}\n{extra}")


def test_worker_count_follows_the_file_and_nothing_is_lost(
    small_mp4: Path,
    tmp_path: Path,
    config_env: tuple[Path, dict[str, str]],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    path, env = config_env
    write_config(path, 2)
    link_files(small_mp4, tmp_path / "lib", 600, marker="__mediad_sleep_30ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, "two workers")
    write_config(path, 4)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.worker_pids()) == 4, 30, "four workers after the reload")
    write_config(path, 1)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.worker_pids()) == 1, 30, "one worker after the next reload")
    wait_until(lambda: counts(sql, schema)["done"] == 600, 120, "every file done")
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 600, "failed": 0}
    assert sql(f'SELECT max(attempts) FROM "{schema}".files') == [(1,)]  # none interrupted
    assert daemon.log().count('"configuration reloaded"') == 2
    assert daemon.stop() == 0


def test_an_invalid_file_is_kept_out(
    small_mp4: Path,
    tmp_path: Path,
    config_env: tuple[Path, dict[str, str]],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    path, env = config_env
    port = free_port()
    write_config(path, 2, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, "two workers")
    path.write_text("[daemon]\nworkers = -5\n")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: '"reload refused' in daemon.log(), 20, "the refusal to be logged")
    refusal = next(json.loads(x) for x in daemon.log().splitlines() if "reload refused" in x)
    assert "daemon.workers" in refusal["error"]
    assert daemon.process.poll() is None
    assert len(daemon.worker_pids()) == 2
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b'mediad_config_reloads_total{result="failed"} 1.0' in scrape
    # The daemon still works with the configuration it had.
    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(small_mp4)])
    wait_until(lambda: counts(sql, schema)["done"] == 1, 30, "a file to be done")
    assert daemon.stop() == 0


def test_a_storm_of_50_reloads_loses_nothing(
    small_mp4: Path,
    tmp_path: Path,
    config_env: tuple[Path, dict[str, str]],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    path, env = config_env
    write_config(path, 2)
    link_files(small_mp4, tmp_path / "lib", 800, marker="__mediad_sleep_10ms__")
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] > 20, 30, "work under way")
    for i in range(50):
        write_config(path, 2 + i % 2, f"[retry]\nmax_attempts = {3 + i % 2}\n")
        daemon.signal(signal.SIGHUP)
    wait_until(lambda: counts(sql, schema)["done"] == 800, 180, "every file done")
    assert daemon.process.poll() is None
    assert counts(sql, schema) == {"pending": 0, "running": 0, "done": 800, "failed": 0}
    assert daemon.log().count('"configuration reloaded"') >= 1
    assert daemon.stop() == 0


def test_new_roots_apply_to_every_worker(
    small_mp4: Path,
    tmp_path: Path,
    config_env: tuple[Path, dict[str, str]],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    path, env = config_env
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    link_files(small_mp4, inside, 1)
    link_files(small_mp4, outside, 1)
    write_config(path, 2, f'[extract]\nroots = ["{inside}"]\n')
    daemon = daemons(env=env)
    daemon.wait_started()
    assert mediad("scan", str(outside), env=env).returncode == 0
    wait_until(lambda: counts(sql, schema)["failed"] == 1, 30, "the outside file to be refused")
    write_config(path, 2, f'[extract]\nroots = ["{inside}", "{outside}"]\n')
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: '"configuration reloaded"' in daemon.log(), 20, "the reload")
    assert mediad("retry", "--class", "outside_roots", env=env).returncode == 0
    wait_until(lambda: counts(sql, schema)["done"] == 1, 30, "the file to be read now")
    assert daemon.stop() == 0


def test_sigttin_and_sigttou_add_and_remove_a_worker(
    config_env: tuple[Path, dict[str, str]],
    daemons: Callable[..., Daemon],
) -> None:
    path, env = config_env
    write_config(path, 2)
    daemon = daemons(env=env)
    daemon.wait_started()
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, "two workers")
    daemon.signal(signal.SIGTTIN)
    wait_until(lambda: len(daemon.worker_pids()) == 3, 30, "a third worker")
    # One at a time: the kernel merges a signal sent again before the first is handled.
    daemon.signal(signal.SIGTTOU)
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, "one worker less")
    daemon.signal(signal.SIGTTOU)
    wait_until(lambda: len(daemon.worker_pids()) == 1, 30, "one worker left")
    daemon.signal(signal.SIGTTOU)  # never below one
    wait_until(lambda: daemon.log().count('"workers resized"') >= 4, 10, "the last resize")
    assert len(daemon.worker_pids()) == 1
    assert daemon.stop() == 0


def test_the_metrics_address_and_the_database_change_live(
    small_mp4: Path,
    config_env: tuple[Path, dict[str, str]],
    test_dsn: str,
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    path, env = config_env
    env = {k: v for k, v in env.items() if k != "MEDIAD_DATABASE_DSN"}
    first, second = free_port(), free_port()
    write_config(
        path, 2, f'[database]\ndsn = "{test_dsn}"\n[metrics]\nlisten = "127.0.0.1:{first}"\n'
    )
    daemon = daemons(env=env)
    daemon.wait_started()
    assert (
        b"mediad_build_info"
        in urllib.request.urlopen(f"http://127.0.0.1:{first}/metrics", timeout=5).read()
    )
    # The same database under another connection string (as after a failover): a new pool.
    moved_dsn = f"{test_dsn} application_name=mediad-moved"
    write_config(
        path, 2, f'[database]\ndsn = "{moved_dsn}"\n[metrics]\nlisten = "127.0.0.1:{second}"\n'
    )
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: '"configuration reloaded"' in daemon.log(), 30, "the reload")
    assert '"database switched"' in daemon.log() and '"metrics endpoint moved"' in daemon.log()
    assert (
        b"mediad_build_info"
        in urllib.request.urlopen(f"http://127.0.0.1:{second}/metrics", timeout=5).read()
    )
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{first}/metrics", timeout=5)
    sql(f'INSERT INTO "{schema}".files (path) VALUES (%s)', [str(small_mp4)])
    wait_until(lambda: counts(sql, schema)["done"] == 1, 30, "work through the new pool")
    apps = sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mediad-moved'")
    assert apps[0][0] >= 1
    assert daemon.stop() == 0
