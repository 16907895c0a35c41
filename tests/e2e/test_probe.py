"""The probe of a stalled mount, with real child processes.

A FIFO with no writer blocks open() until a writer comes, which stands in for a file on a
dead mount: the probe must answer "timed_out" at its deadline, and nothing in the parent
may wait for the child."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mediad.daemon.probe import STUCK_AFTER_SECONDS, Probe
from mediad.mounts import read_mount_table
from tests.support.fusefs import FSTYPE, FuseMount, process_state
from tests.support.processes import wait_until


def finished(probe: Probe) -> str | None:
    status = probe.poll()
    return None if status == "running" else status


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def blocked(pid: int) -> bool:
    """Running the probe's script (not still starting) and asleep in the kernel."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"-c" in argv and process_state(pid) == "S"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "dead.mkv"
    os.mkfifo(path)
    return path


def test_a_readable_file_answers_ok(tmp_path: Path) -> None:
    media = tmp_path / "a.mkv"
    media.write_bytes(b"\x1a\x45\xdf\xa3" * 2048)
    probe = Probe.start(str(tmp_path), str(media), 10.0)
    assert wait_until(lambda: finished(probe), 10, "the probe to finish") == "ok"
    assert probe.mount_answered()
    assert probe.reap() and gone(probe.pid)


def test_statfs_alone_when_no_file_is_named(tmp_path: Path) -> None:
    probe = Probe.start(str(tmp_path), "", 10.0)
    assert wait_until(lambda: finished(probe), 10, "the probe to finish") == "ok"


def test_a_missing_file_fails_but_the_mount_answered(tmp_path: Path) -> None:
    """The file that timed out was deleted while the mount was stalled: the filesystem
    says so, which is an answer, so the mount may resume."""
    probe = Probe.start(str(tmp_path), str(tmp_path / "gone.mkv"), 10.0)
    assert wait_until(lambda: finished(probe), 10, "the probe to finish") == "failed"
    assert probe.error.startswith("open ENOENT")
    assert probe.mount_answered()


def test_a_missing_mount_point_fails_and_the_mount_did_not_answer(tmp_path: Path) -> None:
    probe = Probe.start(str(tmp_path / "unmounted"), str(tmp_path / "unmounted/a.mkv"), 10.0)
    assert wait_until(lambda: finished(probe), 10, "the probe to finish") == "failed"
    assert probe.error.startswith("statfs ENOENT")
    assert not probe.mount_answered()


def test_a_non_utf8_file_name_is_probed_by_its_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.mkv")
    (tmp_path / name).write_bytes(b"data")
    probe = Probe.start(str(tmp_path), str(tmp_path / name), 10.0)
    assert wait_until(lambda: finished(probe), 10, "the probe to finish") == "ok"


def test_a_blocked_read_times_out_at_the_deadline_and_the_child_is_reaped(fifo: Path) -> None:
    started = time.monotonic()
    probe = Probe.start(str(fifo.parent), str(fifo), 0.5)
    assert probe.poll() == "running"
    assert wait_until(lambda: finished(probe), 10, "the deadline") == "timed_out"
    assert time.monotonic() - started >= 0.5
    assert not probe.mount_answered()
    # Killed at the deadline; a FIFO wait is interruptible, so the child goes at once.
    assert wait_until(probe.reap, 5, "the killed probe to be reaped")
    assert gone(probe.pid)
    assert not probe.is_stuck()
    assert probe.poll() == "timed_out"  # the answer stays


def test_kill_never_blocks_and_the_child_is_reaped_afterwards(fifo: Path) -> None:
    probe = Probe.start(str(fifo.parent), str(fifo), 60.0)
    wait_until(lambda: blocked(probe.pid), 10, "the probe to block in open()")
    began = time.monotonic()
    probe.kill()
    probe.kill()  # twice is harmless
    assert time.monotonic() - began < 10  # a kill that waited would wait for good
    assert wait_until(probe.reap, 5, "the killed probe to be reaped")
    assert gone(probe.pid)
    assert not probe.is_stuck()
    probe.kill()  # after reaping: no signal to a pid that may be reused
    assert finished(probe) == "failed"


def test_poll_never_blocks_while_the_child_hangs(fifo: Path) -> None:
    probe = Probe.start(str(fifo.parent), str(fifo), 60.0)
    try:
        began = time.monotonic()
        for _ in range(100):
            assert probe.poll() == "running"
        assert not probe.reap()
        assert time.monotonic() - began < 10  # none of them waited for the child
    finally:
        probe.kill()
        wait_until(probe.reap, 5, "the killed probe to be reaped")


@pytest.mark.slow
def test_a_probe_of_a_dead_fuse_mount_is_stuck_until_the_server_answers(
    fuse_mount: Callable[[Path], FuseMount], tmp_path: Path
) -> None:
    """A read the FUSE server holds survives SIGKILL (the child stays in D state): the
    probe answers "timed_out" at its deadline all the same, counts as stuck, and is reaped
    once the server answers. Then a new probe finds the mount alive."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.mkv").write_bytes(b"\x1a\x45\xdf\xa3" * 4096)
    fs = fuse_mount(source)
    media = fs.path / "a.mkv"
    mount = read_mount_table().for_path(str(media))
    assert (mount.point, mount.fstype, mount.network) == (str(fs.path), FSTYPE, True)

    fs.block("a.mkv")
    probe = Probe.start(mount.point, str(media), 1.0)
    assert wait_until(lambda: finished(probe), 10, "the deadline") == "timed_out"
    assert fs.held() == [("read", "a.mkv")]
    assert wait_until(probe.is_stuck, STUCK_AFTER_SECONDS + 10, "the probe to count as stuck")
    assert process_state(probe.pid) == "D"
    assert not probe.reap()

    fs.release()
    assert wait_until(probe.reap, 10, "the stuck probe to be reaped once the server answers")
    assert not probe.is_stuck() and gone(probe.pid)
    assert probe.poll() == "timed_out"

    again = Probe.start(mount.point, str(media), 10.0)
    assert wait_until(lambda: finished(again), 10, "the second probe") == "ok"
    assert again.mount_answered()
