"""Walking media trees: every regular file with its size and mtime, in batches.

The walk runs in a process of its own (mediad/walker.py): a stat on a dead network or
FUSE mount blocks, and no signal interrupts it. Here the command follows the walk; when it
makes no progress for `stall_seconds`, the command names the directory it is stuck in, and
kills it without waiting for it (a process blocked in such a stat dies only once the mount
answers). What was found before is kept.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from mediad import walker
from mediad.errors import MediadError, UsageError
from mediad.models import ScanEntry
from mediad.paths import escaped, is_storable
from mediad.walker import BEAT_SECONDS, STALL_SECONDS

log = structlog.get_logger("mediad.scan")

READ_SIZE = 1 << 20


class ScanFailed(MediadError):
    """The walk itself broke (not a directory it cannot read: those are counted)."""


@dataclass
class ScanReport:
    seen: int = 0
    unreadable_dirs: int = 0
    bad_names: int = 0  # not valid UTF-8: recorded as failed rows, class bad_path
    # The directory the walk was in when it stopped answering; the scan ended there.
    unreachable: str | None = None


# Where the files found go (mediad.db.intake.scan_upsert on a database): a batch and its
# priority in, (inserted, queued again) out.
Upsert = Callable[[Sequence[ScanEntry], int], tuple[int, int]]


def scan_into(
    upsert: Upsert, dirs: Sequence[str], priority: int, stall_seconds: float = STALL_SECONDS
) -> tuple[int, int, ScanReport]:
    """Walk the trees and queue what is new or changed, batch by batch: (new, changed,
    report). `mediad scan` and `mediad run --scan` both."""
    report = ScanReport()
    inserted = requeued = 0
    for batch in scan_batches(list(dirs), report, stall_seconds):
        new, again = upsert(batch, priority)
        inserted += new
        requeued += again
    unchanged = report.seen - report.bad_names - inserted - requeued
    log.info(
        "scan finished" if report.unreachable is None else "scan stopped",
        files=report.seen,
        new=inserted,
        changed=requeued,
        unchanged=unchanged,
        bad_names=report.bad_names,
        unreadable_dirs=report.unreadable_dirs,
        unreachable=None if report.unreachable is None else escaped(report.unreachable),
    )
    return inserted, requeued, report


class Frames:
    """Messages from the walk, rebuilt from the pipe's bytes as they arrive."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self.buffer += data
        messages: list[tuple[Any, ...]] = []
        start = 0
        size = walker.HEADER.size
        while len(self.buffer) - start >= size:
            (length,) = walker.HEADER.unpack_from(self.buffer, start)
            if len(self.buffer) - start - size < length:
                break
            messages.append(pickle.loads(self.buffer[start + size : start + size + length]))
            start += size + length
        del self.buffer[:start]
        return messages


def scan_batches(
    roots: list[str], report: ScanReport, stall_seconds: float = STALL_SECONDS
) -> Iterator[list[ScanEntry]]:
    """The files under the roots, in batches as the walk finds them. Sets
    `report.unreachable` and stops if the walk makes no progress for `stall_seconds`."""
    absolute = [os.path.abspath(root) for root in roots]
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                walker.__file__,
                str(write_fd),
                str(BEAT_SECONDS),
                *absolute,
            ],
            pass_fds=(write_fd,),
            # Nothing of the command's own: a walk left blocked would hold its output
            # open, and whoever reads it (a pipe, a test, tee) would wait with it.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        yield from _follow(read_fd, absolute[0], report, stall_seconds)
    finally:
        os.close(read_fd)
        _let_go(child)


def _follow(
    fd: int, first: str, report: ScanReport, stall_seconds: float
) -> Iterator[list[ScanEntry]]:
    frames = Frames()
    where, steps = first, -1
    progressed = time.monotonic()
    poller = select.poll()  # not select(): a daemon may hold descriptors above 1023
    poller.register(fd, select.POLLIN)
    while True:
        wait = max(0.0, progressed + stall_seconds - time.monotonic())
        if not poller.poll(wait * 1000):
            report.unreachable = where
            log.error(
                "a directory does not answer: scan stopped",
                path=escaped(where),
                stall_seconds=stall_seconds,
            )
            return
        data = os.read(fd, READ_SIZE)
        if not data:
            raise ScanFailed("scan: the walk ended without finishing")
        for message in frames.feed(data):
            kind = message[0]
            if kind == "beat":
                where = str(message[1])
                if message[2] != steps:
                    steps = int(message[2])
                    progressed = time.monotonic()
            elif kind == "batch":
                yield _entries(message[1], report)
                # The time spent storing the batch is not the walk's: its clock restarts.
                progressed = time.monotonic()
            elif kind == "unreadable":
                report.unreadable_dirs += 1
                log.warning(
                    "cannot read directory", path=escaped(str(message[1])), error=message[2]
                )
            elif kind == "not_a_directory":
                raise UsageError(f"{escaped(str(message[1]))}: not a directory")
            elif kind == "error":
                raise ScanFailed(f"scan: {message[1]}")
            elif kind == "done":
                return


def _entries(files: list[walker.File], report: ScanReport) -> list[ScanEntry]:
    entries: list[ScanEntry] = []
    for path, size, mtime_us, sidecar_size, sidecar_mtime_us in files:
        report.seen += 1
        if is_storable(path):
            entries.append(ScanEntry(path, size, mtime_us, False, sidecar_size, sidecar_mtime_us))
            continue
        report.bad_names += 1
        log.warning(
            "a file name is not valid UTF-8: recorded as failed (bad_path)", path=escaped(path)
        )
        entries.append(ScanEntry(escaped(path), size, mtime_us, True))
    return entries


def _let_go(child: subprocess.Popen[bytes]) -> None:
    """End the walk without ever waiting on it: a process blocked in a dead mount's stat
    stays until the mount answers, and a wait would stay with it. A thread reaps it
    whenever it goes; being a daemon thread, it does not hold up the exit either."""
    if child.poll() is not None:
        return
    with contextlib.suppress(OSError):
        child.send_signal(signal.SIGKILL)
    threading.Thread(target=child.wait, name="scan-reaper", daemon=True).start()
