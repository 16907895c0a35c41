"""Workers sent SIGKILL that have not exited yet: reaped when they exit, stuck if they
outlive the kill by `STUCK_AFTER_SECONDS` (why: mediad/pool/__init__.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import selectors
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_any
from multiprocessing.process import BaseProcess
from typing import Any

# A killed worker that has not exited this long after SIGKILL is stuck in the kernel.
STUCK_AFTER_SECONDS = 3.0
# How often killed workers are looked at when their sentinels say nothing (a process can
# close its descriptors, firing the sentinel, and then hang on its way out).
KILLED_CHECK_EVERY = 0.5

EventSink = Callable[[str, dict[str, Any]], None]


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


class KilledWorkers:
    """The killed workers of one pool, by sentinel. Their sentinels share the pool's
    selector, tagged "reap": the pool hands those to `sentinel_fired`."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        clock: Callable[[], float],
        on_event: EventSink,
    ) -> None:
        self._selector = selector
        self._clock = clock
        self._on_event = on_event
        self._killed: dict[int, StuckProcess] = {}
        self._next_killed_check = 0.0
        self._at_stuck_limit = False  # said so in the log, once per episode

    def __len__(self) -> int:
        """Killed workers not gone yet: stuck, or about to be if they do not exit."""
        return len(self._killed)

    def stuck(self) -> list[StuckProcess]:
        return [k for k in self._killed.values() if k.stuck]

    def stuck_count(self) -> int:
        return sum(1 for k in self._killed.values() if k.stuck)

    def unexited_mounts(self) -> set[str]:
        return {k.mount for k in self._killed.values() if k.mount is not None and not k.stuck}

    def hold_forking(self, limit: int, elsewhere: tuple[int, int]) -> bool:
        """Whether a new worker would take the killed ones not yet gone past `limit`,
        counting `elsewhere` (other processes of the daemon: killed and not gone, stuck
        among them). Those not stuck yet count too (they may be about to be), so stuck
        processes never outnumber the limit through replacements; a killed worker that
        exits, as one normally does within milliseconds, lifts the hold at once."""
        others_unexited, others_stuck = elsewhere
        unexited = len(self._killed) + others_unexited
        stuck = self.stuck_count() + others_stuck
        if unexited < limit:
            if self._at_stuck_limit:
                self._at_stuck_limit = False
                self._on_event("stuck_limit_cleared", {"stuck": stuck, "limit": limit})
            return False
        if not self._at_stuck_limit and stuck >= limit:
            self._at_stuck_limit = True
            self._on_event("stuck_limit", {"stuck": stuck, "limit": limit})
        return True

    def watch(self, killed: StuckProcess) -> None:
        """A worker was sent SIGKILL: watch for its exit instead of waiting for it."""
        self._killed[killed.process.sentinel] = killed
        self._selector.register(killed.process.sentinel, selectors.EVENT_READ, ("reap", killed))

    def sentinel_fired(self, killed: StuckProcess) -> None:
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
            self._on_event(
                "stuck_exited",
                {
                    "pid": killed.pid,
                    "path": killed.path,
                    "mount": killed.mount,
                    "stuck_for_s": round(self._clock() - killed.killed_at, 1),
                },
            )
        return True

    def check(self) -> None:
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
                self._on_event(
                    "worker_stuck",
                    {
                        "pid": killed.pid,
                        "path": killed.path,
                        "mount": killed.mount,
                        "device": killed.device,
                        "seconds_since_kill": round(now - killed.killed_at, 1),
                    },
                )

    def next_check_in(self) -> float | None:
        """When a killed worker not stuck yet will be, for the loop's wait."""
        due = [k.killed_at + STUCK_AFTER_SECONDS for k in self._killed.values() if not k.stuck]
        if not due:
            return None
        return max(0.0, min(due) - self._clock(), self._next_killed_check - self._clock())

    def leave_behind(self) -> list[StuckProcess]:
        """At close: reap those that exited, forget the others, and say which they are."""
        for killed in list(self._killed.values()):
            self._reap(killed)
        left = list(self._killed.values())
        self._killed.clear()
        for killed in left:
            _leave_behind(killed.process)
        return left


def await_exits(processes: Iterable[BaseProcess], seconds: float) -> None:
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
