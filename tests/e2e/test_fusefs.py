"""The stalling FUSE filesystem of tests/support/fusefs.py against the real kernel: what
the tests of hung and slow network mounts rely on. Whatever may block runs in a child
process: a test process stuck in a held read would never reach its own teardown."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fusefs import FSTYPE, FuseMount, mount_types, mounted, process_state, unavailable
from tests.support.processes import wait_until

READ = "import sys; print(len(open(sys.argv[1], 'rb').read()))"
STAT = "import os, sys; print(os.stat(sys.argv[1]).st_size)"
FILES = {"a.bin": 300_000, "b.bin": 70_000, "sub/c.bin": 5_000}

Spawn = Callable[[str, Path], "subprocess.Popen[str]"]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    for name, size in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(size))
    return root


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Children that touch the mount. Set up before the mount, so they are reaped after it
    released them."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, path: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
        )
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.communicate(timeout=30)


@pytest.fixture
def fs(spawn: Spawn, fuse_mount: Callable[[Path], FuseMount], source: Path) -> FuseMount:
    return fuse_mount(source)


def finished(child: subprocess.Popen[str], timeout: float = 15) -> str:
    """The child's output once it exited by itself, polled."""
    wait_until(lambda: child.poll() is not None, timeout, "the child to finish")
    out, _ = child.communicate()
    assert child.returncode == 0
    return out.strip()


def still_running_after(child: subprocess.Popen[str], seconds: float) -> bool:
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_the_mount_shows_the_source_and_its_type(fs: FuseMount, source: Path) -> None:
    assert mount_types()[str(fs.path)] == FSTYPE == "fuse.mediad-test"
    for name, size in FILES.items():
        assert (fs.path / name).read_bytes() == (source / name).read_bytes()
        assert (fs.path / name).stat().st_size == size
    assert sorted(os.listdir(fs.path)) == sorted(os.listdir(source))
    assert not (fs.path / "missing").exists()


@pytest.mark.slow
def test_a_blocked_read_waits_until_release(fs: FuseMount, spawn: Spawn) -> None:
    fs.block("a.bin")
    reader = spawn(READ, fs.path / "a.bin")
    wait_until(lambda: fs.held() == [("read", "a.bin")], 15, "the read to reach the server")
    assert still_running_after(reader, 1.0)

    # Only that file's reads are held, not its stat nor other files.
    assert finished(spawn(READ, fs.path / "b.bin")) == str(FILES["b.bin"])
    assert finished(spawn(STAT, fs.path / "a.bin")) == str(FILES["a.bin"])
    assert reader.poll() is None

    fs.release()
    assert finished(reader) == str(FILES["a.bin"])
    assert fs.held() == []


@pytest.mark.slow
def test_blocking_every_file_then_their_stat(fs: FuseMount, spawn: Spawn) -> None:
    fs.block()
    readers = [spawn(READ, fs.path / name) for name in ("a.bin", "sub/c.bin")]
    wait_until(
        lambda: sorted(fs.held()) == [("read", "a.bin"), ("read", "sub/c.bin")],
        15,
        "both reads to reach the server",
    )
    assert finished(spawn(STAT, fs.path / "b.bin")) == str(FILES["b.bin"])

    fs.block(stat=True)
    stat = spawn(STAT, fs.path / "sub" / "c.bin")
    wait_until(lambda: ("stat", "sub") in fs.held(), 15, "the lookup to reach the server")
    assert still_running_after(stat, 1.0)
    assert all(reader.poll() is None for reader in readers)

    fs.release()
    assert finished(stat) == str(FILES["sub/c.bin"])
    assert [finished(reader) for reader in readers] == [
        str(FILES["a.bin"]),
        str(FILES["sub/c.bin"]),
    ]


@pytest.mark.slow
def test_sigkill_leaves_a_blocked_reader_in_d_state_until_release(
    fs: FuseMount, spawn: Spawn
) -> None:
    fs.block("a.bin")
    reader = spawn(READ, fs.path / "a.bin")
    wait_until(lambda: fs.held(), 15, "the read to reach the server")
    assert process_state(reader.pid) == "S"

    reader.kill()
    wait_until(lambda: process_state(reader.pid) == "D", 15, "the killed reader to be in D state")
    assert still_running_after(reader, 1.0)
    assert process_state(reader.pid) == "D"

    fs.release()
    wait_until(lambda: reader.poll() is not None, 15, "the killed reader to die")
    assert reader.returncode == -signal.SIGKILL


def test_lag_delays_every_read(fs: FuseMount) -> None:
    fs.lag(50)
    fd = os.open(fs.path / "a.bin", os.O_RDONLY)
    try:
        start = time.monotonic()
        chunks = [os.read(fd, 4096) for _ in range(3)]
        elapsed = time.monotonic() - start
    finally:
        os.close(fd)
    assert all(len(chunk) == 4096 for chunk in chunks)
    assert elapsed >= 3 * 0.050


def test_counts_show_what_the_mount_was_asked(fs: FuseMount) -> None:
    """Nothing is cached: each name on the way is looked up again, and each read and its
    size reach the server as asked."""
    before = fs.counts()
    os.stat(fs.path / "sub" / "c.bin")  # `sub` and `c.bin` looked up, then the stat
    fd = os.open(fs.path / "a.bin", os.O_RDONLY)  # `a.bin` looked up, then opened
    try:
        os.pread(fd, 4096, 0)
        os.pread(fd, 10_000, 4096)
    finally:
        os.close(fd)
    after = fs.counts()
    asked = {op: after[op] - before[op] for op in after}
    assert asked["getattr"] == 4
    assert (asked["open"], asked["read"], asked["read_bytes"]) == (1, 2, 14_096)
    assert asked["readdir"] == asked["statfs"] == 0


@pytest.mark.slow
def test_leaving_with_a_blocked_reader_leaves_no_mount_and_no_process(
    source: Path, spawn: Spawn
) -> None:
    if reason := unavailable():
        pytest.skip(reason)
    with mounted(source) as fs:
        fs.block(stat=True)
        reader = spawn(READ, fs.path / "a.bin")
        wait_until(lambda: fs.held(), 15, "the lookup to reach the server")
        server, path = fs.pid, fs.path
    assert str(path) not in mount_types()
    assert process_state(server) is None
    assert not path.exists()
    assert finished(reader) == str(FILES["a.bin"])


@pytest.mark.slow
def test_the_server_cleans_up_when_the_test_process_dies(
    source: Path, spawn: Spawn, request: pytest.FixtureRequest
) -> None:
    if reason := unavailable():
        pytest.skip(reason)
    code = (
        "import sys, time; from pathlib import Path; from tests.support.fusefs import mounted\n"
        "with mounted(Path(sys.argv[1])) as fs:\n"
        "    fs.block()\n"
        "    print(fs.path, fs.pid, flush=True)\n"
        "    while not fs.held():\n"
        "        time.sleep(0.05)\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code, str(source)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        mountpoint, server = line_from(owner).split()
        request.addfinalizer(lambda: remove_leftovers(Path(mountpoint)))
        reader = spawn(READ, Path(mountpoint) / "a.bin")
        assert line_from(owner) == "held\n"
    finally:
        owner.kill()
        owner.communicate()
    assert finished(reader) == str(FILES["a.bin"])
    wait_until(lambda: mountpoint not in mount_types(), 15, "the mount to go")
    wait_until(lambda: process_state(int(server)) in (None, "Z"), 15, "the server to exit")


def remove_leftovers(mountpoint: Path) -> None:
    """What `mounted` removes on leaving, for an owner that died first."""
    with contextlib.suppress(AssertionError, OSError):
        wait_until(lambda: str(mountpoint) not in mount_types(), 15, "the mount to go")
        mountpoint.rmdir()
        (mountpoint.parent / "server.log").unlink()
        mountpoint.parent.rmdir()


def line_from(child: subprocess.Popen[str], timeout: float = 15) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    assert ready, f"the child printed nothing in {timeout} s"
    return child.stdout.readline()
