"""Workers held by a dead network mount, with the real `mediad run`: a FUSE mount whose
reads wait until the test releases them (tests/support/fusefs.py) stands for an NFS or SMB server
gone away. What a user checks: the stuck worker is said so in the log and not replaced
past the limit, good files queued behind it are never charged, and SIGTERM stops mediad
in time even though that process cannot be killed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.fusefs import FuseMount, process_state
from tests.support.processes import Daemon, counts, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]
GRACE = 3


def events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    found = []
    for line in daemon.log().splitlines():
        if f'"{name}"' in line:
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def test_a_worker_stuck_on_a_dead_mount_is_bounded_and_mediad_still_stops_in_time(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sql: SQL,
    schema: str,
) -> None:
    env = {
        **mediad_env,
        "MEDIAD_DAEMON_WORKERS": "2",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "2",
        "MEDIAD_DAEMON_MAX_STUCK_WORKERS": "1",
        "MEDIAD_DAEMON_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        # The file that timed out is retried much later: not while this test runs.
        "MEDIAD_RETRY_BACKOFF_BASE_SECONDS": "3600",
    }
    share = tmp_path / "share"
    share.mkdir()
    os.link(small_mp4, share / "dead.mp4")
    fs = fuse_mount(share)
    fs.block("dead.mp4")
    dead = fs.path / "dead.mp4"
    # The file on the dead mount comes first, so good files are queued behind it.
    assert mediad("enqueue", str(dead), env=env).returncode == 0
    link_files(small_mp4, tmp_path / "lib", 40)
    assert mediad("scan", str(tmp_path / "lib"), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.wait_started()

    [stuck] = wait_until(lambda: events(daemon, "worker stuck"), 60, "a worker to be stuck")
    assert stuck["path"] == str(dead) and stuck["seconds_since_kill"] >= 3
    assert stuck["device"] == os.stat(dead).st_dev
    assert process_state(stuck["pid"]) == "D"  # SIGKILL did not end it: the read holds it
    wait_until(
        lambda: events(daemon, "stuck workers at the limit: not replacing workers"),
        30,
        "the limit to be reached",
    )
    wait_until(lambda: counts(sql, schema)["done"] == 40, 90, "every good file")
    # The one stuck process, and the one worker left: none was forked to replace it.
    workers = daemon.worker_pids()
    assert len(workers) == 2 and stuck["pid"] in workers, workers
    assert len(events(daemon, "stuck workers at the limit: not replacing workers")) == 1
    # Good files queued at the killed worker went back uncharged: one attempt each.
    assert sql(
        f"SELECT count(*) FROM \"{schema}\".files WHERE state = 'done' AND attempts = 1"
    ) == [(40,)]
    # Its process stuck at the limit, the mount can time out no more: it is stalled, and
    # the file that timed out there waits, uncharged, for the mount to answer.
    wait_until(
        lambda: (
            sql(
                f'SELECT state, attempts, error_class FROM "{schema}".files WHERE path = %s',
                (str(dead),),
            )
            == [("pending", 0, None)]
        ),
        30,
        "the dead mount's file to be given back uncharged",
    )
    assert len(events(daemon, "mount stalled")) == 1

    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=GRACE + 5) == 0  # raises past GRACE + 5 s
    [left] = events(daemon, "left behind stuck processes")
    assert (left["processes"], left["pids"], left["paths"]) == (1, [stuck["pid"]], [str(dead)])
    assert process_state(stuck["pid"]) == "D"  # outlived mediad, as the log says
    assert counts(sql, schema)["running"] == 0

    fs.release()  # the server answers at last: the process dies
    wait_until(lambda: process_state(stuck["pid"]) in (None, "Z"), 30, "the stuck process to exit")
