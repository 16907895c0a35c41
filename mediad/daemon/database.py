"""The daemon's one way to the database: requests go to the database threads, and every
answer comes back through `handle`, where errors, back-off and latency are dealt with
once for all requests.

The back-off: after a failure no request is submitted before `retry_at`; any request
that succeeds ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from mediad import metrics
from mediad.daemon.dbthread import Answer, DatabaseThreads
from mediad.daemon.requests import Request
from mediad.db.queue import Queue
from mediad.errors import DatabaseUnavailable
from mediad.retry import Backoff

log = structlog.get_logger("mediad")

T = TypeVar("T")
# docs/operations.md: 0.5, 1, 2, 4, 8 s, then 10 s between tries.
DB_BACKOFF = Backoff(first=0.5, most=10.0)


class Database:
    def __init__(self, store: Queue, wake: Callable[[], None]) -> None:
        self.store = store  # replaced when a reload switches databases
        self._threads = DatabaseThreads(wake)
        self._failures = 0
        self.retry_at = 0.0

    def start(self) -> None:
        self._threads.start()

    def stop(self) -> None:
        self._threads.stop()

    def submit(
        self,
        request: Request[T],
        done: Callable[[T], None],
        failed: Callable[[DatabaseUnavailable], None] | None = None,
    ) -> None:
        """`done` gets the answer's value (a partial failure included: see Write);
        `failed`, the error when there is no value, after the back-off is set."""
        self._threads.submit(request, self.store, done, failed)

    def busy(self, request: type[Request[Any]]) -> bool:
        return self._threads.busy(request.kind)

    def idle(self) -> bool:
        return self._threads.idle()

    def backing_off(self, now: float) -> bool:
        return now < self.retry_at

    def retry_now(self) -> None:
        """Stopping: the last attempts do not wait for the back-off."""
        self.retry_at = 0.0

    def handle_answers(self) -> None:
        for answer in self._threads.answers():
            self.handle(answer)

    def wait_and_handle(self, timeout: float) -> Answer | None:
        answer = self._threads.wait_answer(timeout)
        if answer is not None:
            self.handle(answer)
        return answer

    def handle(self, answer: Answer) -> None:
        if answer.bug is not None:
            raise answer.bug  # a bug is not the database being away: never retried
        label = answer.request.label
        if answer.error is None:
            self._reachable()
            metrics.DB_SECONDS.labels(label).observe(answer.seconds)
        else:
            self._back_off(label, answer.error)
            if answer.deliver is None and answer.on_error is not None:
                answer.on_error(answer.error)
        if answer.deliver is not None:
            answer.deliver()

    def _back_off(self, operation: str, exc: DatabaseUnavailable) -> None:
        metrics.DB_ERRORS.labels(operation).inc()
        self._failures += 1
        delay = DB_BACKOFF.delay(self._failures)
        self.retry_at = time.monotonic() + delay
        log.warning(
            "database unavailable: will retry",
            operation=operation,
            error=str(exc),
            retry_in_s=round(delay, 2),
        )

    def _reachable(self) -> None:
        if self._failures:
            log.info("database reachable again")
        self._failures = 0
        self.retry_at = 0.0
