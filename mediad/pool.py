"""The worker pool: a fixed number of worker processes, each holding at most one file.

Own the processes instead of using multiprocessing.Pool: we always know which file a
worker holds, so a worker that dies or hangs costs that file one attempt and nothing else.
The supervisor waits on every worker's pipe and sentinel at once (`wait_objects`) and
hands whatever became ready to `collect`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mediad import worker
from mediad.errors import FailureClass, MediadError
from mediad.models import Completion, Failure, Job

# A worker that dies this soon after starting counts as failing to boot: back off.
EARLY_DEATH_SECONDS = 2.0
MAX_RESTART_DELAY = 30.0

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
    job: Job | None = None
    job_started_at: float = 0.0
    files_done: int = 0
    retiring: bool = False
    pid: int = field(default=0)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is gone"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class WorkerPool:
    def __init__(
        self,
        settings: worker.WorkerSettings,
        size: int,
        *,
        timeout_seconds: float,
        max_files_per_worker: int,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.target_size = size
        self.timeout_seconds = timeout_seconds
        self.max_files_per_worker = max_files_per_worker
        self._ctx = multiprocessing.get_context("spawn")
        self._slots: dict[int, Slot] = {}  # by sentinel
        self._on_event = on_event or (lambda name, fields: None)
        self._clock = clock
        self._early_deaths = 0
        self._next_start_at = 0.0

    # --- shape ------------------------------------------------------------------------

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def live_count(self) -> int:
        return sum(1 for s in self._slots.values() if not s.retiring)

    def idle(self) -> list[Slot]:
        return [s for s in self._slots.values() if s.ready and s.job is None and not s.retiring]

    def busy_count(self) -> int:
        return sum(1 for s in self._slots.values() if s.job is not None)

    def in_flight(self) -> list[Job]:
        return [s.job for s in self._slots.values() if s.job is not None]

    def resize(self, size: int) -> None:
        """Grow at once; shrink by retiring idle workers first, busy ones after their file."""
        self.target_size = max(0, size)
        surplus = self.live_count() - self.target_size
        if surplus <= 0:
            return
        candidates = sorted(self._slots.values(), key=lambda s: (s.job is not None, -s.started_at))
        for slot in candidates:
            if surplus == 0:
                break
            if not slot.retiring:
                self._retire(slot)
                surplus -= 1

    def replace_all(self) -> None:
        """New settings: every worker leaves (idle ones now, busy ones after their file) and
        new ones start with the new settings."""
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
        process = self._ctx.Process(
            target=worker.main,
            args=(child_conn, self.settings),
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
        )
        self._slots[process.sentinel] = slot

    def _retire(self, slot: Slot) -> None:
        slot.retiring = True
        if slot.job is None and slot.ready:
            self._send(slot, None)

    def _send(self, slot: Slot, message: Job | None) -> bool:
        try:
            slot.conn.send(message)
        except OSError:
            return False  # the worker is dying; its sentinel will tell
        return True

    # --- work ---------------------------------------------------------------------------

    def dispatch(self, slot: Slot, job: Job) -> bool:
        slot.job = job
        slot.job_started_at = self._clock()
        return self._send(slot, job)

    def wait_objects(self) -> list[Any]:
        objects: list[Any] = []
        for sentinel, slot in self._slots.items():
            objects.append(slot.conn)
            objects.append(sentinel)
        return objects

    def collect(self, ready: list[Any]) -> list[Completion]:
        """Read results from ready pipes and bury dead workers; a dead worker's file fails."""
        completions: list[Completion] = []
        ready_set = set(id(r) for r in ready)
        for sentinel, slot in list(self._slots.items()):
            if id(slot.conn) in ready_set:
                completions.extend(self._drain_pipe(slot))
            if sentinel in ready or not slot.process.is_alive():
                completions.extend(self._drain_pipe(slot))
                completion = self._bury(sentinel, slot)
                if completion is not None:
                    completions.append(completion)
        return completions

    def _drain_pipe(self, slot: Slot) -> list[Completion]:
        completions: list[Completion] = []
        while True:
            try:
                if slot.conn.closed or not slot.conn.poll():
                    break
                message = slot.conn.recv()
            except (EOFError, OSError):
                break
            completion = self._handle_message(slot, message)
            if completion is not None:
                completions.append(completion)
        return completions

    def _handle_message(self, slot: Slot, message: tuple[Any, ...]) -> Completion | None:
        tag = message[0]
        if tag == worker.READY:
            slot.ready = True
            if slot.retiring:
                self._send(slot, None)
            return None
        if tag == worker.BOOT_ERROR:
            raise WorkerBootError(str(message[1]))
        if tag != worker.RESULT or slot.job is None or slot.job.id != message[1]:
            return None
        job, outcome = slot.job, message[2]
        slot.job = None
        slot.files_done += 1
        self._early_deaths = 0
        if slot.retire_after and slot.files_done >= slot.retire_after and not slot.retiring:
            slot.retiring = True
            self._on_event("worker_recycled", {"pid": slot.pid, "files": slot.files_done})
        if slot.retiring:
            self._send(slot, None)  # retired while busy (shrink, drain, recycle): leave now
        return Completion(job, outcome, slot.pid)

    def _bury(self, sentinel: int, slot: Slot) -> Completion | None:
        slot.process.join(timeout=1.0)  # reaps: no zombies
        if slot.process.exitcode is None:
            return None  # the sentinel lied (it cannot, but never bury the living)
        del self._slots[sentinel]
        slot.conn.close()
        exitcode = slot.process.exitcode
        if exitcode == worker.BOOT_ERROR_EXIT:
            raise WorkerBootError("a worker could not start (see its message above)")
        if slot.retiring and slot.job is None:
            return None
        now = self._clock()
        if now - slot.started_at < EARLY_DEATH_SECONDS:
            self._early_deaths += 1
            delay = min(MAX_RESTART_DELAY, 0.1 * 2**self._early_deaths)
            self._next_start_at = now + delay
        reason = "crash"
        self._on_event(
            "worker_died",
            {"pid": slot.pid, "how": describe_exit(exitcode), "reason": reason,
             "path": slot.job.path if slot.job else None},
        )
        if slot.job is None:
            return None
        if exitcode == -signal.SIGXCPU:
            failure = Failure(
                FailureClass.TIMEOUT,
                f"used more than {self.settings.cpu_seconds:g} s of CPU (extract.cpu_seconds); "
                "the worker was stopped by the kernel",
                seconds=now - slot.job_started_at,
            )
        else:
            failure = Failure(
                FailureClass.WORKER_CRASH,
                f"the worker reading this file {describe_exit(exitcode)}",
                seconds=now - slot.job_started_at,
            )
        return Completion(slot.job, failure, slot.pid)

    # --- deadlines --------------------------------------------------------------------

    def next_deadline_in(self) -> float | None:
        deadlines = [
            s.job_started_at + self.timeout_seconds for s in self._slots.values() if s.job
        ]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self._clock())

    def enforce_timeouts(self) -> list[Completion]:
        """Kill workers whose file ran past the timeout; the file fails with `timeout`."""
        now = self._clock()
        completions: list[Completion] = []
        for sentinel, slot in list(self._slots.items()):
            job = slot.job
            if job is None or now - slot.job_started_at < self.timeout_seconds:
                continue
            # A worker stuck in native code cannot handle a polite signal: SIGKILL.
            self._kill(slot)
            del self._slots[sentinel]
            slot.conn.close()
            self._on_event("worker_timeout", {"pid": slot.pid, "path": job.path})
            failure = Failure(
                FailureClass.TIMEOUT,
                f"no result after {self.timeout_seconds:g} s (extract.timeout_seconds); "
                "the worker was killed",
                seconds=now - slot.job_started_at,
            )
            completions.append(Completion(job, failure, slot.pid))
        return completions

    def _kill(self, slot: Slot) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)
        slot.process.join(timeout=5.0)

    # --- shutdown -----------------------------------------------------------------------

    def retire_idle(self) -> None:
        """Drain: idle workers leave now; busy ones finish their file first."""
        self.target_size = 0
        for slot in self._slots.values():
            if slot.job is None and not slot.retiring:
                self._retire(slot)
            slot.retiring = True

    def kill_all(self) -> list[Job]:
        """Stop every worker now; returns the jobs they held."""
        held = self.in_flight()
        for slot in self._slots.values():
            self._kill(slot)
            slot.conn.close()
        self._slots.clear()
        return held

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every idle worker to leave, then kill what remains."""
        deadline = self._clock() + timeout
        for slot in self._slots.values():
            if slot.job is None:
                self._send(slot, None)
        for slot in self._slots.values():
            slot.process.join(timeout=max(0.0, deadline - self._clock()))
        self.kill_all()
