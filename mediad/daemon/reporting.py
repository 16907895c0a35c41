"""What the daemon tells the outside: sd_notify READY and STATUS, the periodic summary
log line, the pool's events in the log, gauges, and the queue's depth (measured every
15 s, not on every loop turn)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from mediad import metrics
from mediad.daemon.mode import Phase
from mediad.daemon.requests import Measure, QueueMeasure

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")

STATUS_EVERY = 5.0
SUMMARY_EVERY = 30.0
QUEUE_MEASURE_EVERY = 15.0
GAUGES_EVERY = 0.5  # the gauges are scraped every few seconds: not every loop turn

_POOL_EVENTS: dict[str, tuple[str, str, str | None]] = {
    # event: (log level, message, restart reason counted)
    "worker_died": ("warning", "worker died", "crash"),
    "worker_timeout": ("warning", "worker killed: file ran past the timeout", "timeout"),
    "worker_recycled": ("debug", "worker recycled", "recycled"),
    "worker_stuck": ("warning", "worker stuck", None),
    "stuck_exited": ("info", "stuck worker exited", None),
    "stuck_limit": ("warning", "stuck workers at the limit: not replacing workers", None),
    "stuck_limit_cleared": ("info", "stuck workers below the limit: replacing workers again", None),
    "left_behind": ("warning", "left behind stuck processes", None),
}


class Reporter:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self._announced_ready = False
        self._next_status = 0.0
        self._next_summary = time.monotonic() + SUMMARY_EVERY
        self._next_queue_measure = 0.0
        self._next_gauges = 0.0
        self._backlog: int | None = None
        self._connections_counted = 0

    def tick(self, now: float) -> None:
        self._maybe_summarise(now)
        self._maybe_measure_queue(now)
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGES_EVERY
            self._update_gauges()

    def maybe_announce(self, now: float) -> None:
        """READY once the workers are up; then a STATUS line every few seconds."""
        sup = self.sup
        if not self._announced_ready:
            slots = sup.pool.slots
            if slots and all(slot.ready for slot in slots):
                self._announced_ready = True
                sup.notifier.ready(self.status_text())
                log.info("ready", workers=len(slots))
            return
        if now >= self._next_status and sup.phase is Phase.RUNNING:
            self._next_status = now + STATUS_EVERY
            sup.notifier.status(self.status_text())

    def status_text(self) -> str:
        sup = self.sup
        tally = sup.tally
        elapsed = max(1e-9, time.monotonic() - tally.started_at)
        backlog = "?" if self._backlog is None else str(self._backlog)
        text = (
            f"{tally.finished / elapsed:.1f} files/s, backlog {backlog}, "
            f"{sup.pool.busy_count()}/{len(sup.pool.slots)} workers busy, "
            f"{tally.done} done, {sum(tally.failed.values())} failed"
        )
        stalled = sorted(sup.storage.stalled())
        if stalled:
            text += f"; mount stalled: {', '.join(stalled)}"
        stuck, limit = sup.mounts.stuck_now(), sup.pool.stuck_limit()
        if stuck:
            text += f"; {stuck} stuck processes (limit {limit})"
            if stuck >= limit:
                text += ": network mounts get no files"
        return text

    def pool_event(self, name: str, fields: dict[str, Any]) -> None:
        if name == "worker_timeout" and fields.get("row_id") is not None:
            self.sup.results.timed_out[fields["row_id"]] = fields.get("device")
        known = _POOL_EVENTS.get(name)
        if known is None:
            return
        level, message, reason = known
        if reason is not None:
            metrics.WORKER_RESTARTS.labels(reason).inc()
        getattr(log, level)(message, **fields)

    def _maybe_summarise(self, now: float) -> None:
        if now < self._next_summary:
            return
        self._next_summary = now + SUMMARY_EVERY
        tally = self.sup.tally
        elapsed = max(1e-9, now - tally.started_at)
        log.info(
            "progress",
            done=tally.done,
            failed=sum(tally.failed.values()),
            retried=tally.retried,
            files_per_s=round(tally.finished / elapsed, 1),
            busy=self.sup.pool.busy_count(),
            buffered=len(self.sup.ledger.buffer),
        )

    def _maybe_measure_queue(self, now: float) -> None:
        """Queue depth and the oldest due row, for the gauges; not on every loop turn."""
        sup = self.sup
        if sup.mode.one_shot or now < self._next_queue_measure or sup.db.backing_off(now):
            return
        if sup.db.busy(Measure):
            return
        self._next_queue_measure = now + QUEUE_MEASURE_EVERY
        sup.db.submit(Measure(), self._measured)

    def _measured(self, measure: QueueMeasure) -> None:
        metrics.QUEUE_MEASURED_TIME.set(time.time())
        for state, value in measure.counts.items():
            metrics.QUEUE_ROWS.labels(state).set(value)
        self._backlog = measure.counts["pending"]
        metrics.OLDEST_PENDING.set(measure.oldest_pending_seconds or 0.0)
        metrics.show_fleet(measure.daemons)

    def _count_connections(self) -> None:
        sup = self.sup
        listener = sup.listener
        opened = sup.store.db.connections_opened() + (
            listener.connections_opened if listener is not None else 0
        )
        if opened > self._connections_counted:
            metrics.DB_CONNECTIONS_OPENED.inc(opened - self._connections_counted)
        # A new store (reload) or listener starts from zero again.
        self._connections_counted = opened

    def _update_gauges(self) -> None:
        pool = self.sup.pool
        self._count_connections()
        metrics.WORKERS_TARGET.set(pool.target_size)
        busy = pool.busy_count()
        metrics.WORKERS.labels("busy").set(busy)
        metrics.WORKERS.labels("idle").set(max(0, len(pool.slots) - busy))
        metrics.BUFFERED.set(len(self.sup.ledger.buffer))
