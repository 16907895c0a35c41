"""The daemon obeying pauses (`mediad pause`, docs/operations.md).

The claim itself leaves paused rows alone (migration 0009), so what is left to this
daemon is the rows it already holds: buffered ones go back to the database uncharged,
files sent ahead to a worker but not started are withdrawn and go back the same way,
files being read finish. Leases are renewed and a drain runs as ever.

The pauses are read again when a notification says they changed (within a second with
LISTEN), every daemon.poll_seconds without it, and when one is due to end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from mediad import metrics
from mediad.daemon.requests import ReadPauses
from mediad.models import Job
from mediad.pauses import Pause, covered

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")


class Pausing:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.active: list[Pause] = []
        self.next_read = 0.0  # at once: a daemon starts knowing the pauses
        # Set by the listener's thread when a notification says the pauses changed: a
        # plain flag (one store, atomic), read by the loop after the wake-up that follows.
        self.stale = False

    def changed(self) -> None:
        self.stale = True

    def covers(self, job: Job) -> bool:
        return bool(self.active) and covered(self.active, job.path)

    def maybe_read(self, now: float) -> None:
        sup = self.sup
        if not (self.stale or now >= self.next_read):
            return
        if sup.db.busy(ReadPauses) or sup.db.backing_off(now):
            return
        self.stale = False
        self.next_read = now + sup.config.daemon.poll_seconds
        sup.db.submit(ReadPauses(), self._read, self._not_read)

    def _not_read(self, _error: Exception) -> None:
        # Logged and backed off by the one answer path (mediad/daemon/database.py); a
        # change heard meanwhile must not wait for the next poll: read again after it.
        self.stale = True

    def _read(self, found: list[Pause]) -> None:
        expired = [p for p in found if p.expired]
        if expired and not self.sup.db.busy(ReadPauses):
            # Lifted by this daemon (or one that got there first), then read again.
            self.sup.db.submit(ReadPauses(expire=True), self._expired, self._not_read)
        self._take(found)

    def _expired(self, found: list[Pause]) -> None:
        # A pause still over after the expiry is held by another daemon expiring it, or
        # by a marker (migration 0014): tried again at the next read, not at once, which
        # would send expiry after expiry for as long as the row is held.
        self._take(found)

    def _take(self, found: list[Pause]) -> None:
        active = [p for p in found if not p.expired]
        ends = [p.ends_in_s for p in active if p.ends_in_s is not None]
        if ends:  # read again as one ends, to lift it and claim its rows at once
            self.next_read = min(self.next_read, time.monotonic() + min(ends) + 0.05)
        self._gauges(active)
        if _keys(active) == _keys(self.active):
            self.active = active
            return
        lifted = bool(_keys(self.active) - _keys(active))
        self.active = active
        if lifted:
            self.sup.claims.more_work = True
        buffered = list(self.sup.ledger.buffer)
        kept = self.hold_back(buffered)
        log.info(
            "pauses changed",
            paused=[p.prefix or "everything" for p in active],
            given_back=len(buffered) - len(kept),
            withdrawing=self.sup.pool.withdraw(self.covers) if active else 0,
        )

    def hold_back(self, jobs: list[Job]) -> list[Job]:
        """Of `jobs` (held, not at a worker), the paused ones go back to the database,
        uncharged and due at once; returns the others."""
        if not self.active:
            return jobs
        paused = [job for job in jobs if self.covers(job)]
        if paused:
            self.sup.mounts.give_back(paused, 0.0, "paused")
        return [job for job in jobs if not self.covers(job)] if paused else jobs

    def _gauges(self, active: list[Pause]) -> None:
        metrics.PAUSED.set(len(active))
        metrics.PAUSED_SECONDS.set(max((p.age_s for p in active), default=0.0))


def _keys(pauses: list[Pause]) -> set[str | None]:
    return {p.prefix for p in pauses}
