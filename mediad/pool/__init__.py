"""The worker pool: a fixed number of worker processes, each reading one file at a time.

Own the processes instead of using multiprocessing.Pool: we always know which file a
worker holds, so a worker that dies or hangs costs that file one attempt and nothing else.

Each worker may also hold a short queue of files sent ahead, so it never waits for the
supervisor between two files: about 50 ms of work at the current pace, between 2 and
`daemon.prefetch` (mediad/pace.py), sent in one message. A worker reads its pipe in order
and answers in order, but sends the results of fast files several at a time (half its
depth: one wake-up of the supervisor for several files), so the oldest unanswered file is
not always the one it is reading: the worker publishes that one in shared memory
(`Slot.reading`). A worker that dies or hangs charges that file alone and gives the rest
back to the supervisor, uncharged, every time: files not started yet, and finished files
whose results died with it.

No count of deaths guards the files given back: the worker names a file from before it
stats or opens it until its answer is made, so whatever a file's content can do to a
worker happens while it is named. Outside that window a worker only unpickles the
supervisor's plain tuples and pickles answers already made, and an answer too large to
send becomes a failure of its own file (mediad/extract/wire.py). A file given back was
therefore innocent, however often its workers die: a crash storm, or a neighbour that
hangs on a dead mount, costs it a wait, never an attempt.

A killed worker is never waited for: one blocked in a network filesystem that stopped
answering stays in the kernel (state D) even after SIGKILL, until the server answers.
Killed workers are watched through their sentinels and reaped when they exit; one still
there `STUCK_AFTER_SECONDS` after SIGKILL is stuck. Stuck processes are not capacity:
their workers are replaced, up to `max_stuck` stuck processes; past it, none is forked
(each one may be the next to hang, and each holds its memory until the mount answers).

The supervisor waits on every worker's pipe and process sentinel, and its own wake-up
pipe, through one persistent selector (`wait`), and hands what became ready to `collect`.
"""

from mediad.pool.deaths import describe_exit
from mediad.pool.killed import StuckProcess
from mediad.pool.pool import WorkerBootError, WorkerPool
from mediad.pool.settings import extract_options, make_pool, worker_settings
from mediad.pool.slot import Slot

__all__ = [
    "Slot",
    "StuckProcess",
    "WorkerBootError",
    "WorkerPool",
    "describe_exit",
    "extract_options",
    "make_pool",
    "worker_settings",
]
