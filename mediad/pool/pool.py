"""The pool the supervisor drives: its size and restarts, files sent and results read,
deaths and timeouts charged. Why it works this way is in mediad/pool/__init__.py."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from mediad.errors import MediadError
from mediad.extract import wire
from mediad.extract.worker import WorkerSettings
from mediad.models import Completion, Job
from mediad.pace import FilePace, answer_every
from mediad.pool.deaths import death_failure, describe_exit, timeout_failure
from mediad.pool.killed import EventSink, StuckProcess, await_exits
from mediad.pool.processes import MountOf, Processes
from mediad.pool.slot import Slot, reading_since
from mediad.retry import Backoff

# A worker that dies this soon after starting counts as failing to boot: back off.
EARLY_DEATH_SECONDS = 2.0
MAX_RESTART_DELAY = 30.0
# Workers dying right after their start wait 0.2 s, then 0.4 s ... before the next one.
RESTART_BACKOFF = Backoff(0.2, MAX_RESTART_DELAY)
# The longest the loop waits for killed workers to exit (kill_all): after it, whoever is
# left is watched like any other killed worker.
KILL_WAIT_SECONDS = 1.0


class WorkerBootError(MediadError):
    """Workers cannot start at all (MediaInfo missing): restarting would only spin."""


class WorkerPool:
    def __init__(
        self,
        settings: WorkerSettings,
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
        self.on_event: EventSink = on_event or (lambda name, fields: None)
        self._clock = clock
        # Through a lambda: the supervisor sets `on_event` after construction.
        self._processes = Processes(clock, lambda name, fields: self.on_event(name, fields))
        self._killed = self._processes.killed
        self._early_deaths = 0
        self._next_start_at = 0.0
        self._returned: list[Job] = []
        self._closed = False
        # Workers beyond `target_size`, one for each worker waiting on a network mount's
        # read while files elsewhere wait (set by the daemon: mediad/daemon/spares.py).
        self.spares = 0
        self.library_version = ""  # libmediainfo's, as the first worker to start says

    # --- shape ------------------------------------------------------------------------

    @property
    def slots(self) -> list[Slot]:
        return list(self._processes.slots())

    def live_count(self) -> int:
        return sum(1 for s in self._processes.slots() if not s.retiring)

    def depth(self) -> int:
        """Files each worker may hold now: about 50 ms of work, at most `prefetch`."""
        return self.pace.depth(self.prefetch)

    def accepting(self) -> list[Slot]:
        """Workers that can take another file, the least loaded first."""
        depth = self.depth()
        open_slots = [
            s
            for s in self._processes.slots()
            if s.ready and not s.retiring and len(s.queue) < depth
        ]
        return sorted(open_slots, key=lambda s: len(s.queue))

    def idle(self) -> list[Slot]:
        return [s for s in self.accepting() if not s.queue]

    def busy_count(self) -> int:
        return sum(1 for s in self._processes.slots() if s.queue)

    def in_flight(self) -> list[Job]:
        """Every file sent to a worker and not answered yet (read now, or queued)."""
        return [job for s in self._processes.slots() for job in s.queue]

    def take_returned(self) -> list[Job]:
        """Files that were queued at a worker that died: never started, still ours."""
        returned, self._returned = self._returned, []
        return returned

    def resize(self, size: int) -> None:
        """Grow at once; shrink by retiring idle workers first, busy ones after their files."""
        self.target_size = max(0, size)
        surplus = self.live_count() - self._wanted()
        if surplus <= 0:
            return
        candidates = sorted(self._processes.slots(), key=lambda s: (len(s.queue), -s.started_at))
        for slot in candidates:
            if surplus == 0:
                break
            if not slot.retiring:
                self._retire(slot)
                surplus -= 1

    def replace_all(self) -> None:
        """New settings: every worker leaves (idle ones now, busy ones after their files)
        and new ones start with the new settings."""
        for slot in self._processes.slots():
            if not slot.retiring:
                self._retire(slot)
        self.maintain()

    def maintain(self) -> None:
        """Start workers up to the target size (and the spares), respecting the restart
        back-off and the limit on stuck processes; idle workers beyond them leave."""
        self.check_killed()
        self._retire_surplus()
        now = self._clock()
        while self.live_count() < self._wanted() and now >= self._next_start_at:
            if self._forking_held_back():
                return
            self._spawn()

    def _wanted(self) -> int:
        return self.target_size + self.spares if self.target_size else 0

    def _retire_surplus(self) -> None:
        """Spares no longer needed (the read they stood in for came back): the idle
        workers beyond the count leave; busy ones are never cut short."""
        surplus = self.live_count() - self._wanted()
        for slot in list(self._processes.slots()):
            if surplus <= 0:
                return
            if not slot.retiring and not slot.queue and slot.ready:
                self._retire(slot)
                surplus -= 1

    def next_start_in(self) -> float | None:
        if self.live_count() >= self._wanted() or self._forking_held_back():
            return None  # a killed worker that exits wakes the loop through its sentinel
        return max(0.0, self._next_start_at - self._clock())

    # --- stuck processes ----------------------------------------------------------------

    def stuck(self) -> list[StuckProcess]:
        """Killed workers that outlived SIGKILL: held in the kernel by a read that never
        returns (a network or FUSE mount that stopped answering)."""
        return self._killed.stuck()

    def unexited_mounts(self) -> set[str]:
        """Mounts that workers killed, not gone and not stuck yet, were reading: until
        each exits (as it does within milliseconds) or proves stuck (which stalls a
        network mount), nothing more should go there."""
        return self._killed.unexited_mounts()

    def stuck_count(self) -> int:
        return self._killed.stuck_count()

    def unexited_count(self) -> int:
        """Killed workers not gone yet: stuck, or about to be if they do not exit."""
        return len(self._killed)

    def stuck_limit(self) -> int:
        """Stuck processes at which no worker is forked: `max_stuck`, or the pool's size."""
        return self.max_stuck if self.max_stuck > 0 else max(1, self.target_size)

    def at_stuck_limit(self) -> bool:
        return self.stuck_count() >= self.stuck_limit()

    def _forking_held_back(self) -> bool:
        return self._killed.hold_forking(self.stuck_limit(), self.stuck_elsewhere())

    def _watch_killed(self, slot: Slot) -> None:
        self._processes.watch_killed(slot, self.mount_of)

    def check_killed(self) -> None:
        """Reap killed workers that exited; call the ones still there long enough stuck."""
        self._killed.check()

    def _spawn(self) -> None:
        jitter = random.randint(0, max(0, self.max_files_per_worker // 10))
        retire_after = (self.max_files_per_worker + jitter) if self.max_files_per_worker else 0
        self._processes.start(self.settings, retire_after)

    def _retire(self, slot: Slot) -> None:
        slot.retiring = True
        self._maybe_dismiss(slot)

    def _maybe_dismiss(self, slot: Slot) -> None:
        """A retiring worker is told to leave once it has answered everything it holds."""
        if slot.retiring and slot.ready and not slot.queue and not slot.told_to_leave:
            slot.told_to_leave = True
            self._send(slot, None)

    def _send(self, slot: Slot, message: wire.Files | None) -> bool:
        try:
            wire.send(slot.conn, message)
        except OSError:
            return False  # the worker is dying; its sentinel will tell
        return True

    # --- waiting ----------------------------------------------------------------------

    def register_wakeup(self, fd: int) -> None:
        self._processes.register_wakeup(fd)

    def wait(self, timeout: float) -> tuple[list[tuple[str, Slot]], bool]:
        """What became ready (for `collect`), and whether the wake-up fd was written."""
        return self._processes.wait(timeout)

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
            if not self._processes.holds(slot):
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
                if slot.conn.closed or not wire.readable(slot.conn):
                    break
                message = wire.receive(slot.conn)
            except (EOFError, OSError):
                break
            completions.extend(self._handle_message(slot, message))
        return completions

    def _handle_message(self, slot: Slot, message: tuple[Any, ...]) -> list[Completion]:
        tag = message[0]
        if tag == wire.READY:
            slot.ready = True
            self.library_version = str(message[2]) if len(message) > 2 else ""
            self._maybe_dismiss(slot)
            return []
        if tag == wire.BOOT_ERROR:
            raise WorkerBootError(str(message[1]))
        if tag != wire.RESULT:
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

    def _bury(self, slot: Slot) -> list[Completion]:
        # The sentinel fires as the process closes its descriptors, a moment before it
        # can be reaped: a short wait reaps it (no zombies). Not Process.join: once the
        # sentinel has fired, it waits for the exit without a bound.
        await_exits([slot.process], 0.1)
        exitcode = slot.process.exitcode
        self._processes.forget(slot)
        if exitcode is None:
            # Held on its way out (say, closing a file on a mount that stopped answering):
            # dead to us, watched until it goes.
            self._processes.kill(slot)
            self._watch_killed(slot)
        if exitcode == wire.BOOT_ERROR_EXIT:
            raise WorkerBootError("a worker could not start (see its message above)")
        if slot.retiring and not slot.queue:
            return []
        now = self._clock()
        if now - slot.started_at < EARLY_DEATH_SECONDS:
            self._early_deaths += 1
            self._next_start_at = now + RESTART_BACKOFF.delay(self._early_deaths)
        head, started, others = slot.charged()
        self.on_event(
            "worker_died",
            {"pid": slot.pid, "how": describe_exit(exitcode), "path": head.path if head else None},
        )
        # Not read when the worker died: back to the supervisor, uncharged, every time.
        self._returned.extend(others)
        if head is None:
            return []
        failure = death_failure(exitcode, now - started, self.settings.cpu_seconds)
        return [Completion(head, failure, slot.pid)]

    # --- deadlines --------------------------------------------------------------------

    def next_deadline_in(self) -> float | None:
        """When the loop must look again: a file's timeout, or a killed worker's."""
        deadlines = [
            reading_since(s) + self.timeout_seconds for s in self._processes.slots() if s.queue
        ]
        found = [max(0.0, min(deadlines) - self._clock())] if deadlines else []
        stuck_check = self._killed.next_check_in()
        if stuck_check is not None:
            found.append(stuck_check)
        return min(found) if found else None

    def enforce_timeouts(self) -> list[Completion]:
        """Kill workers whose file ran past the timeout; the file fails with `timeout`.
        Then look at the workers killed before (reaped, or stuck)."""
        now = self._clock()
        completions: list[Completion] = []
        for slot in list(self._processes.slots()):
            if not slot.queue or now - reading_since(slot) < self.timeout_seconds:
                continue
            head, started, others = slot.charged()
            # A worker stuck in native code cannot handle a polite signal: SIGKILL. Never
            # waited for: one held in a read of a dead mount does not die until it answers.
            self._processes.kill(slot)
            self._processes.forget(slot)
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
            failure = timeout_failure(self.timeout_seconds, now - started)
            completions.append(Completion(head, failure, slot.pid))
        self.check_killed()
        return completions

    # --- shutdown -----------------------------------------------------------------------

    def retire_idle(self) -> None:
        """Drain: idle workers leave now; busy ones finish the files they hold first."""
        self.target_size = 0
        for slot in self._processes.slots():
            self._retire(slot)

    def kill_all(self) -> list[Job]:
        """Stop every worker now; returns the files they held (read or queued). Waits
        for them all together, KILL_WAIT_SECONDS at most: any still there is watched
        like a worker killed for a timeout."""
        held = self.in_flight() + self.take_returned()
        self._processes.kill_all(KILL_WAIT_SECONDS, self.mount_of)
        return held

    def close(self) -> None:
        """Stop what is left (nothing, after a drain) and release the selector. Idempotent:
        a command that fails before its supervisor runs closes the pool it started.
        Killed workers that have still not exited are left behind (and said so)."""
        if self._closed:
            return
        self.kill_all()
        left = self._processes.close()
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
