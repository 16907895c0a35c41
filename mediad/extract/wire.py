"""What crosses a worker's pipe and its shared memory, for both ends: the supervisor's
pool (mediad/pool/) and the worker (mediad/extract/worker.py).

Supervisor to worker: files to read (`Files`), or None to retire. Worker to supervisor:
READY once it can read, RESULT with outcomes in the order sent, BOOT_ERROR when it cannot
start at all. Beside the pipe, a small shared array names the file being read.
"""

from __future__ import annotations

import pickle
import select
from multiprocessing.connection import Connection
from typing import Any

from mediad.errors import FailureClass
from mediad.models import Failure

# Exit code of a worker that cannot start at all (libmediainfo missing): the pool stops
# instead of restarting it forever (gunicorn's WORKER_BOOT_ERROR).
BOOT_ERROR_EXIT = 3

# Message tags on the pipe, worker to supervisor.
READY = "ready"  # (READY, pid, libmediainfo version)
RESULT = "result"  # (RESULT, [(job id, outcome), ...]): one or more, in the order sent
BOOT_ERROR = "boot_error"

# Supervisor to worker: (answer_every, [(job id, path, attempts, lease token), ...]).
# The results of fast files go back together, up to answer_every per message: one wake-up
# of the supervisor for several files (the pool sets it from the pace, mediad/pace.py).
Files = tuple[int, list[tuple[int, str, int, int]]]


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


def readable(conn: Connection) -> bool:
    """Is a message waiting? One select(2) call: Connection.poll builds and closes a
    selector every time (a tenth of the supervisor's CPU per file)."""
    return bool(select.select([conn.fileno()], [], [], 0)[0])


# Shared memory with the supervisor, one per worker: [READING_ID] the file being read (0
# between files), [READING_SINCE] when it started (monotonic ns), [READING_DEVICE] the
# st_dev of the opened file (NO_DEVICE until the gate has opened it).
READING_ID, READING_SINCE, READING_DEVICE = 0, 1, 2
READING_FIELDS = 3
NO_DEVICE = -1
