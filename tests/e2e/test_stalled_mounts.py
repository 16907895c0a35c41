"""A network mount that stops answering, with the real `mediad run`, PostgreSQL and a FUSE
mount whose reads wait until the test releases them (tests/support/fusefs.py), as an NFS or SMB
share's do when its server goes away. What a user checks: local files keep finishing, no
good file ever fails, the mount shows `stalled` in `status --json` and the metrics, its
rows wait uncharged, stuck processes stay within the limit, and once the server answers
every file ends `done`."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fusefs import FuseMount, process_state
from tests.support.processes import (
    Daemon,
    children_of,
    counts,
    free_port,
    link_files,
    mediad,
    wait_until,
)

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]


def settings(mediad_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **mediad_env,
        "MEDIAD_DAEMON_WORKERS": "2",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "3",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "3",
        "MEDIAD_DAEMON_MOUNT_STALL_TIMEOUTS": "2",
        "MEDIAD_DAEMON_MOUNT_STALL_WINDOW_SECONDS": "30",
        "MEDIAD_DAEMON_MOUNT_PROBE_SECONDS": "2",
        "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "1",
        **extra,
    }


class StuckSampler:
    """Counts the daemon's children in state D (killed, held by the mount) all along."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stuck = sum(1 for pid in children_of(self.daemon.pid) if process_state(pid) == "D")
            self.most = max(self.most, stuck)
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


@pytest.fixture
def sampled() -> Iterator[Callable[[Daemon], StuckSampler]]:
    samplers: list[StuckSampler] = []

    def start(daemon: Daemon) -> StuckSampler:
        samplers.append(StuckSampler(daemon))
        return samplers[-1]

    yield start
    for sampler in samplers:
        sampler.stop()


def mount_status(env: dict[str, str], point: Path) -> dict[str, Any] | None:
    done = mediad("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    found = [m for m in report["mounts"] if m["mount"] == str(point)]
    return found[0] if found else None


def stalled(env: dict[str, str], point: Path) -> dict[str, Any] | None:
    mount = mount_status(env, point)
    return mount if mount is not None and mount["state"] == "stalled" else None


def rows(sql: SQL, schema: str, prefix: Path) -> list[tuple[str, str, int, str | None]]:
    return sql(
        f'SELECT path, state, attempts, error_class FROM "{schema}".files '
        "WHERE path LIKE %s ORDER BY path",
        (f"{prefix}/%",),
    )


def enqueue(env: dict[str, str], paths: list[Path]) -> None:
    done = mediad("enqueue", *map(str, paths), env=env)
    assert done.returncode == 0, done.stderr


def test_local_files_finish_and_no_good_file_fails_while_a_mount_stalls(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sampled: Callable[[Daemon], StuckSampler],
    sql: SQL,
    schema: str,
) -> None:
    # More stuck processes allowed than workers: stuck workers are replaced, so local files
    # added while the mount is dead still find workers.
    env = settings(mediad_env, MEDIAD_DAEMON_MAX_STUCK_WORKERS="4")
    share = tmp_path / "share"
    blocked = link_files(small_mp4, share, 6, marker="dead_")
    good_remote = link_files(small_mp4, share, 20, marker="good_")
    fs = fuse_mount(share)
    fs.block(*(p.name for p in blocked))
    # The mount's files first, blocked ones among them, so that good files sit behind
    # them; then half the local files. The other half comes during the stall.
    remote = [fs.path / p.name for p in blocked + good_remote]
    remote.sort(key=lambda p: p.name[-6:])  # interleaved: dead_f00000, good_f00000, ...
    enqueue(env, remote)
    local = link_files(small_mp4, tmp_path / "lib", 20)
    enqueue(env, local[:10])
    daemon = daemons(env=env)
    daemon.wait_started()
    sampler = sampled(daemon)

    def no_failure(condition: Callable[[], Any]) -> Callable[[], Any]:
        def check() -> Any:
            failed = sql(f"SELECT path, error_class FROM \"{schema}\".files WHERE state = 'failed'")
            assert failed == [], failed
            return condition()

        return check

    mount = wait_until(
        no_failure(lambda: stalled(env, fs.path)), 60, "the mount to show as stalled"
    )
    assert mount["fstype"] == fs.fstype and mount["timeouts_recent"] >= 2
    assert '"mount stalled"' in daemon.log()
    enqueue(env, local[10:])
    wait_until(
        no_failure(lambda: [r[1] for r in rows(sql, schema, local[0].parent)].count("done") == 20),
        30,
        "every local file to finish during the stall",
    )
    assert stalled(env, fs.path), "the mount answered before the test released it"
    # While it is stalled, its rows wait uncharged (a good file being read as it stalled
    # may still finish, or go back once its worker's blocked neighbour times out).
    wait_until(
        no_failure(
            lambda: all(
                state == "done" or (state == "pending" and attempts == 0)
                for _path, state, attempts, _cls in rows(sql, schema, fs.path)
            )
        ),
        15,
        "the stalled mount's rows to wait, uncharged",
    )
    assert stalled(env, fs.path)

    fs.release()
    wait_until(no_failure(lambda: counts(sql, schema)["done"] == 46), 90, "every file to end done")
    wait_until(lambda: not stalled(env, fs.path), 20, "the mount to show as ok again")
    assert '"mount resumed"' in daemon.log()
    # Every file, blocked ones included, read in one attempt: nothing was charged for
    # the mount's stall, nor for a neighbour's timeout.
    assert sql(f'SELECT DISTINCT attempts FROM "{schema}".files') == [(1,)]
    assert sampler.stop() <= 4


def test_with_the_default_stall_settings_the_mount_stalls_and_good_files_never_fail(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sampled: Callable[[Daemon], StuckSampler],
    sql: SQL,
    schema: str,
) -> None:
    # The defaults: 3 timeouts in 120 s stall a mount, the stuck limit is the worker count.
    env = {
        **mediad_env,
        "MEDIAD_DAEMON_WORKERS": "2",
        "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "3",
        "MEDIAD_RETRY_MAX_ATTEMPTS": "3",
        "MEDIAD_DAEMON_MOUNT_PROBE_SECONDS": "2",
        "MEDIAD_DAEMON_HEARTBEAT_SECONDS": "1",
    }
    share = tmp_path / "share"
    blocked = link_files(small_mp4, share, 6, marker="dead_")
    good_remote = link_files(small_mp4, share, 20, marker="good_")
    fs = fuse_mount(share)
    fs.block(*(p.name for p in blocked))
    remote = sorted((fs.path / p.name for p in blocked + good_remote), key=lambda p: p.name[-6:])
    enqueue(env, remote)
    local = link_files(small_mp4, tmp_path / "lib", 20)
    enqueue(env, local)
    daemon = daemons(env=env)
    daemon.wait_started()
    sampler = sampled(daemon)

    def never_failed() -> None:
        failed = sql(f"SELECT path, error_class FROM \"{schema}\".files WHERE state = 'failed'")
        assert failed == [], failed

    def local_done() -> bool:
        never_failed()
        return [r[1] for r in rows(sql, schema, local[0].parent)].count("done") == 20

    wait_until(local_done, 30, "every local file to finish")

    def is_stalled() -> dict[str, Any] | None:
        never_failed()
        return stalled(env, fs.path)

    wait_until(is_stalled, 60, "the mount to show as stalled")
    assert sampler.most <= 2
    fs.release()

    def all_done() -> bool:
        never_failed()
        return counts(sql, schema)["done"] == 46

    wait_until(all_done, 90, "every file to end done")
    assert sql(f'SELECT DISTINCT attempts FROM "{schema}".files') == [(1,)]
    assert sampler.stop() <= 2


def test_a_dead_mount_shows_stalled_its_rows_wait_uncharged_and_all_finish_after(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sampled: Callable[[Daemon], StuckSampler],
    sql: SQL,
    schema: str,
) -> None:
    port = free_port()
    env = settings(
        mediad_env,
        MEDIAD_DAEMON_MAX_STUCK_WORKERS="3",
        MEDIAD_METRICS_LISTEN=f"127.0.0.1:{port}",
    )
    share = tmp_path / "share"
    link_files(small_mp4, share, 12)
    fs = fuse_mount(share)
    fs.block()  # every read waits: the server is gone
    enqueue(env, sorted(fs.path.iterdir()))
    daemon = daemons(env=env)
    daemon.wait_started()
    sampler = sampled(daemon)

    wait_until(lambda: stalled(env, fs.path), 60, "the mount to show as stalled")

    def waiting_uncharged() -> bool:
        found = sql(f'SELECT state, attempts, run_after > enqueued_at FROM "{schema}".files')
        return len(found) == 12 and all(r == ("pending", 0, True) for r in found)

    # Given back: pending, not charged, due again later (about the next probe).
    wait_until(waiting_uncharged, 30, "the mount's rows to be given back uncharged")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert f'mediad_mount_stalled{{mount="{fs.path}"}} 1.0' in metrics.decode()
    # And they stay so while it is dead: not claimed again, never charged.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert waiting_uncharged(), sql(f'SELECT path, state, attempts FROM "{schema}".files')
        time.sleep(0.2)
    assert stalled(env, fs.path)

    fs.release()
    wait_until(lambda: counts(sql, schema)["done"] == 12, 90, "every file to end done")
    assert sql(f'SELECT DISTINCT attempts FROM "{schema}".files') == [(1,)]
    assert sampler.stop() <= 3


def test_stuck_processes_never_pass_the_limit_and_sigterm_still_stops_in_time(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    fuse_mount: Callable[[Path], FuseMount],
    sampled: Callable[[Daemon], StuckSampler],
    sql: SQL,
    schema: str,
) -> None:
    grace = 3
    env = settings(
        mediad_env,
        MEDIAD_DAEMON_WORKERS="3",
        MEDIAD_DAEMON_MAX_STUCK_WORKERS="2",
        # Too many timeouts to stall it by count: only a stuck process can.
        MEDIAD_DAEMON_MOUNT_STALL_TIMEOUTS="100",
        MEDIAD_DAEMON_SHUTDOWN_GRACE_SECONDS=str(grace),
    )
    share = tmp_path / "share"
    link_files(small_mp4, share, 10)
    fs = fuse_mount(share)
    fs.block()
    enqueue(env, sorted(fs.path.iterdir()))
    local = link_files(small_mp4, tmp_path / "lib", 10)
    enqueue(env, local)
    daemon = daemons(env=env)
    daemon.wait_started()
    sampler = sampled(daemon)

    wait_until(lambda: '"mount stalled"' in daemon.log(), 60, "the mount to stall")
    wait_until(lambda: counts(sql, schema)["done"] == 10, 30, "the local files")
    # A worker that outlived SIGKILL is held by the mount: that stalls it at once,
    # without reaching mount_stall_timeouts.
    [stall] = [json.loads(line) for line in daemon.log().splitlines() if '"mount stalled"' in line]
    assert stall["why"] == "a killed worker is stuck in it" and stall["mount"] == str(fs.path)
    wait_until(lambda: stalled(env, fs.path), 10, "the next heartbeat to show it stalled")
    wait_until(lambda: sampler.most >= 1, 10, "a process held in D state")
    # Past the limit nothing more goes to the mount, however long it stays dead.
    held_at_limit = len(fs.held())
    end = time.monotonic() + 8
    while time.monotonic() < end:
        assert len(fs.held()) <= held_at_limit
        time.sleep(0.5)
    assert 1 <= sampler.most <= 2

    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=grace + 5) == 0  # raises past grace + 5 s
    assert sampler.stop() == 2
    # Rows read by the stuck workers (held back) and the rest: released, none running.
    assert counts(sql, schema)["running"] == 0
    assert counts(sql, schema)["failed"] == 0
    [left] = [
        json.loads(line)
        for line in daemon.log().splitlines()
        if '"left behind stuck processes"' in line
    ]
    assert left["processes"] == 2 and left["mounts"] == [str(fs.path)]
    pids = left["pids"]
    assert all(process_state(pid) == "D" for pid in pids)
    fs.release()
    wait_until(lambda: all(process_state(pid) in (None, "Z") for pid in pids), 30, "them to exit")


def test_a_library_entirely_on_a_network_mount_uses_every_worker(
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
        "MEDIAD_DAEMON_WORKERS": "2",
        # Small claims: the backlog is many claims long, as a big library's is, so the
        # daemon cannot see at once that nothing else waits.
        "MEDIAD_DAEMON_BATCH_SIZE": "4",
        "MEDIAD_METRICS_LISTEN": f"127.0.0.1:{port}",
    }
    share = tmp_path / "share"
    link_files(small_mp4, share, 80)
    fs = fuse_mount(share)
    fs.lag(30)  # a slow NAS: every read answers 30 ms late
    enqueue(env, sorted(fs.path.iterdir()))
    daemon = daemons(env=env)
    daemon.wait_started()

    def both_busy() -> bool:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            return False
        return 'mediad_workers{activity="busy"} 2.0' in text.decode()

    wait_until(both_busy, 60, "both workers to read from the mount at once", interval=0.1)
    wait_until(lambda: counts(sql, schema)["done"] == 80, 120, "every file")
