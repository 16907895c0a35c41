"""The pool's worker processes: started, killed, forgotten, and waited on through one
persistent selector that holds every worker's pipe and sentinel, the sentinels of
killed workers not gone yet, and the supervisor's wake-up pipe."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import selectors
import signal
from collections.abc import Callable, ValuesView

from mediad.extract.worker import WorkerSettings
from mediad.pool.boot import spawn_light, start_worker
from mediad.pool.killed import EventSink, KilledWorkers, StuckProcess, await_exits
from mediad.pool.slot import Slot

MountOf = Callable[[str | None, int | None], str | None]


class Processes:
    def __init__(self, clock: Callable[[], float], on_event: EventSink) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        spawn_light()
        self._slots: dict[int, Slot] = {}  # by sentinel
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self.killed = KilledWorkers(self._selector, clock, on_event)

    def slots(self) -> ValuesView[Slot]:
        return self._slots.values()

    def holds(self, slot: Slot) -> bool:
        """Whether the slot is still a live worker of the pool (not buried or killed)."""
        return slot.process.sentinel in self._slots

    def start(self, settings: WorkerSettings, retire_after: int) -> None:
        process, parent_conn, reading = start_worker(self._ctx, settings)
        slot = Slot(
            process=process,
            conn=parent_conn,
            started_at=self._clock(),
            retire_after=retire_after,
            pid=process.pid or 0,
            reading=reading,
        )
        self._slots[process.sentinel] = slot
        self._selector.register(parent_conn.fileno(), selectors.EVENT_READ, ("pipe", slot))
        self._selector.register(process.sentinel, selectors.EVENT_READ, ("exit", slot))

    def forget(self, slot: Slot) -> None:
        del self._slots[slot.process.sentinel]
        for fd in (slot.conn.fileno(), slot.process.sentinel):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
        slot.conn.close()

    @staticmethod
    def kill(slot: Slot) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)

    def watch_killed(self, slot: Slot, mount_of: MountOf) -> None:
        """A worker was sent SIGKILL: watch for its exit instead of waiting for it."""
        head, _started, _others = slot.charged()
        path, device = (head.path if head else None), slot.reading_device()
        self.killed.watch(
            StuckProcess(
                slot.process, slot.pid, path, device, self._clock(), mount_of(path, device)
            )
        )

    def kill_all(self, seconds: float, mount_of: MountOf) -> None:
        """SIGKILL every worker and wait for them all together, `seconds` at most: any
        still there is watched like a worker killed for a timeout."""
        slots = list(self._slots.values())
        for slot in slots:
            self.kill(slot)
        await_exits([slot.process for slot in slots], seconds)
        for slot in slots:
            self.forget(slot)
            if slot.process.exitcode is None:
                self.watch_killed(slot, mount_of)

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
                self.killed.sentinel_fired(item)
            else:
                ready.append((kind, item))
        return ready, woken

    def close(self) -> list[StuckProcess]:
        """Release the selector; returns the killed workers left behind (still there)."""
        left = self.killed.leave_behind()
        self._selector.close()
        return left
