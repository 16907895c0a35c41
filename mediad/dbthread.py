"""The supervisor's database threads: statements run here, beside the main loop, so that
workers are fed while a claim or a write-back waits on the database.

The main loop submits requests (plain callables on the store) and later takes the
answers. Requests run on one of two lanes, each a thread with its own pooled connection:
write-backs on one, everything else (claims, renewals, rescues, releases) on the other,
so a claim never waits behind a write. Within a lane, requests run one at a time, in the
order submitted. Every answer wakes the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from mediad.errors import DatabaseUnavailable

WRITE_KINDS = frozenset({"write"})


@dataclass(frozen=True)
class Answer:
    kind: str
    value: Any = None
    error: DatabaseUnavailable | None = None
    context: Any = None  # what the request was about (the batch written, the rows held...)
    seconds: float = 0.0


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

    def submit(self, kind: str, call: Callable[[], Any], context: Any = None) -> None:
        self.outstanding[kind] = self.outstanding.get(kind, 0) + 1
        lane = "write" if kind in WRITE_KINDS else "other"
        self._lanes[lane].put((kind, call, context))

    def busy(self, kind: str) -> bool:
        return self.outstanding.get(kind, 0) > 0

    def idle(self) -> bool:
        return not any(self.outstanding.values())

    def _taken(self, answer: Answer) -> Answer:
        self.outstanding[answer.kind] -= 1
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
            request = requests.get()
            if request is _STOP:
                return
            kind, call, context = request
            started = time.perf_counter()
            error: DatabaseUnavailable | None = None
            value: Any = None
            try:
                value = call()
            except DatabaseUnavailable as exc:
                error = exc
            except Exception as exc:  # never lose the loop's bookkeeping to a surprise
                error = DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
            self._answers.put(Answer(kind, value, error, context, time.perf_counter() - started))
            self._wake()
