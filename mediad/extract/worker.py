"""A worker process: receives jobs on its pipe (several per message), reads them one at a
time in the order sent, sends the outcomes back.

Never touches the database. Started by the pool with a `spawn` context, so it inherits
no threads, connections or locks from the supervisor.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from mediad.errors import FailureClass
from mediad.extract import engine
from mediad.extract.engine import Engine
from mediad.extract.limits import (
    die_with_parent,
    init_signals,
    limit_cpu_for_next_file,
    limit_memory,
)
from mediad.extract.mediainfo import library_version, prepare
from mediad.extract.options import ExtractOptions
from mediad.extract.reader import prepare as load_reader
from mediad.extract.record import record_of
from mediad.extract.wire import (
    BOOT_ERROR,
    BOOT_ERROR_EXIT,
    NO_DEVICE,
    READING_DEVICE,
    READING_ID,
    READING_SINCE,
    READY,
    WITHDRAW,
    WITHDRAWN,
    Files,
    Withdraw,
    answer,
    readable,
    receive,
    send,
)
from mediad.models import Extracted, Failure, Job, Record


@dataclass(frozen=True)
class WorkerSettings:
    options: ExtractOptions
    memory_limit_mb: int
    supervisor_pid: int
    cpu_seconds: float = 0.0


# A file faster than this may wait for the next one's result before it is sent; a slower
# one is sent at once (so a slow file never holds back an earlier result for long).
FAST_FILE_SECONDS = 0.02


def _read(job: Job, settings: WorkerSettings, reading: Any, reader: Engine) -> tuple[Any, float]:
    """One file: what goes back to the supervisor (a record or a failure), and how long
    it took. `reading` names the file from before it is opened until its answer is made:
    a crash or a hang anywhere in between charges this file, not the files around it.
    Once the file is open, its device is published too: a read that hangs in a network
    filesystem is then known by the mount it hangs on."""
    limit_cpu_for_next_file(settings.cpu_seconds)
    started = time.monotonic()
    reading[READING_DEVICE] = NO_DEVICE
    reading[READING_SINCE] = time.monotonic_ns()
    reading[READING_ID] = job.id

    def opened(st: os.stat_result) -> None:
        reading[READING_DEVICE] = st.st_dev

    message: Record | Failure
    try:
        outcome = reader.extract(job, settings.options, opened)
        # A record is what the write-back reads: made here, not in the supervisor.
        message = record_of(job, outcome) if isinstance(outcome, Extracted) else outcome
    except MemoryError:
        message = Failure(FailureClass.OUT_OF_MEMORY, "ran out of memory (daemon.memory_limit_mb)")
    except Exception as exc:
        # A bug in mediad's own handling of this one file: the file fails with what went
        # wrong, and the worker, with the results it holds for other files, lives on.
        message = Failure(FailureClass.INTERNAL, unexpected_error(exc))
    reading[READING_ID] = 0
    return message, time.monotonic() - started


def unexpected_error(exc: Exception) -> str:
    """The row's error for an exception no reader expected, in one bounded line."""
    text = " ".join(str(exc).split())[:300]
    return (
        f"mediad could not read this file's metadata ({type(exc).__name__}: {text}); "
        "a bug, please report it"
    )


def _boot(conn: Connection, options: ExtractOptions) -> Engine:
    """Load what reads files, before the first file (which then pays nothing for it)."""
    try:
        prepare(
            library_file=options.library_file,
            parse_speed=options.parse_speed,
            full=options.full_document,
        )
    except Exception as exc:  # any failure to load is a boot error, whatever its type
        # Not only a missing file (OSError): a library that loads but is not MediaInfo
        # (AttributeError), or whose version cannot be read (RuntimeError). Dying with a
        # traceback instead would look like a crash, and the pool would restart it forever.
        library = options.library_file or "pymediainfo"
        send(conn, (BOOT_ERROR, f"cannot load MediaInfo from {library}: {exc}"))
        sys.exit(BOOT_ERROR_EXIT)
    if options.second_reader and options.engine == "mediainfo":
        try:
            load_reader()
        except Exception as exc:  # as for MediaInfo: not loading is the worker's error
            send(
                conn,
                (
                    BOOT_ERROR,
                    f"cannot load the second reader (python-exiv2): {exc}; "
                    "extract.second_reader = false runs without it",
                ),
            )
            sys.exit(BOOT_ERROR_EXIT)
    try:
        return engine.load()
    except Exception as exc:  # only an injected engine can fail to load: the same reason
        send(conn, (BOOT_ERROR, f"cannot load the engine {engine.injected()}: {exc}"))
        sys.exit(BOOT_ERROR_EXIT)


def _withdraw(conn: Connection, waiting: deque[Job], ids: set[int]) -> None:
    """Hand back the withdrawn files not started yet; the others are read as sent."""
    handed = [job.id for job in waiting if job.id in ids]
    if handed:
        kept = [job for job in waiting if job.id not in ids]
        waiting.clear()
        waiting.extend(kept)
        send(conn, (WITHDRAWN, handed))


def main(conn: Connection, settings: WorkerSettings, reading: Any) -> None:
    """`reading`: shared memory naming the file being read (READING_ID and the rest)."""
    die_with_parent(settings.supervisor_pid)
    init_signals()
    reader = _boot(conn, settings.options)
    # After loading the library: the limit is for files, not for the import.
    limit_memory(settings.memory_limit_mb)
    send(conn, (READY, os.getpid(), library_version()))
    waiting: deque[Job] = deque()  # sent to this worker, not read yet, in order
    buffered: list[tuple[int, Any]] = []
    answer_every = 1
    while True:
        # Before the next message's files, always: one of them may be on a mount that
        # stops answering, and results held behind its read would die with the worker
        # killed at its timeout, and those files be read again.
        if buffered and (len(buffered) >= answer_every or not waiting):
            answer(conn, buffered)
            buffered = []
        # Between files, a message already there is read first: it may withdraw files
        # this worker holds but has not started (a pause).
        while not waiting or readable(conn):
            if buffered and not waiting:  # a withdrawal may have taken the rest
                answer(conn, buffered)
                buffered = []
            try:
                message: Files | Withdraw | None = receive(conn)
            except (EOFError, OSError):
                return  # the supervisor is gone
            if message is None:
                if buffered:  # cannot happen (told only once all is answered), never lose one
                    answer(conn, buffered)
                return  # asked to retire
            if message[0] == WITHDRAW:
                _withdraw(conn, waiting, set(message[1]))
                continue
            answer_every, files = cast(Files, message)
            waiting.extend(Job(*fields) for fields in files)
        job = waiting.popleft()
        result, seconds = _read(job, settings, reading, reader)
        buffered.append((job.id, result))
        if seconds >= FAST_FILE_SECONDS:
            answer(conn, buffered)
            buffered = []
