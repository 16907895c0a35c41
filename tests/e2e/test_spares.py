"""Spare workers: a read of a network mount that does not answer leaves its worker waiting
on the network, not on a core. While local files wait, the daemon runs a spare in its
place, and lets it go once the read answers (mediad/daemon/spares.py). Real `mediad run`,
PostgreSQL and a FUSE mount whose reads wait until the test releases them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_observability import scrape
from tests.support.fusefs import FuseMount
from tests.support.processes import Daemon, counts, free_port, link_files, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


def test_a_spare_reads_local_files_while_a_network_read_waits_and_leaves_after(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sql: SQL,
    schema: str,
) -> None:
    port = free_port()
    env = {
        **mediad_env,
        "MEDIAD_TEST_HOOKS": "1",
        "MEDIAD_DAEMON_WORKERS": "2",
        # Far longer than the test: the read is waited on, never timed out.
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "120",
        "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}",
    }
    share = tmp_path / "share"
    (waited,) = link_files(small_mp4, share, 1, marker="waited_")
    fs = fuse_mount(share)
    fs.block(waited.name)
    # Local files that take a while each, so that they are still waiting when the read
    # of the share is seen to wait.
    local = link_files(small_mp4, tmp_path / "lib", 30, marker="__mediad_sleep_200ms__")
    assert mediad("enqueue", str(fs.path / waited.name), env=env).returncode == 0
    assert mediad("enqueue", *map(str, local), env=env).returncode == 0
    daemon = daemons(env=env)
    daemon.ready_worker_pids()
    wait_until(lambda: fs.held(), 30, "the read of the share to wait")

    spare = wait_until(
        lambda: len(daemon.worker_pids()) == 3, 15, "a spare worker beside the waiting one"
    )
    assert spare and '"spare workers while reads of network mounts wait"' in daemon.log()
    assert "mediad_workers_spare 1.0" in scrape(port).splitlines()
    wait_until(lambda: counts(sql, schema)["done"] == 30, 60, "every local file to finish")
    assert fs.held(), "the share answered before the test released it"

    fs.release()
    wait_until(lambda: counts(sql, schema)["done"] == 31, 30, "the waited file to finish")
    wait_until(
        lambda: len(daemon.worker_pids()) == 2, 30, "the spare to leave after the read answered"
    )
    assert "mediad_workers_spare 0.0" in scrape(port).splitlines()
    # Nothing was charged for the wait: every file read in one attempt.
    assert sql(f'SELECT DISTINCT attempts FROM "{schema}".files') == [(1,)]
