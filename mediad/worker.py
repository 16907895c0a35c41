"""A worker process: receives jobs on its pipe (several per message), reads them one at a
time in the order sent, sends the outcomes back.

Never touches the database. Started by the pool with a `spawn` context, so it inherits
no threads, connections or locks from the supervisor.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import re
import resource
import select
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from mediad.errors import FailureClass
from mediad.extractor import ExtractOptions, extract
from mediad.mediainfo import prepare
from mediad.models import Extracted, Failure, Job
from mediad.record import record_of

# Exit code of a worker that cannot start at all (libmediainfo missing): the pool stops
# instead of restarting it forever (gunicorn's WORKER_BOOT_ERROR).
BOOT_ERROR_EXIT = 3
_PR_SET_PDEATHSIG = 1

# Message tags on the pipe, worker to supervisor.
READY = "ready"
RESULT = "result"  # (RESULT, [(job id, outcome), ...]): one or more, in the order sent
BOOT_ERROR = "boot_error"

# Test hooks: only active when MEDIAD_TEST_HOOKS=1 is in the worker's environment, so the
# fault-injection tests can make a file hang in "native" code or crash its worker.
HANG_MARKER = "__mediad_hang__"
HANG_ONCE_MARKER = "__mediad_hang_once__"  # hangs on the first attempt only
HANG_OPENED_MARKER = "__mediad_hang_opened__"  # hangs once the gate has opened the file
CRASH_MARKER = "__mediad_crash__"
CRASH_AFTER_MARKER = "__mediad_crash_after__"  # dies once the file is read, before answering
SPIN_MARKER = "__mediad_spin__"  # burns CPU forever, as a parser in a loop would
SLEEP_MARKER = re.compile(r"__mediad_sleep_(\d+)ms__")  # a slow file, e.g. __mediad_sleep_20ms__


@dataclass(frozen=True)
class WorkerSettings:
    options: ExtractOptions
    memory_limit_mb: int
    supervisor_pid: int
    cpu_seconds: float = 0.0


# Supervisor to worker: (answer_every, [(job id, path, attempts, lease token), ...]).
# The results of fast files go back together, up to answer_every per message: one wake-up
# of the supervisor for several files (the pool sets it from the pace, mediad/pace.py).
Files = tuple[int, list[tuple[int, str, int, int]]]


# A file faster than this may wait for the next one's result before it is sent; a slower
# one is sent at once (so a slow file never holds back an earlier result for long).
FAST_FILE_SECONDS = 0.02


_cpu_limit_set: list[tuple[int, int]] = []  # (soft, hard) as last set by this process


def _limit_cpu_for_next_file(seconds: float) -> None:
    """RLIMIT_CPU counts the whole process: allow `seconds` more than used so far. The
    kernel sends SIGXCPU past it, which the supervisor reports as a timeout."""
    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    if _cpu_limit_set and _cpu_limit_set[0][0] == soft:
        return  # whole seconds: unchanged over a run of fast files, one syscall saved
    hard = _cpu_limit_set[0][1] if _cpu_limit_set else resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    _cpu_limit_set[:] = [(soft, hard)]


def _die_with_parent(supervisor_pid: int) -> None:
    """Ask the kernel to SIGKILL this worker when the supervisor dies, even by kill -9."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's EOF still ends the worker
    if os.getppid() != supervisor_pid:
        os._exit(0)  # the supervisor died before prctl took effect


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _init_signals() -> None:
    # Ctrl-C reaches the whole process group: the supervisor decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for name in ("SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def _test_hook(job: Job) -> None:
    path = job.path
    slow = SLEEP_MARKER.search(path)
    if slow:
        time.sleep(int(slow.group(1)) / 1000)
    if HANG_MARKER in path or (HANG_ONCE_MARKER in path and job.attempts == 1):
        while True:
            time.sleep(3600)
    if SPIN_MARKER in path:
        while True:
            pass
    if CRASH_MARKER in path:
        os.kill(os.getpid(), signal.SIGSEGV)


def send(conn: Connection, message: object) -> None:
    """Connection.send without multiprocessing's ForkingPickler, which copies its
    reducer table for every message: nothing sent here needs its reducers."""
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def answer(conn: Connection, results: list[tuple[int, Any]]) -> None:
    """Send results. One too large to pickle under the memory limit fails its own file
    (`out_of_memory`): were the worker to die here instead, every file it held would go
    back uncharged, and the one with the huge answer would be read, and kill, again."""
    try:
        send(conn, (RESULT, results))
        return
    except MemoryError:
        pass
    for job_id, result in results:
        try:
            send(conn, (RESULT, [(job_id, result)]))
        except MemoryError:
            failure = Failure(
                FailureClass.OUT_OF_MEMORY,
                "its result is too large to send under daemon.memory_limit_mb",
                seconds=getattr(result, "seconds", 0.0),
            )
            send(conn, (RESULT, [(job_id, failure)]))


def receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


# Shared memory with the supervisor, one per worker: [READING_ID] the file being read (0
# between files), [READING_SINCE] when it started (monotonic ns), [READING_DEVICE] the
# st_dev of the opened file (NO_DEVICE until the gate has opened it).
READING_ID, READING_SINCE, READING_DEVICE = 0, 1, 2
READING_FIELDS = 3
NO_DEVICE = -1


def _read(job: Job, settings: WorkerSettings, reading: Any, hooks: bool) -> tuple[Any, float]:
    """One file: what goes back to the supervisor (a record or a failure), and how long
    it took. `reading` names the file from before it is opened until its answer is made:
    a crash or a hang anywhere in between charges this file, not the files around it.
    Once the file is open, its device is published too: a read that hangs in a network
    filesystem is then known by the mount it hangs on."""
    _limit_cpu_for_next_file(settings.cpu_seconds)
    started = time.monotonic()
    reading[READING_DEVICE] = NO_DEVICE
    reading[READING_SINCE] = time.monotonic_ns()
    reading[READING_ID] = job.id
    if hooks:
        _test_hook(job)

    def opened(st: os.stat_result) -> None:
        reading[READING_DEVICE] = st.st_dev
        if hooks and HANG_OPENED_MARKER in job.path:
            while True:
                time.sleep(3600)

    try:
        outcome = extract(job.path, settings.options, opened)
    except MemoryError:
        outcome = Failure(FailureClass.OUT_OF_MEMORY, "ran out of memory (daemon.memory_limit_mb)")
    # A record is what the write-back reads: made here, not in the supervisor.
    message = record_of(job, outcome) if isinstance(outcome, Extracted) else outcome
    if hooks and CRASH_AFTER_MARKER in job.path:
        os.kill(os.getpid(), signal.SIGSEGV)
    reading[READING_ID] = 0
    return message, time.monotonic() - started


def readable(conn: Connection) -> bool:
    """Is a message waiting? One select(2) call: Connection.poll builds and closes a
    selector every time (a tenth of the supervisor's CPU per file)."""
    return bool(select.select([conn.fileno()], [], [], 0)[0])


def main(conn: Connection, settings: WorkerSettings, reading: Any) -> None:
    """`reading`: shared memory naming the file being read (READING_ID and the rest)."""
    _die_with_parent(settings.supervisor_pid)
    _init_signals()
    options = settings.options
    try:
        # Loaded and set up once, before the first file (which then pays nothing for it).
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
    # After loading the library: the limit is for files, not for the import.
    _limit_memory(settings.memory_limit_mb)
    hooks = os.environ.get("MEDIAD_TEST_HOOKS") == "1"
    send(conn, (READY, os.getpid()))
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
        if not waiting:
            try:
                message: Files | None = receive(conn)
            except (EOFError, OSError):
                return  # the supervisor is gone
            if message is None:
                if buffered:  # cannot happen (told only once all is answered), never lose one
                    answer(conn, buffered)
                return  # asked to retire
            answer_every, files = message
            waiting.extend(Job(*fields) for fields in files)
        job = waiting.popleft()
        result, seconds = _read(job, settings, reading, hooks)
        buffered.append((job.id, result))
        if seconds >= FAST_FILE_SECONDS:
            answer(conn, buffered)
            buffered = []
