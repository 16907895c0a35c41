"""Write-back batching: results wait here to be written together, one write-back at a
time, and come back here, in order, when the database did not take them.

Each statement costs PostgreSQL about as much as ten rows (docs/benchmarks.md), so results
are written in batches: when the oldest has waited `flush_seconds`, when a batch is full,
or at once when no worker holds a file (nothing can join the batch, and waiting would only
add latency). Pure: the daemon passes the clock and what the workers are doing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mediad.db.queue import FailureWrite
from mediad.models import Completion, Failure, Job, Record


@dataclass(frozen=True)
class Batch:
    """A write-back: the rows written as done, and the failures with their decision."""

    completions: list[Completion]
    done: list[tuple[Job, Record]]
    failures: list[FailureWrite]


class WriteBack:
    def __init__(self, flush_seconds: float, batch_size: int) -> None:
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.pending: list[Completion] = []  # waiting to be written
        self.writing: list[Completion] = []  # in the write-back under way
        self._first_at = 0.0  # when the oldest pending result came

    def __bool__(self) -> bool:
        """Anything not written yet."""
        return bool(self.pending or self.writing)

    def add(self, completions: list[Completion], now: float) -> None:
        if not completions:
            return
        if not self.pending:
            self._first_at = now
        self.pending.extend(completions)

    def due(self, now: float, *, workers_busy: bool, force: bool = False) -> bool:
        """Whether to write the pending results now. `force`: stopping, write what there is."""
        if not self.pending or self.writing:
            return False
        waited = now - self._first_at >= self.flush_seconds
        full = len(self.pending) >= self.batch_size
        return force or waited or full or not workers_busy

    def due_in(self, now: float, *, workers_busy: bool) -> float | None:
        """Seconds until `due` turns true by itself (None: it will not)."""
        if not self.pending or self.writing:
            return None
        if not workers_busy:
            return 0.0
        return max(0.0, self._first_at + self.flush_seconds - now)

    def take(self, decide: Callable[[Job, Failure], FailureWrite]) -> Batch:
        """The pending results, now being written; `decide` takes each failure's retry
        decision."""
        batch, self.pending = self.pending, []
        self.writing = batch
        done = [(c.job, c.outcome) for c in batch if not isinstance(c.outcome, Failure)]
        failures = [decide(c.job, c.outcome) for c in batch if isinstance(c.outcome, Failure)]
        return Batch(batch, done, failures)

    def written(self) -> list[Completion]:
        """The write-back went through: its results are settled."""
        batch, self.writing = self.writing, []
        return batch

    def failed(self, now: float) -> list[Completion]:
        """Nothing was written: the whole batch waits again, first, in order."""
        batch, self.writing = self.writing, []
        self._requeue(batch, now)
        return batch

    def partly_written(self, now: float) -> tuple[list[Completion], list[Completion]]:
        """The results were committed but not the failures: only the failures wait again
        (writing a result twice would be refused by the fence and counted as stale).
        Returns (settled, waiting again)."""
        batch, self.writing = self.writing, []
        unwritten = [c for c in batch if isinstance(c.outcome, Failure)]
        settled = [c for c in batch if not isinstance(c.outcome, Failure)]
        self._requeue(unwritten, now)
        return settled, unwritten

    def unwritten(self) -> list[Completion]:
        """At exit: everything that was not written."""
        return self.pending + self.writing

    def _requeue(self, completions: list[Completion], now: float) -> None:
        self.pending = completions + self.pending
        self._first_at = now
