"""The daemon's database threads: statements run here, beside the main loop, so that
workers are fed while a claim or a write-back waits on the database.

The main loop submits requests (mediad/daemon/requests.py) and later takes the answers.
Requests run on one of two lanes, each a thread with its own pooled connection:
write-backs on one, everything else (claims, renewals, rescues, releases) on the other,
so a claim never waits behind a write. Within a lane, requests run one at a time, in the
order submitted. Every answer wakes the loop.

This module imports psycopg although it is not the database layer: it is the one place
every request of the daemon passes through, so telling the database's errors from bugs
here covers every request by construction, including store methods not written yet. The
store turns lost connections into DatabaseUnavailable itself (the command line needs
that too); what it lets through (a revoked grant, a read-only server) is caught here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from mediad.errors import DatabaseUnavailable
from mediad.logs import mask_text

if TYPE_CHECKING:
    from mediad.daemon.requests import Request
    from mediad.db.queue import Queue

T = TypeVar("T")


def unavailable(exc: Exception) -> DatabaseUnavailable | None:
    """The database's trouble as "database unavailable", retried after a back-off: a lost
    connection, but also a revoked grant or a server turned read-only by a failover, which
    a restart would not mend either and which must not crash-loop the daemon into
    systemd's start limit. None: not the database's (a bug): the loop re-raises it."""
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if isinstance(exc, psycopg.Error):
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return DatabaseUnavailable(f"database unavailable: {mask_text(first)}")
    return None


@dataclass(frozen=True)
class Answer:
    """How a request went. `deliver` hands its value to the handler it was submitted
    with (None: it has no value); `error`: the database's trouble, whole or partial;
    `bug`: anything else, re-raised by the loop."""

    request: Request[Any]
    seconds: float = 0.0
    deliver: Callable[[], None] | None = None
    error: DatabaseUnavailable | None = None
    on_error: Callable[[DatabaseUnavailable], None] | None = None
    bug: Exception | None = None


@dataclass(frozen=True)
class _Job:
    request: Request[Any]
    store: Queue
    done: Callable[[Any], None]
    failed: Callable[[DatabaseUnavailable], None] | None


_STOP = object()


class DatabaseThreads:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._answers: SimpleQueue[Answer] = SimpleQueue()
        self._wake = wake
        self._lanes = {name: SimpleQueue[Any]() for name in ("write", "other")}
        self._threads = [
            threading.Thread(target=self._run, args=(queue,), name=f"mediad-db-{name}", daemon=True)
            for name, queue in self._lanes.items()
        ]
        self.outstanding: dict[str, int] = {}  # touched by the main loop only

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        request: Request[T],
        store: Queue,
        done: Callable[[T], None],
        failed: Callable[[DatabaseUnavailable], None] | None = None,
    ) -> None:
        self.outstanding[request.kind] = self.outstanding.get(request.kind, 0) + 1
        self._lanes[request.lane].put(_Job(request, store, done, failed))

    def busy(self, kind: str) -> bool:
        return self.outstanding.get(kind, 0) > 0

    def idle(self) -> bool:
        return not any(self.outstanding.values())

    def _taken(self, answer: Answer) -> Answer:
        self.outstanding[answer.request.kind] -= 1
        return answer

    def answers(self) -> list[Answer]:
        found: list[Answer] = []
        while True:
            try:
                found.append(self._taken(self._answers.get_nowait()))
            except Empty:
                return found

    def wait_answer(self, timeout: float) -> Answer | None:
        """Block for the next answer (used while stopping, when the loop has nothing else)."""
        try:
            return self._taken(self._answers.get(timeout=timeout))
        except Empty:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        for queue in self._lanes.values():
            queue.put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=timeout)

    def _run(self, requests: SimpleQueue[Any]) -> None:
        while True:
            job = requests.get()
            if job is _STOP:
                return
            self._answers.put(_answer(job))
            self._wake()


def _answer(job: _Job) -> Answer:
    request, started = job.request, time.perf_counter()
    try:
        value = request.run(job.store)
    except Exception as exc:  # never lose the loop's bookkeeping to a surprise
        error = unavailable(exc)
        seconds = time.perf_counter() - started
        if error is None:
            return Answer(request, seconds, bug=exc)
        return Answer(request, seconds, error=error, on_error=job.failed)
    seconds = time.perf_counter() - started

    def deliver() -> None:
        job.done(value)

    return Answer(request, seconds, deliver, request.trouble(value), job.failed)
