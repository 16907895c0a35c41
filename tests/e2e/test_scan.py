"""`mediad scan` on real storage: a tree on a mount that stops answering (a FUSE
filesystem whose stat blocks, tests/support/fusefs.py) is reported, not waited on forever."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad import walker
from mediad.scan import Frames
from tests.support.fusefs import FuseMount, process_state
from tests.support.processes import mediad, wait_until

STALL = 3
# Starting the command, the database and the walk on a busy machine, beyond the stall.
SLACK = 7


def make_files(directory: Path, *names: str) -> list[str]:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_bytes(b"not media")
    return [str(directory / name) for name in names]


def walkers_of(tree: Path) -> list[int]:
    """The walk processes (mediad/walker.py) given this tree."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"walker.py") for a in argv) and os.fsencode(tree) in argv:
            found.append(int(entry.name))
    return found


def queued(sql: Callable[..., list[tuple[Any, ...]]], schema: str) -> dict[str, str]:
    return dict(sql(f'SELECT path, state FROM "{schema}".files'))  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_scan_names_the_tree_that_gives_no_answer_and_keeps_the_rest(
    tmp_path: Path,
    mediad_env: dict[str, str],
    fuse_mount: Callable[[Path], FuseMount],
    sql: Callable[..., list[tuple[Any, ...]]],
    schema: str,
) -> None:
    local = make_files(tmp_path / "local", "a.mkv", "b.mkv")
    source = tmp_path / "nas"
    make_files(source / "albums", "one.flac", "two.flac")
    make_files(source / "shows", "s01e01.mkv", "s01e02.mkv")
    fs = fuse_mount(source)
    fs.block("shows/s01e01.mkv", "shows/s01e02.mkv", stat=True)

    started = time.monotonic()
    scanned = mediad(
        "scan", "--stall-seconds", str(STALL), str(tmp_path / "local"), str(fs.path),
        env=mediad_env, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    assert scanned.returncode == 1, scanned.stderr
    assert "Traceback" not in scanned.stderr
    assert f"unreachable: {fs.path}/shows (no answer for {STALL} s)" in scanned.stdout
    assert "4 files: 4 new" in scanned.stdout
    assert STALL <= elapsed < STALL + SLACK, elapsed
    good = [*local, f"{fs.path}/albums/one.flac", f"{fs.path}/albums/two.flac"]
    assert queued(sql, schema) == dict.fromkeys(good, "pending")

    # The walk is still blocked in the mount: the command left without waiting for it.
    assert fs.held(), "the stat the walk was blocked in"
    stuck = walkers_of(fs.path)
    assert stuck, "the walk process, blocked in the dead mount"
    fs.release()
    wait_until(
        lambda: all(process_state(pid) in (None, "Z") for pid in stuck),
        15,
        "the killed walk to end once the mount answers",
    )


@pytest.mark.slow
def test_a_pause_shorter_than_the_stall_does_not_stop_the_scan(
    tmp_path: Path,
    mediad_env: dict[str, str],
    fuse_mount: Callable[[Path], FuseMount],
    sql: Callable[..., list[tuple[Any, ...]]],
    schema: str,
) -> None:
    source = tmp_path / "nas"
    make_files(source / "shows", "s01e01.mkv", "s01e02.mkv")
    fs = fuse_mount(source)
    fs.block("shows/s01e02.mkv", stat=True)

    command = subprocess.Popen(
        [sys.executable, "-m", "mediad", "scan", "--stall-seconds", "5", str(fs.path)],
        env=mediad_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(fs.held, 30, "the scan to reach the slow file")
        time.sleep(2)  # a slow disk spinning up: a pause, well under the stall
        fs.release()
        out, err = command.communicate(timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()

    assert command.returncode == 0, err
    assert "unreachable" not in out
    assert "2 files: 2 new" in out
    assert len(queued(sql, schema)) == 2


def test_messages_split_anywhere_in_the_pipe_come_out_whole() -> None:
    sent: list[tuple[Any, ...]] = [
        ("beat", "/media/caf\udce9", 3),
        ("batch", [("/media/a.mkv", 10, 1_700_000_000_000_000)] * 50),
        ("done",),
    ]
    stream = b"".join(
        walker.HEADER.pack(len(data)) + data for data in (pickle.dumps(m) for m in sent)
    )
    frames = Frames()

    received = [m for i in range(0, len(stream), 7) for m in frames.feed(stream[i : i + 7])]

    assert received == sent
    assert frames.buffer == b""
