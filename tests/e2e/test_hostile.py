"""Hostile input through the running daemon: whatever a row names, mediad classifies it,
opens nothing outside the roots, never blocks and never dies."""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from tests.support.media import make_corpus
from tests.support.processes import Daemon, counts, mediad, wait_until

pytestmark = pytest.mark.slow

SQL = Callable[..., list[tuple[Any, ...]]]
IN_ACCESS, IN_OPEN = 0x1, 0x20


class OpenWatch:
    """inotify on a directory: did anything open or read a file in it?"""

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        watch = self._libc.inotify_add_watch(self.fd, bytes(directory), IN_OPEN | IN_ACCESS)
        assert watch >= 0

    def opened(self) -> list[str]:
        names = []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return names
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
            names.append(name)
            offset += 16 + length
        return names

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A media root full of traps, an outside directory with a secret, the expected classes."""
    root, outside = tmp_path / "media", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = corpus / next(n for n in make_corpus(corpus) if n.endswith(".mp4"))
    secret = outside / "secret.mp4"
    shutil.copy(good, secret)
    expected: dict[str, str] = {}

    def add(name: str, klass: str) -> Path:
        expected[str(root / name) if not name.startswith("/") else name] = klass
        return root / name

    os.mkfifo(add("fifo.mp4", "not_regular"))
    add("adir.mp4", "not_regular").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(add("socket.mp4", "not_regular")))
    os.symlink(root / "loop_b.mp4", add("loop_a.mp4", "not_found"))
    os.symlink(root / "loop_a.mp4", root / "loop_b.mp4")
    expected[str(root / "loop_b.mp4")] = "not_found"
    os.symlink(root / "nowhere.mp4", add("broken.mp4", "not_found"))
    os.symlink(secret, add("escape.mp4", "outside_roots"))
    expected[f"{root}/../outside/secret.mp4"] = "outside_roots"
    expected[str(secret)] = "outside_roots"
    expected["/dev/zero"] = "outside_roots"
    expected["/etc/shadow"] = "outside_roots"
    add("empty.mp4", "unsupported").write_bytes(b"")
    add("random.mkv", "unsupported").write_bytes(random.Random(1).randbytes(65536))
    add("text.mp4", "unsupported").write_text("this is not a video\n" * 100)
    with open(add("sparse.mkv", "unsupported"), "wb") as handle:
        handle.truncate(4 * 1024**3)  # 4 GiB of hole: MediaInfo must only read headers
    for name in ("with space.mp4", "new\nline.mp4", "ünïcødé.mp4"):
        shutil.copy(good, add(name, "done"))
    flipped = bytearray(good.read_bytes())
    rng = random.Random(3)
    for _ in range(200):
        flipped[rng.randrange(len(flipped))] ^= 0xFF
    add("bitflipped.mp4", "done_or_failed").write_bytes(bytes(flipped))
    third = good.read_bytes()[: good.stat().st_size // 3]
    add("truncated.mp4", "done_or_failed").write_bytes(third)
    # Swapped between enqueue and extraction: the fixture's caller enqueues, then swaps.
    shutil.copy(good, add("swapped.mp4", "outside_roots"))
    try:
        yield root, outside, expected
    finally:
        sock.close()


def test_hostile_rows_are_classified_and_nothing_outside_is_opened(
    hostile: tuple[Path, Path, dict[str, str]],
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
) -> None:
    root, outside, expected = hostile
    env = {**mediad_env, "MEDIAD_EXTRACT_ROOTS": str(root), "MEDIAD_EXTRACT_TIMEOUT_SECONDS": "20"}
    enqueued = mediad("enqueue", *expected, env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    swapped = root / "swapped.mp4"
    swapped.unlink()
    os.symlink(outside / "secret.mp4", swapped)
    non_utf8 = os.fsencode(root) + b"/caf\xe9.mp4"
    with open(non_utf8, "wb") as handle:
        handle.write(b"\0" * 10)
    unstorable = subprocess.run(
        [sys.executable, "-m", "mediad", "enqueue", non_utf8],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unstorable.returncode == 1 and "not valid UTF-8" in unstorable.stderr

    watch = OpenWatch(outside)
    try:
        daemon = daemons(env=env)
        daemon.wait_started()
        total = len(expected) + 1
        wait_until(
            lambda: counts(sql, schema)["done"] + counts(sql, schema)["failed"] == total,
            90,
            "every hostile row to finish",
        )
        assert watch.opened() == [], "a file outside the roots was opened"
        (outside / "secret.mp4").read_bytes()  # the control: the watch does see an open
        assert "secret.mp4" in watch.opened()
    finally:
        watch.close()
    assert daemon.process.poll() is None, daemon.log()
    rows = {
        path: (state, klass, error)
        for path, state, klass, error in sql(
            f'SELECT path, state, error_class, error FROM "{schema}".files'
        )
    }
    for path, want in expected.items():
        state, klass, error = rows[path]
        if want == "done":
            assert state == "done", (path, klass, error)
        elif want == "done_or_failed":
            assert state == "done" or (state == "failed" and klass and error), (path, state)
        else:
            assert (state, klass) == ("failed", want), (path, state, klass, error)
            assert error
    assert rows[rf"{root}/caf\xe9.mp4"][:2] == ("failed", "bad_path")
    # Rows keep the name the application gave; what was actually looked at is beside it.
    [(resolved,)] = sql(
        f'SELECT resolved_path FROM "{schema}".files WHERE path = %s', [str(root / "escape.mp4")]
    )
    assert resolved == str(outside / "secret.mp4")
    assert daemon.stop() == 0


def test_without_roots_devices_and_fifos_are_refused_without_blocking(
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    assert (
        mediad(
            "enqueue", "/dev/zero", "/dev/null", str(fifo), str(tmp_path), env=mediad_env
        ).returncode
        == 0
    )
    result = mediad("extract", "--json", env=mediad_env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sql(f'SELECT DISTINCT state, error_class FROM "{schema}".files') == [
        ("failed", "not_regular")
    ]


def test_scan_records_non_utf8_names_instead_of_skipping_them(
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "fine.mp4").write_bytes(b"x")
    with open(os.fsencode(tree) + b"/bad\xff.mp4", "wb") as handle:
        handle.write(b"x")
    result = mediad("scan", str(tree), env=mediad_env)
    assert result.returncode == 1
    assert "not UTF-8" in result.stdout
    rows = sql(f'SELECT path, state, error_class FROM "{schema}".files ORDER BY path')
    assert rows == [
        (rf"{tree}/bad\xff.mp4", "failed", "bad_path"),
        (f"{tree}/fine.mp4", "pending", None),
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_an_unreadable_file_fails_with_permission() -> None:
    """Root reads any file, so the gate runs as `nobody` here, as the service user would."""
    base = Path(tempfile.mkdtemp(prefix="mediad-perm-"))
    try:
        base.chmod(0o755)
        locked = base / "locked.mp4"
        locked.write_bytes(b"\0" * 100)
        locked.chmod(0o000)
        # Fork and drop to nobody in the child, rather than exec a Python as nobody: the
        # interpreter may live where nobody cannot read it (a pyenv under /root).
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only system calls and the gate, then _exit
            code = 1
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                outcome = extract(str(locked), ExtractOptions())
                os.write(write_end, str(getattr(outcome, "failure_class", outcome)).encode())
                code = 0
            except BaseException as exc:
                os.write(write_end, repr(exc).encode())
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            said = answer.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, said
        assert said == "permission"
    finally:
        shutil.rmtree(base, ignore_errors=True)
