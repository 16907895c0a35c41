"""Results, from the workers to the database: logged and counted as they come, held back
for their mount's window when they are timeouts on a network mount, written in batches
(mediad/daemon/writeback.py), and counted in the tally once written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from mediad import metrics
from mediad.daemon.mode import Phase
from mediad.daemon.requests import Write, Written
from mediad.daemon.writeback import WriteBack
from mediad.db.queue import FailureWrite, WriteResult
from mediad.models import Completion, Failure, Job

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")


class Results:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        daemon = supervisor.config.daemon
        self.writeback = WriteBack(daemon.flush_seconds, daemon.batch_size)
        self.received = 0  # results received from workers, written or not
        self.timed_out: dict[int, int | None] = {}  # row id -> device, from the pool

    def record(self, completions: list[Completion]) -> None:
        """What the workers answered (and the pool's timeouts)."""
        if self.timed_out:
            now = time.monotonic()
            kept = []
            for completion in completions:
                row_id = completion.job.id
                if row_id in self.timed_out:
                    device = self.timed_out.pop(row_id)
                    # On a network mount: held back (or given back) until its window decides.
                    if self.sup.storage.timed_out(completion, device, now):
                        self.sup.ledger.park([completion.job])
                        continue  # counted as received when its window lets it out
                kept.append(completion)
            completions = kept
        self.results_in(completions)

    def results_in(self, completions: list[Completion]) -> None:
        if not completions:
            return
        self.received += len(completions)
        read_bytes = 0
        for completion in completions:
            outcome = completion.outcome
            metrics.EXTRACT_SECONDS.observe(outcome.seconds)
            if isinstance(outcome, Failure):
                log.warning(
                    "file failed",
                    path=completion.job.path,
                    row_id=completion.job.id,
                    error_class=str(outcome.failure_class),
                    error=outcome.message,
                    attempt=completion.job.attempts,
                    worker_pid=completion.worker_pid,
                )
            else:
                read_bytes += outcome.size_bytes
        metrics.BYTES.inc(read_bytes)  # once per turn: a counter's lock per file shows
        self.sup.ledger.answered(c.job for c in completions)
        self.writeback.add(completions, time.monotonic())

    def reconfigure(self, flush_seconds: float, batch_size: int) -> None:
        self.writeback.flush_seconds = flush_seconds
        self.writeback.batch_size = batch_size

    def flush_in(self, now: float) -> float | None:
        return self.writeback.due_in(now, workers_busy=bool(self.sup.pool.busy_count()))

    def maybe_flush(self, now: float, force: bool = False) -> None:
        sup = self.sup
        if sup.db.backing_off(now):
            return
        # No worker holds a file: nothing can join this batch, so waiting only adds
        # latency. While they are busy, waiting makes fewer, bigger write-backs.
        busy = bool(sup.pool.busy_count())
        if not self.writeback.due(
            now, workers_busy=busy, force=force or sup.phase is not Phase.RUNNING
        ):
            return
        batch = self.writeback.take(self._decide)
        sup.ledger.writing(c.job for c in batch.completions)
        request = Write(batch.done, batch.failures)
        sup.db.submit(request, lambda written: self._written(request, written), self._not_written)

    def _not_written(self, _error: Exception) -> None:
        # Kept, in order, for the next attempt: nothing is dropped.
        batch = self.writeback.failed(time.monotonic())
        self.sup.ledger.unwritten(c.job for c in batch)

    def _written(self, request: Write, written: Written) -> None:
        sup = self.sup
        if not isinstance(written.failed, WriteResult):
            # The results are committed, the failures are not: those alone go again.
            settled, unwritten = self.writeback.partly_written(time.monotonic())
            sup.ledger.unwritten(c.job for c in unwritten)
            sup.ledger.settle(c.job for c in settled)
            sup.storage.forget(c.job for c in settled)
            self._count(written.done, WriteResult(frozenset(), 0), [])
            return
        batch = self.writeback.written()
        sup.ledger.settle(c.job for c in batch)
        sup.storage.forget(c.job for c in batch)
        metrics.BATCH_ROWS.labels("write").observe(len(batch))
        self._count(written.done, written.failed, request.failures)
        if sup.on_progress:
            sup.on_progress(sup.tally)

    def _count(
        self, done: WriteResult, failed: WriteResult, failures: Sequence[FailureWrite]
    ) -> None:
        tally = self.sup.tally
        stale = done.stale + failed.stale
        if stale:
            metrics.STALE.inc(stale)
            tally.stale += stale
            log.warning(
                "results refused by the fence: another daemon owns these rows now", stale=stale
            )
        tally.done += done.written
        metrics.FILES.labels("done", "").inc(done.written)
        for write in failures:
            if write.job.id not in failed.written_ids:
                continue  # fenced off: not ours to count
            cls = str(write.failure.failure_class)
            if write.final:
                tally.failed[cls] = tally.failed.get(cls, 0) + 1
                metrics.FILES.labels("failed", cls).inc()
            else:
                tally.retried += 1
                metrics.FILES.labels("retry", cls).inc()
                self.sup.claims.exhausted = False  # the retry is due at once in a one-shot run
                self.sup.claims.more_work = True

    def _decide(self, job: Job, failure: Failure) -> FailureWrite:
        sup = self.sup
        final = sup.policy.is_final(failure.failure_class, job.attempts)
        # A one-shot run retries at once: it ends when nothing due is left.
        delay = 0.0 if sup.mode.one_shot else sup.policy.delay_seconds(job.attempts)
        return FailureWrite(job, failure, final, delay)
