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
send becomes a failure of its own file (mediad/worker.py). A file given back was
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

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import random
import selectors
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_any
from multiprocessing.process import BaseProcess
from typing import Any

from mediad import worker
from mediad.config import Config
from mediad.errors import FailureClass, MediadError
from mediad.extractor import ExtractOptions
from mediad.models import Completion, Failure, Job
from mediad.pace import FilePace, answer_every

# A worker that dies this soon after starting counts as failing to boot: back off.
EARLY_DEATH_SECONDS = 2.0
MAX_RESTART_DELAY = 30.0
# A killed worker that has not exited this long after SIGKILL is stuck in the kernel.
STUCK_AFTER_SECONDS = 3.0
# The longest the loop waits for killed workers to exit (kill_all): after it, whoever is
# left is watched like any other killed worker.
KILL_WAIT_SECONDS = 1.0
# How often killed workers are looked at when their sentinels say nothing (a process can
# close its descriptors, firing the sentinel, and then hang on its way out).
KILLED_CHECK_EVERY = 0.5

EventSink = Callable[[str, dict[str, Any]], None]


class WorkerBootError(MediadError):
    """Workers cannot start at all (MediaInfo missing): restarting would only spin."""


@dataclass
class StuckProcess:
    """A worker killed (timeout, stop) that has not exited yet: the file it was reading
    (`path`, its filesystem's `device` when the worker had opened it), and since when.
    `stuck` once it outlived SIGKILL by STUCK_AFTER_SECONDS; `mount`: what the pool's
    `mount_of` made of the path and device (None until something sets it)."""

    process: BaseProcess
    pid: int
    path: str | None
    device: int | None
    killed_at: float
    mount: str | None = None
    stuck: bool = False
    watched: bool = True  # its sentinel is in the selector


MountOf = Callable[[str | None, int | None], str | None]


@dataclass
class Slot:
    process: BaseProcess
    conn: Connection
    started_at: float
    retire_after: int
    ready: bool = False
    queue: deque[Job] = field(default_factory=deque)  # head: the file being read
    head_started_at: float = 0.0
    files_done: int = 0
    retiring: bool = False
    told_to_leave: bool = False
    pid: int = 0
    reading: Any = None  # shared with the worker: worker.READING_ID and the rest

    def reading_now(self) -> tuple[int, float] | None:
        """(position in the queue, start) of the file the worker says it is reading.

        Results of fast files come back several at a time, so the oldest unanswered file
        is not always the one being read: the worker publishes it in shared memory, from
        before it opens the file until its answer is made (0 between files)."""
        job_id = self.reading[worker.READING_ID]
        started_ns = self.reading[worker.READING_SINCE]
        for position, job in enumerate(self.queue):
            if job.id == job_id:
                return position, started_ns / 1e9
        return None

    def charged(self) -> tuple[Job | None, float, list[Job]]:
        """For a worker that died or hung: the file it was reading (charged, or None if
        it was between files), when that started, and every other file it held (given
        back uncharged: never started, or finished with a result that died with it)."""
        held = list(self.queue)
        now_reading = self.reading_now()
        if now_reading is None:
            return None, self.head_started_at, held
        position, started = now_reading
        return held[position], started, held[:position] + held[position + 1 :]

    def reading_device(self) -> int | None:
        """The device (st_dev) of the file being read, once the worker has opened it: the
        filesystem it is really on, whatever its path suggests."""
        if self.reading[worker.READING_ID] == 0:
            return None
        device = int(self.reading[worker.READING_DEVICE])
        return None if device == worker.NO_DEVICE else device


def _spawn_light() -> None:
    """Spawned workers first re-run the parent's main module, unless it is a package's
    `__main__`. `python -m mediad` is one; the installed `mediad` script (what systemd
    runs) is not: each worker ran its `from mediad.cli import main`, loading psycopg,
    structlog and the rest of the CLI it never uses (49 MiB per worker instead of 31, and
    a slower boot). Give the script the identity of `python -m mediad`, whose `__main__`
    imports nothing at the top; multiprocessing then leaves main alone in the workers."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return
    spec = importlib.util.find_spec("mediad.__main__")
    if spec is not None:
        main.__spec__ = spec


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is gone"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _started(slot: Slot) -> float:
    """When the file a worker holds started: the one it says it reads, else the oldest."""
    now_reading = slot.reading_now()
    return now_reading[1] if now_reading is not None else slot.head_started_at


class WorkerPool:
    def __init__(
        self,
        settings: worker.WorkerSettings,
        size: int,
        *,
        timeout_seconds: float,
        max_files_per_worker: int,
        prefetch: int = 2,
        max_stuck: int = 0,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.target_size = size
        self.timeout_seconds = timeout_seconds
        self.max_files_per_worker = max_files_per_worker
        self.prefetch = max(1, prefetch)  # the most files a worker holds
        self.pace = FilePace()  # what a file costs a worker lately: sets the depth
        self.max_stuck = max_stuck  # stuck processes beyond which none is forked; 0: size
        self.mount_of: MountOf = lambda path, device: None
        # Other processes of the daemon that count toward the limit (probes of stalled
        # mounts): (killed and not gone, stuck among them).
        self.stuck_elsewhere: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self._ctx = multiprocessing.get_context("spawn")
        _spawn_light()
        self._slots: dict[int, Slot] = {}  # by sentinel
        self.on_event: EventSink = on_event or (lambda name, fields: None)
        self._clock = clock
        self._early_deaths = 0
        self._next_start_at = 0.0
        self._selector = selectors.DefaultSelector()
        self._returned: list[Job] = []
        self._killed: dict[int, StuckProcess] = {}  # by sentinel: killed, not exited yet
        self._next_killed_check = 0.0
        self._at_stuck_limit = False  # said so in the log, once per episode
        self._closed = False

    # --- shape ------------------------------------------------------------------------

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def live_count(self) -> int:
        return sum(1 for s in self._slots.values() if not s.retiring)

    def depth(self) -> int:
        """Files each worker may hold now: about 50 ms of work, at most `prefetch`."""
        return self.pace.depth(self.prefetch)

    def accepting(self) -> list[Slot]:
        """Workers that can take another file, the least loaded first."""
        depth = self.depth()
        open_slots = [
            s for s in self._slots.values() if s.ready and not s.retiring and len(s.queue) < depth
        ]
        return sorted(open_slots, key=lambda s: len(s.queue))

    def idle(self) -> list[Slot]:
        return [s for s in self.accepting() if not s.queue]

    def busy_count(self) -> int:
        return sum(1 for s in self._slots.values() if s.queue)

    def in_flight(self) -> list[Job]:
        """Every file sent to a worker and not answered yet (read now, or queued)."""
        return [job for s in self._slots.values() for job in s.queue]

    def take_returned(self) -> list[Job]:
        """Files that were queued at a worker that died: never started, still ours."""
        returned, self._returned = self._returned, []
        return returned

    def resize(self, size: int) -> None:
        """Grow at once; shrink by retiring idle workers first, busy ones after their files."""
        self.target_size = max(0, size)
        surplus = self.live_count() - self.target_size
        if surplus <= 0:
            return
        candidates = sorted(self._slots.values(), key=lambda s: (len(s.queue), -s.started_at))
        for slot in candidates:
            if surplus == 0:
                break
            if not slot.retiring:
                self._retire(slot)
                surplus -= 1

    def replace_all(self) -> None:
        """New settings: every worker leaves (idle ones now, busy ones after their files)
        and new ones start with the new settings."""
        for slot in self._slots.values():
            if not slot.retiring:
                self._retire(slot)
        self.maintain()

    def maintain(self) -> None:
        """Start workers up to the target size, respecting the restart back-off and the
        limit on stuck processes."""
        self.check_killed()
        now = self._clock()
        while self.live_count() < self.target_size and now >= self._next_start_at:
            if self._forking_held_back():
                return
            self._spawn()

    def next_start_in(self) -> float | None:
        if self.live_count() >= self.target_size or self._forking_held_back():
            return None  # a killed worker that exits wakes the loop through its sentinel
        return max(0.0, self._next_start_at - self._clock())

    # --- stuck processes ----------------------------------------------------------------

    def stuck(self) -> list[StuckProcess]:
        """Killed workers that outlived SIGKILL: held in the kernel by a read that never
        returns (a network or FUSE mount that stopped answering)."""
        return [k for k in self._killed.values() if k.stuck]

    def unexited_mounts(self) -> set[str]:
        """Mounts that workers killed, not gone and not stuck yet, were reading: until
        each exits (as it does within milliseconds) or proves stuck (which stalls a
        network mount), nothing more should go there."""
        return {k.mount for k in self._killed.values() if k.mount is not None and not k.stuck}

    def stuck_count(self) -> int:
        return sum(1 for k in self._killed.values() if k.stuck)

    def unexited_count(self) -> int:
        """Killed workers not gone yet: stuck, or about to be if they do not exit."""
        return len(self._killed)

    def stuck_limit(self) -> int:
        """Stuck processes at which no worker is forked: `max_stuck`, or the pool's size."""
        return self.max_stuck if self.max_stuck > 0 else max(1, self.target_size)

    def at_stuck_limit(self) -> bool:
        return self.stuck_count() >= self.stuck_limit()

    def _forking_held_back(self) -> bool:
        """Whether a new worker would take the killed ones not yet gone past the limit.
        Those not stuck yet count too (they may be about to be), so stuck processes never
        outnumber the limit through replacements; a killed worker that exits, as one
        normally does within milliseconds, lifts the hold at once."""
        others_unexited, others_stuck = self.stuck_elsewhere()
        unexited = len(self._killed) + others_unexited
        stuck = self.stuck_count() + others_stuck
        limit = self.stuck_limit()
        if unexited < limit:
            if self._at_stuck_limit:
                self._at_stuck_limit = False
                self.on_event("stuck_limit_cleared", {"stuck": stuck, "limit": limit})
            return False
        if not self._at_stuck_limit and stuck >= limit:
            self._at_stuck_limit = True
            self.on_event("stuck_limit", {"stuck": stuck, "limit": limit})
        return True

    def _watch_killed(self, slot: Slot) -> None:
        """A worker was sent SIGKILL: watch for its exit instead of waiting for it."""
        head, _started, _others = slot.charged()
        path, device = (head.path if head else None), slot.reading_device()
        killed = StuckProcess(
            slot.process, slot.pid, path, device, self._clock(), self.mount_of(path, device)
        )
        self._killed[slot.process.sentinel] = killed
        self._selector.register(slot.process.sentinel, selectors.EVENT_READ, ("reap", killed))

    def _sentinel_fired(self, killed: StuckProcess) -> None:
        if self._reap(killed) or not killed.watched:
            return
        # Its descriptors are closed but it has not exited (held on its way out): the
        # sentinel would wake the loop at every turn. Look at it every half second instead.
        killed.watched = False
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(killed.process.sentinel)

    def _reap(self, killed: StuckProcess) -> bool:
        """Reap a killed worker that has exited (waitpid without waiting): no zombies."""
        if killed.process.exitcode is None:
            return False
        if killed.watched:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(killed.process.sentinel)
        del self._killed[killed.process.sentinel]
        if killed.stuck:
            self.on_event(
                "stuck_exited",
                {
                    "pid": killed.pid,
                    "path": killed.path,
                    "mount": killed.mount,
                    "stuck_for_s": round(self._clock() - killed.killed_at, 1),
                },
            )
        return True

    def check_killed(self) -> None:
        """Reap killed workers that exited; call the ones still there past
        STUCK_AFTER_SECONDS stuck. Cheap: looks at them at most every KILLED_CHECK_EVERY."""
        now = self._clock()
        if not self._killed or now < self._next_killed_check:
            return
        self._next_killed_check = now + KILLED_CHECK_EVERY
        for killed in list(self._killed.values()):
            if self._reap(killed) or killed.stuck:
                continue
            if now - killed.killed_at >= STUCK_AFTER_SECONDS:
                killed.stuck = True
                self.on_event(
                    "worker_stuck",
                    {
                        "pid": killed.pid,
                        "path": killed.path,
                        "mount": killed.mount,
                        "device": killed.device,
                        "seconds_since_kill": round(now - killed.killed_at, 1),
                    },
                )

    def _next_stuck_check_in(self) -> float | None:
        """When a killed worker not stuck yet will be, for the loop's wait."""
        due = [k.killed_at + STUCK_AFTER_SECONDS for k in self._killed.values() if not k.stuck]
        if not due:
            return None
        return max(0.0, min(due) - self._clock(), self._next_killed_check - self._clock())

    def _spawn(self) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        reading = self._ctx.RawArray("q", worker.READING_FIELDS)
        process = self._ctx.Process(
            target=worker.main,
            args=(child_conn, self.settings, reading),
            name="mediad-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        jitter = random.randint(0, max(0, self.max_files_per_worker // 10))
        slot = Slot(
            process=process,
            conn=parent_conn,
            started_at=self._clock(),
            retire_after=(self.max_files_per_worker + jitter) if self.max_files_per_worker else 0,
            pid=process.pid or 0,
            reading=reading,
        )
        self._slots[process.sentinel] = slot
        self._selector.register(parent_conn.fileno(), selectors.EVENT_READ, ("pipe", slot))
        self._selector.register(process.sentinel, selectors.EVENT_READ, ("exit", slot))

    def _retire(self, slot: Slot) -> None:
        slot.retiring = True
        self._maybe_dismiss(slot)

    def _maybe_dismiss(self, slot: Slot) -> None:
        """A retiring worker is told to leave once it has answered everything it holds."""
        if slot.retiring and slot.ready and not slot.queue and not slot.told_to_leave:
            slot.told_to_leave = True
            self._send(slot, None)

    def _send(self, slot: Slot, message: worker.Files | None) -> bool:
        try:
            worker.send(slot.conn, message)
        except OSError:
            return False  # the worker is dying; its sentinel will tell
        return True

    # --- waiting ----------------------------------------------------------------------

    def register_wakeup(self, fd: int) -> None:
        self._selector.register(fd, selectors.EVENT_READ, ("wake", None))

    def wait(self, timeout: float) -> tuple[list[tuple[str, Slot]], bool]:
        """Block until a pipe, a sentinel or the wake-up fd is ready (or the timeout).
        Killed workers that exited are reaped here."""
        events = self._selector.select(timeout)
        ready: list[tuple[str, Slot]] = []
        woken = False
        for key, _mask in events:
            kind, item = key.data
            if kind == "wake":
                woken = True
            elif kind == "reap":
                self._sentinel_fired(item)
            else:
                ready.append((kind, item))
        return ready, woken

    # --- work ---------------------------------------------------------------------------

    def room(self, slot: Slot) -> int:
        """How many more files this worker may hold."""
        return max(0, self.depth() - len(slot.queue))

    def dispatch(self, slot: Slot, jobs: list[Job]) -> bool:
        """Send files to a worker in one message (one wake-up of it for all of them)."""
        # Plain tuples: a list of dataclasses pickles several times slower.
        files = [(job.id, job.path, job.attempts, job.lease_token) for job in jobs]
        if not self._send(slot, (answer_every(self.depth()), files)):
            return False
        if not slot.queue:
            slot.head_started_at = self._clock()
        slot.queue.extend(jobs)
        return True

    def collect(self, ready: list[tuple[str, Slot]]) -> list[Completion]:
        """Read results from ready pipes and bury dead workers; a dead worker's file fails."""
        completions: list[Completion] = []
        dead: list[Slot] = []
        for kind, slot in ready:
            if slot.process.sentinel not in self._slots:
                continue  # already buried this turn
            completions.extend(self._drain_pipe(slot))
            if kind == "exit" and slot not in dead:
                dead.append(slot)
        for slot in dead:
            completions.extend(self._drain_pipe(slot))
            completions.extend(self._bury(slot))
        return completions

    def _drain_pipe(self, slot: Slot) -> list[Completion]:
        completions: list[Completion] = []
        while True:
            try:
                if slot.conn.closed or not worker.readable(slot.conn):
                    break
                message = worker.receive(slot.conn)
            except (EOFError, OSError):
                break
            completions.extend(self._handle_message(slot, message))
        return completions

    def _handle_message(self, slot: Slot, message: tuple[Any, ...]) -> list[Completion]:
        tag = message[0]
        if tag == worker.READY:
            slot.ready = True
            self._maybe_dismiss(slot)
            return []
        if tag == worker.BOOT_ERROR:
            raise WorkerBootError(str(message[1]))
        if tag != worker.RESULT:
            return []
        completions: list[Completion] = []
        for job_id, outcome in message[1]:
            if not slot.queue or slot.queue[0].id != job_id:
                continue
            job = slot.queue.popleft()
            slot.files_done += 1
            self.pace.observe(outcome.seconds)
            completions.append(Completion(job, outcome, slot.pid))
        if not completions:
            return []
        # The worker goes straight on to the next file it holds.
        slot.head_started_at = self._clock()
        self._early_deaths = 0
        # While stuck processes hold back forking, a recycled worker would not be replaced:
        # recycling then would leave the pool without the workers local files need.
        due = slot.retire_after and slot.files_done >= slot.retire_after
        if due and not slot.retiring and not self._forking_held_back():
            slot.retiring = True
            self.on_event("worker_recycled", {"pid": slot.pid, "files": slot.files_done})
        self._maybe_dismiss(slot)
        return completions

    def _forget(self, slot: Slot) -> None:
        del self._slots[slot.process.sentinel]
        for fd in (slot.conn.fileno(), slot.process.sentinel):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
        slot.conn.close()

    def _bury(self, slot: Slot) -> list[Completion]:
        # The sentinel fires as the process closes its descriptors, a moment before it
        # can be reaped: a short wait reaps it (no zombies). Not Process.join: once the
        # sentinel has fired, it waits for the exit without a bound.
        _await_exits([slot.process], 0.1)
        exitcode = slot.process.exitcode
        self._forget(slot)
        if exitcode is None:
            # Held on its way out (say, closing a file on a mount that stopped answering):
            # dead to us, watched until it goes.
            self._kill(slot)
            self._watch_killed(slot)
        if exitcode == worker.BOOT_ERROR_EXIT:
            raise WorkerBootError("a worker could not start (see its message above)")
        if slot.retiring and not slot.queue:
            return []
        now = self._clock()
        if now - slot.started_at < EARLY_DEATH_SECONDS:
            self._early_deaths += 1
            delay = min(MAX_RESTART_DELAY, 0.1 * 2**self._early_deaths)
            self._next_start_at = now + delay
        head, started, others = slot.charged()
        self.on_event(
            "worker_died",
            {"pid": slot.pid, "how": describe_exit(exitcode), "path": head.path if head else None},
        )
        # Not read when the worker died: back to the supervisor, uncharged, every time.
        self._returned.extend(others)
        if head is None:
            return []
        return [Completion(head, self._death_failure(exitcode, now - started), slot.pid)]

    def _death_failure(self, exitcode: int | None, seconds: float) -> Failure:
        if exitcode == -signal.SIGXCPU:
            return Failure(
                FailureClass.TIMEOUT,
                f"used more than {self.settings.cpu_seconds:g} s of CPU (extract.cpu_seconds); "
                "the worker was stopped by the kernel",
                seconds=seconds,
            )
        return Failure(
            FailureClass.WORKER_CRASH,
            f"the worker reading this file {describe_exit(exitcode)}",
            seconds=seconds,
        )

    # --- deadlines --------------------------------------------------------------------

    def next_deadline_in(self) -> float | None:
        """When the loop must look again: a file's timeout, or a killed worker's."""
        deadlines = [_started(s) + self.timeout_seconds for s in self._slots.values() if s.queue]
        found = [max(0.0, min(deadlines) - self._clock())] if deadlines else []
        stuck_check = self._next_stuck_check_in()
        if stuck_check is not None:
            found.append(stuck_check)
        return min(found) if found else None

    def enforce_timeouts(self) -> list[Completion]:
        """Kill workers whose file ran past the timeout; the file fails with `timeout`.
        Then look at the workers killed before (reaped, or stuck)."""
        now = self._clock()
        completions: list[Completion] = []
        for slot in list(self._slots.values()):
            if not slot.queue or now - _started(slot) < self.timeout_seconds:
                continue
            head, started, others = slot.charged()
            # A worker stuck in native code cannot handle a polite signal: SIGKILL. Never
            # waited for: one held in a read of a dead mount does not die until it answers.
            self._kill(slot)
            self._forget(slot)
            self._watch_killed(slot)
            path, device = (head.path if head else None), slot.reading_device()
            self.on_event(
                "worker_timeout",
                {
                    "pid": slot.pid,
                    "row_id": head.id if head else None,
                    "path": path,
                    "device": device,
                    "mount": self.mount_of(path, device),
                },
            )
            self._returned.extend(others)  # not read: uncharged, every time
            if head is None:
                continue
            failure = Failure(
                FailureClass.TIMEOUT,
                f"no result after {self.timeout_seconds:g} s (extract.timeout_seconds); "
                "the worker was killed",
                seconds=now - started,
            )
            completions.append(Completion(head, failure, slot.pid))
        self.check_killed()
        return completions

    def _kill(self, slot: Slot) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)

    # --- shutdown -----------------------------------------------------------------------

    def retire_idle(self) -> None:
        """Drain: idle workers leave now; busy ones finish the files they hold first."""
        self.target_size = 0
        for slot in self._slots.values():
            self._retire(slot)

    def kill_all(self) -> list[Job]:
        """Stop every worker now; returns the files they held (read or queued). Waits
        for them all together, KILL_WAIT_SECONDS at most: any still there is watched
        like a worker killed for a timeout."""
        held = self.in_flight() + self.take_returned()
        slots = list(self._slots.values())
        for slot in slots:
            self._kill(slot)
        _await_exits([slot.process for slot in slots], KILL_WAIT_SECONDS)
        for slot in slots:
            self._forget(slot)
            if slot.process.exitcode is None:
                self._watch_killed(slot)
        return held

    def close(self) -> None:
        """Stop what is left (nothing, after a drain) and release the selector. Idempotent:
        a command that fails before its supervisor runs closes the pool it started.
        Killed workers that have still not exited are left behind (and said so)."""
        if self._closed:
            return
        self.kill_all()
        for killed in list(self._killed.values()):
            self._reap(killed)
        left = list(self._killed.values())
        self._killed.clear()
        for killed in left:
            _leave_behind(killed.process)
        if left:
            self.on_event(
                "left_behind",
                {
                    "processes": len(left),
                    "pids": [k.pid for k in left],
                    "paths": [k.path for k in left],
                    "mounts": sorted({k.mount for k in left if k.mount is not None}),
                },
            )
        self._closed = True
        self._selector.close()


def _await_exits(processes: Iterable[BaseProcess], seconds: float) -> None:
    """Wait for processes sent SIGKILL to exit, all at once, `seconds` at most."""
    deadline = time.monotonic() + seconds
    waiting = list(processes)
    while True:
        waiting = [p for p in waiting if p.exitcode is None]  # reaps those that exited
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            return
        fired = wait_for_any([p.sentinel for p in waiting], timeout=left)
        if fired and all(p.exitcode is None for p in waiting):
            # Descriptors closed, exit not complete: do not spin on the fired sentinels.
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))


def _leave_behind(process: BaseProcess) -> None:
    """Forget a process that will not exit. At interpreter exit multiprocessing joins
    every child it started, with no timeout (util._exit_function: active_children(),
    then join()): one held in the kernel by a dead mount would keep mediad from ever
    exiting. It dies when the mount answers, or with the machine; PR_SET_PDEATHSIG has
    already sent it SIGKILL again. There is no public way to do this."""
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(process)


# --- from the config --------------------------------------------------------------------


def extract_options(config: Config) -> ExtractOptions:
    return ExtractOptions(
        roots=config.extract.roots,
        parse_speed=config.extract.parse_speed,
        max_file_bytes=config.extract.max_file_bytes,
        full_document=config.extract.full_document,
        engine=config.extract.engine,
        library_file=config.extract.library_file or None,
    )


def worker_settings(config: Config) -> worker.WorkerSettings:
    return worker.WorkerSettings(
        extract_options(config),
        config.daemon.memory_limit_mb,
        os.getpid(),
        config.extract.cpu_seconds,
    )


def make_pool(config: Config) -> WorkerPool:
    """The worker pool a config asks for (no worker started yet)."""
    return WorkerPool(
        worker_settings(config),
        config.effective_workers(),
        timeout_seconds=config.extract.timeout_seconds,
        max_files_per_worker=config.daemon.max_files_per_worker,
        prefetch=config.daemon.prefetch,
        max_stuck=config.daemon.max_stuck_workers,
    )
