"""The daemons table: every real daemon publishes a heartbeat row (what its workers read
included), `status` and `top` read it (a killed daemon shows as gone), a clean exit
deletes the row and rows gone for a day are pruned."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mediad import metrics
from mediad.db import reads
from mediad.db.queue import Queue
from mediad.models import DaemonReport, DaemonSeen, MountReport
from tests.e2e.test_observability import scrape
from tests.support.processes import Daemon, free_port, link_files, mediad, wait_until

SQL = Callable[..., list[tuple[Any, ...]]]


def rows(sql: SQL, schema: str) -> dict[str, tuple[Any, ...]]:
    found = sql(
        f"SELECT owner, host, pid, state, workers_target, workers_alive, workers_stuck, "
        f'mounts, heartbeat_at FROM "{schema}".daemons'
    )
    return {row[0]: row for row in found}


def status(env: dict[str, str]) -> dict[str, Any]:
    result = mediad("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def stuck_daemon(owner: str = "nas-host:4242") -> DaemonReport:
    """Another daemon's report: a mount stalled and a worker process stuck on it."""
    return DaemonReport(
        owner=owner,
        host="nas-host",
        pid=4242,
        instance="",
        mediad_version="0.1.0",
        uptime_seconds=300.0,
        heartbeat_seconds=5.0,
        workers_target=2,
        workers_alive=1,
        workers_stuck=1,
        workers_stuck_limit=2,
        mounts=(MountReport("/mnt/nas", "nfs4", "stalled", 1, 1, 3),),
    )


def test_a_running_daemon_publishes_its_row_without_listen_and_deletes_it_at_exit(
    mediad_env: dict[str, str], daemons: Callable[..., Daemon], sql: SQL, schema: str
) -> None:
    # As behind PgBouncer in transaction mode: no LISTEN, no prepared statements.
    env = {
        **mediad_env,
        "MEDIAD_DATABASE_LISTEN": "false",
        "MEDIAD_DATABASE_PREPARED_STATEMENTS": "false",
        "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "0.5",
    }
    daemon = daemons(env=env)
    daemon.wait_started()
    owner = f"{socket.gethostname()}:{daemon.pid}"
    row = wait_until(lambda: rows(sql, schema).get(owner), 30, "the daemon's row")
    host, pid, state, target, _alive, stuck, mounts = row[1:8]
    assert (host, pid, state, target, stuck, mounts) == (
        socket.gethostname(),
        daemon.pid,
        "running",
        2,
        0,
        [],
    )
    wait_until(
        lambda: rows(sql, schema)[owner][5] == 2, 30, "both workers to show alive in the row"
    )

    # Its heartbeat moves on, by the database's clock.
    first: datetime = row[8]
    wait_until(lambda: rows(sql, schema)[owner][8] > first, 10, "the heartbeat to advance")

    report = status(env)
    assert report["mounts"] == [] and report["stuck_workers"] == 0
    text = mediad("status", env=env)
    assert "live daemons: 1, stuck worker processes: 0" in text.stdout

    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    assert rows(sql, schema) == {}  # a clean exit: not gone, stopped


def test_status_shows_mounts_and_stuck_workers_of_live_daemons_only(
    queue: Queue, mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    env = mediad_env  # the same schema as the queue
    queue.heartbeat(stuck_daemon())
    report = status(env)
    assert report["mounts"] == [
        {
            "owner": "nas-host:4242",
            "mount": "/mnt/nas",
            "fstype": "nfs4",
            "state": "stalled",
            "in_flight": 1,
            "stuck": 1,
            "timeouts_recent": 3,
        }
    ]
    assert report["stuck_workers"] == 1
    text = mediad("status", env=env).stdout
    assert "live daemons: 1, stuck worker processes: 1" in text
    assert "/mnt/nas (nfs4) stalled on nas-host:4242: 1 in flight, 1 stuck" in text

    # Its heartbeat is older than 3 of its intervals: the daemon is gone, and what it
    # last said is no longer shown.
    sql(f"UPDATE \"{schema}\".daemons SET heartbeat_at = now() - interval '16 seconds'")
    report = status(env)
    assert report["mounts"] == [] and report["stuck_workers"] == 0
    assert "live daemons: 0, stuck worker processes: 0" in mediad("status", env=env).stdout


def test_a_killed_daemon_stops_being_live_and_a_daemon_prunes_day_old_rows(
    queue: Queue,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    env = {**mediad_env, "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "0.5"}
    queue.heartbeat(stuck_daemon("old-host:1"))
    queue.heartbeat(stuck_daemon("recent-host:2"))
    sql(
        f"UPDATE \"{schema}\".daemons SET heartbeat_at = now() - interval '25 hours' "
        "WHERE owner = 'old-host:1'"
    )
    sql(
        f"UPDATE \"{schema}\".daemons SET heartbeat_at = now() - interval '2 hours' "
        "WHERE owner = 'recent-host:2'"
    )
    killed = daemons(env=env)
    killed.wait_started()
    owner = f"{socket.gethostname()}:{killed.pid}"
    # Rows gone for a day go at the daemon's first heartbeat; one gone for hours stays.
    wait_until(lambda: "old-host:1" not in rows(sql, schema), 30, "the day-old row to go")
    assert set(rows(sql, schema)) == {"recent-host:2", owner}

    live = {d.report.owner for d in reads.live_daemons(queue.db)}
    assert live == {owner}
    killed.signal(signal.SIGKILL)
    killed.process.wait(timeout=30)
    wait_until(lambda: not reads.live_daemons(queue.db), 10, "the killed daemon to stop being live")
    assert owner in rows(sql, schema)  # its row stays until pruned a day later


def test_extract_deletes_its_row_when_it_finishes(
    mediad_env: dict[str, str], sql: SQL, schema: str
) -> None:
    result = mediad("extract", env=mediad_env)
    assert result.returncode == 0, result.stderr
    assert sql(f'SELECT count(*) FROM "{schema}".daemons') == [(0,)]


@pytest.mark.parametrize(("max_stuck", "limit"), [("0", "2.0"), ("1", "1.0")])
def test_a_daemon_exports_its_stuck_workers_and_limit(
    mediad_env: dict[str, str], daemons: Callable[..., Daemon], max_stuck: str, limit: str
) -> None:
    port = free_port()
    env = {
        **mediad_env,
        "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}",
        "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "0.5",
        "MEDIAD_DAEMON_MAX_STUCK_WORKERS": max_stuck,  # 0: the worker count (2)
    }
    daemon = daemons(env=env)
    daemon.wait_started()

    def exported() -> bool:
        text = scrape(port)
        return "mediad_workers_stuck 0.0" in text and f"mediad_workers_stuck_limit {limit}" in text

    wait_until(exported, 30, "the stuck gauges")
    assert daemon.stop() == 0


def test_mount_gauges_follow_the_report_and_drop_mounts_no_longer_reported() -> None:
    nas = MountReport("/mnt/nas", "nfs4", "stalled", in_flight=2)
    usb = MountReport("/media/usb", "ext4", "ok", in_flight=5)
    report = stuck_daemon()
    metrics.show_daemon(replace(report, mounts=(nas, usb)))
    value = metrics.REGISTRY.get_sample_value
    assert value("mediad_mount_stalled", {"mount": "/mnt/nas"}) == 1
    assert value("mediad_mount_in_flight", {"mount": "/media/usb"}) == 5
    assert value("mediad_workers_stuck") == 1 and value("mediad_workers_stuck_limit") == 2
    metrics.show_daemon(replace(report, mounts=(usb,)))
    assert value("mediad_mount_stalled", {"mount": "/mnt/nas"}) is None
    assert value("mediad_mount_stalled", {"mount": "/media/usb"}) == 0
    metrics.show_daemon(replace(report, mounts=()))
    assert value("mediad_mount_in_flight", {"mount": "/media/usb"}) is None


def test_a_daemon_is_degraded_while_stuck_at_its_limit_or_a_mount_is_stalled() -> None:
    healthy = replace(stuck_daemon(), workers_stuck=1, mounts=())
    assert healthy.state == "running"
    assert replace(healthy, workers_stuck=2).state == "degraded"
    assert stuck_daemon().state == "degraded"  # its mount is stalled
    assert replace(stuck_daemon(), draining=True).state == "draining"


# --- the fleet view: status --json's "daemons" and `mediad top` ----------------------------


def held_env(env: dict[str, str], instance: str) -> dict[str, str]:
    """A daemon of one worker that holds one file beyond the one it reads (a claim of
    one row at a time): two of them share the queue's rows between them."""
    return {
        **env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_INSTANCE": instance,
        "MEDIAD_DAEMON_WORKERS": "1",
        "MEDIAD_DAEMON_BATCH_SIZE": "1",
        "MEDIAD_DAEMON_PREFETCH": "1",
        "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "0.5",
    }


def fleet(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {d["instance"]: d for d in status(env)["daemons"]}


def started_reading(daemons: Callable[..., Daemon], env: dict[str, str], instance: str) -> Daemon:
    """A daemon of `held_env`, once its row shows the file its worker reads."""
    daemon = daemons(env=held_env(env, instance))
    daemon.wait_started()
    wait_until(lambda: fleet(env).get(instance, {}).get("in_flight"), 30, f"{instance}'s file")
    return daemon


@pytest.mark.slow
def test_two_daemons_show_what_they_read_and_a_killed_one_turns_gone(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    # Four files, each held 20 s by the test engine: each daemon reads one, holds one.
    held = link_files(small_mp4, tmp_path / "lib", 4, marker="__mediad_sleep_20000ms__")
    assert mediad("enqueue", *map(str, held), env=mediad_env).returncode == 0
    first = started_reading(daemons, mediad_env, "first")
    second = started_reading(daemons, mediad_env, "second")

    seen = fleet(mediad_env)
    assert set(seen) == {"first", "second"}
    host = socket.gethostname()
    for instance, daemon in ((first, seen["first"]), (second, seen["second"])):
        assert daemon.keys() == {
            "owner", "host", "pid", "instance", "state", "workers", "heartbeat_age_s",
            "mounts", "in_flight",
        }  # fmt: skip
        assert daemon["owner"] == f"{host}:{instance.pid}:{daemon['instance']}"
        assert (daemon["host"], daemon["pid"], daemon["state"]) == (host, instance.pid, "running")
        assert daemon["workers"] == {"target": 1, "alive": 1, "stuck": 0}
        assert 0 <= daemon["heartbeat_age_s"] < 1.5
        [reading] = daemon["in_flight"]
        assert reading.keys() == {"path", "worker_pid", "mount", "seconds"}
        assert reading["path"] in {str(p) for p in held}
        assert reading["worker_pid"] in instance.worker_pids()
        assert reading["mount"] and str(held[0]).startswith(reading["mount"])
        assert 0 <= reading["seconds"] < 20
    # The rest of each row: the libmediainfo its workers loaded, no file finished yet.
    for version, finished in sql(
        f'SELECT mediainfo_version, files_finished FROM "{schema}".daemons'
    ):
        assert re.fullmatch(r"\d+(\.\d+)+", version) and finished == 0, (version, finished)
    # Two different files: a row is read by one daemon at a time.
    assert seen["first"]["in_flight"][0]["path"] != seen["second"]["in_flight"][0]["path"]
    text = mediad("status", env=mediad_env).stdout
    assert f"{host}:{first.pid}:first running: 1/1 workers, 0 stuck, 1 in flight" in text

    # The second is killed: nothing deletes its row, and within a few of its intervals
    # (3 of 0.5 s, by the database's clock) readers call it gone.
    second.signal(signal.SIGKILL)
    second.process.wait(timeout=30)
    wait_until(lambda: fleet(mediad_env)["second"]["state"] == "gone", 10, "the killed daemon gone")
    after = fleet(mediad_env)
    assert after["second"]["heartbeat_age_s"] >= 1.5
    assert after["first"]["state"] == "running"
    first.signal(signal.SIGKILL)  # its file is held for seconds more: no drain to wait for


@pytest.mark.slow
def test_top_once_shows_a_held_file_in_plain_80_column_text(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
) -> None:
    held = link_files(small_mp4, tmp_path / "lib", 1, marker="__mediad_sleep_8000ms__")
    assert mediad("enqueue", *map(str, held), env=mediad_env).returncode == 0
    daemon = started_reading(daemons, mediad_env, "top")

    result = mediad("top", "--once", env={**mediad_env, "COLUMNS": "80"})

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]
    worker = next(line for line in lines if held[0].name in line)
    assert f"{daemon.worker_pids()[0]}" in worker and f"{socket.gethostname()}:top" in worker
    assert any(f"{daemon.pid}" in line and "running" in line for line in lines)
    assert lines[1].startswith("queue: pending 0  running 1")
    assert daemon.stop() == 0


def test_fleet_gauges_follow_the_table_and_drop_daemons_no_longer_in_it() -> None:
    live = DaemonSeen(replace(stuck_daemon("nas-host:1"), files_finished=9), "degraded", 1.0, True)
    killed = DaemonSeen(replace(stuck_daemon("usb-host:2"), host="usb-host"), "running", 60, False)
    metrics.show_fleet([live, killed])
    value = metrics.REGISTRY.get_sample_value
    assert value("mediad_fleet_daemons", {"state": "degraded"}) == 1
    assert value("mediad_fleet_daemons", {"state": "gone"}) == 1
    assert value("mediad_fleet_daemons", {"state": "running"}) == 0
    assert value("mediad_fleet_daemon_up", {"daemon": "nas-host"}) == 1
    assert value("mediad_fleet_daemon_up", {"daemon": "usb-host"}) == 0
    assert value("mediad_fleet_daemon_files_finished", {"daemon": "nas-host"}) == 9
    assert value("mediad_fleet_daemon_workers_stuck", {"daemon": "nas-host"}) == 1
    assert value("mediad_fleet_daemon_heartbeat_age_seconds", {"daemon": "usb-host"}) == 60
    metrics.show_fleet([live])  # the killed one's row pruned
    assert value("mediad_fleet_daemon_up", {"daemon": "usb-host"}) is None
    assert value("mediad_fleet_daemons", {"state": "gone"}) == 0


def pty_output(fd: int, until: Callable[[bytes], bool], seconds: float) -> bytes:
    """What a pseudo-terminal shows, read until `until` holds or it closes."""
    seen = b""
    deadline = time.monotonic() + seconds
    while not until(seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize("quit_with", ["q", "ctrl-c"])
def test_top_redraws_on_a_terminal_and_quits_cleanly_with_q_or_ctrl_c(
    mediad_env: dict[str, str], quit_with: str
) -> None:
    assert mediad("migrate", env=mediad_env).returncode == 0
    env = {**mediad_env, "COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    fd, terminal = pty.openpty()
    top = subprocess.Popen(
        [sys.executable, "-m", "mediad", "top", "--interval", "0.2"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        shown = pty_output(fd, lambda out: out.count(b"mediad top (q quits)") >= 2, 60)
        assert shown.count(b"mediad top (q quits)") >= 2, shown  # drawn, then redrawn
        if quit_with == "q":
            os.write(fd, b"q")
        else:
            top.send_signal(signal.SIGINT)
        assert top.wait(timeout=30) == 0
        rest = pty_output(fd, lambda out: False, 5)
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
        os.close(fd)
    assert b"Traceback" not in shown + rest
    assert rest.endswith(b"\x1b[?1049l")  # the terminal's own screen given back
