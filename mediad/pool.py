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
back to the supervisor, uncharged: files not started yet, and finished files whose
results died with it.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
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
# A file given back uncharged this many times (its workers died while it waited, or
# between reading it and answering) is charged as a crash: were something about it
# killing workers outside the shared-memory window, it would otherwise go round forever.
MAX_GIVEN_BACK = 3

EventSink = Callable[[str, dict[str, Any]], None]


class WorkerBootError(MediadError):
    """Workers cannot start at all (MediaInfo missing): restarting would only spin."""


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
    reading: Any = None  # shared with the worker: [job id or 0, start in monotonic ns]

    def reading_now(self) -> tuple[int, float] | None:
        """(position in the queue, start) of the file the worker says it is reading.

        Results of fast files come back several at a time, so the oldest unanswered file
        is not always the one being read: the worker publishes it in shared memory, from
        before it opens the file until its answer is made (0 between files)."""
        job_id, started_ns = self.reading[0], self.reading[1]
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
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.target_size = size
        self.timeout_seconds = timeout_seconds
        self.max_files_per_worker = max_files_per_worker
        self.prefetch = max(1, prefetch)  # the most files a worker holds
        self.pace = FilePace()  # what a file costs a worker lately: sets the depth
        self._ctx = multiprocessing.get_context("spawn")
        _spawn_light()
        self._slots: dict[int, Slot] = {}  # by sentinel
        self.on_event: EventSink = on_event or (lambda name, fields: None)
        self._clock = clock
        self._early_deaths = 0
        self._next_start_at = 0.0
        self._selector = selectors.DefaultSelector()
        self._returned: list[Job] = []
        self._given_back: dict[int, int] = {}  # job id -> times given back uncharged
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
        """Start workers up to the target size, respecting the restart back-off."""
        now = self._clock()
        while self.live_count() < self.target_size and now >= self._next_start_at:
            self._spawn()

    def next_start_in(self) -> float | None:
        if self.live_count() >= self.target_size:
            return None
        return max(0.0, self._next_start_at - self._clock())

    def _spawn(self) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        reading = self._ctx.RawArray("q", 2)
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
        """Block until a pipe, a sentinel or the wake-up fd is ready (or the timeout)."""
        events = self._selector.select(timeout)
        ready: list[tuple[str, Slot]] = []
        woken = False
        for key, _mask in events:
            kind, slot = key.data
            if kind == "wake":
                woken = True
            else:
                ready.append((kind, slot))
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
            self._given_back.pop(job.id, None)
            slot.files_done += 1
            self.pace.observe(outcome.seconds)
            completions.append(Completion(job, outcome, slot.pid))
        if not completions:
            return []
        # The worker goes straight on to the next file it holds.
        slot.head_started_at = self._clock()
        self._early_deaths = 0
        if slot.retire_after and slot.files_done >= slot.retire_after and not slot.retiring:
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
        slot.process.join(timeout=1.0)  # reaps: no zombies
        if slot.process.exitcode is None:
            return []  # the sentinel lied (it cannot, but never bury the living)
        self._forget(slot)
        exitcode = slot.process.exitcode
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
        completions = self._give_back(others, slot.pid)
        if head is not None:
            self._given_back.pop(head.id, None)
            failure = self._death_failure(exitcode, now - started)
            completions.append(Completion(head, failure, slot.pid))
        return completions

    def _give_back(self, jobs: list[Job], pid: int) -> list[Completion]:
        """Files a dead worker held but was not reading go back to the supervisor,
        uncharged, up to MAX_GIVEN_BACK times each; then they are charged as a crash."""
        charged: list[Completion] = []
        for job in jobs:
            times = self._given_back.get(job.id, 0) + 1
            if times < MAX_GIVEN_BACK:
                self._given_back[job.id] = times
                self._returned.append(job)
                continue
            self._given_back.pop(job.id, None)
            message = f"{times} workers died while holding this file, none while reading it"
            charged.append(Completion(job, Failure(FailureClass.WORKER_CRASH, message), pid))
        return charged

    def _death_failure(self, exitcode: int, seconds: float) -> Failure:
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
        deadlines = [_started(s) + self.timeout_seconds for s in self._slots.values() if s.queue]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._clock())

    def enforce_timeouts(self) -> list[Completion]:
        """Kill workers whose file ran past the timeout; the file fails with `timeout`."""
        now = self._clock()
        completions: list[Completion] = []
        for slot in list(self._slots.values()):
            if not slot.queue or now - _started(slot) < self.timeout_seconds:
                continue
            # A worker stuck in native code cannot handle a polite signal: SIGKILL.
            self._kill(slot)
            self._forget(slot)
            head, started, others = slot.charged()
            self.on_event("worker_timeout", {"pid": slot.pid, "path": head.path if head else None})
            completions.extend(self._give_back(others, slot.pid))
            if head is None:
                continue
            self._given_back.pop(head.id, None)
            failure = Failure(
                FailureClass.TIMEOUT,
                f"no result after {self.timeout_seconds:g} s (extract.timeout_seconds); "
                "the worker was killed",
                seconds=now - started,
            )
            completions.append(Completion(head, failure, slot.pid))
        return completions

    def _kill(self, slot: Slot) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)
        slot.process.join(timeout=5.0)

    # --- shutdown -----------------------------------------------------------------------

    def retire_idle(self) -> None:
        """Drain: idle workers leave now; busy ones finish the files they hold first."""
        self.target_size = 0
        for slot in self._slots.values():
            self._retire(slot)

    def kill_all(self) -> list[Job]:
        """Stop every worker now; returns the files they held (read or queued)."""
        held = self.in_flight() + self.take_returned()
        self._given_back.clear()
        for slot in list(self._slots.values()):
            self._kill(slot)
            self._forget(slot)
        return held

    def close(self) -> None:
        """Stop what is left (nothing, after a drain) and release the selector. Idempotent:
        a command that fails before its supervisor runs closes the pool it started."""
        if self._closed:
            return
        self.kill_all()
        self._closed = True
        self._selector.close()


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
    )
