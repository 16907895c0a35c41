"""Leases: the rows held are renewed every third of the lease; rows whose leases expired
anywhere are taken back (rescued); rows this daemon will not run are released.

Which rows are held, and which are lost when a renewal misses some, the ledger says
(mediad/daemon/ledger.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from mediad import metrics
from mediad.daemon.mode import Phase
from mediad.daemon.requests import Release, Renew, Rescue, Rescued
from mediad.models import Job

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")


class Leases:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.next_renew = 0.0
        self._next_rescue = 0.0

    def maybe_renew(self, now: float) -> None:
        sup = self.sup
        if now < self.next_renew or sup.db.backing_off(now) or sup.db.busy(Renew):
            return
        self.next_renew = now + sup.config.daemon.lease_seconds / 3
        held = sup.ledger.renewal()
        if not held:
            return
        request = Renew(held, sup.config.daemon.lease_seconds)
        sup.db.submit(request, lambda renewed: self._renewed(held, renewed))

    def _renewed(self, held: Sequence[Job], renewed: set[int]) -> None:
        metrics.LEASES_RENEWED.inc(len(renewed))
        lost = self.sup.ledger.leases_lost(held, renewed)
        if lost.lost:
            metrics.LEASES_LOST.inc(len(lost.lost))
            log.warning(
                "leases lost: another daemon may have taken these rows", rows=len(lost.lost)
            )
            self.sup.storage.forget(lost.dropped)  # else its mount bookkeeping would outlive it

    def maybe_rescue(self, now: float) -> None:
        sup = self.sup
        if now < self._next_rescue or sup.db.backing_off(now) or sup.phase is not Phase.RUNNING:
            return
        if sup.db.busy(Rescue):
            return
        self._next_rescue = now + max(1.0, sup.config.daemon.lease_seconds / 4)
        sup.db.submit(Rescue(sup.config.retry.max_attempts), self._rescued)

    def _rescued(self, rescued: Rescued) -> None:
        if rescued.requeued or rescued.failed:
            metrics.RECLAIMED.inc(rescued.requeued + rescued.failed)
            log.warning(
                "took back rows whose lease expired",
                requeued=rescued.requeued,
                failed=rescued.failed,
            )
            self.sup.claims.more_work = True

    def release(self, jobs: list[Job]) -> None:
        """Rows the ledger has marked leaving: back to pending, their attempt given back."""
        if not jobs:
            return
        self.sup.db.submit(
            Release(jobs), lambda count: self._released(jobs, count), self._not_released(jobs)
        )

    def _not_released(self, jobs: list[Job]) -> Callable[[Exception], None]:
        def failed(error: Exception) -> None:
            # The leases expire and another daemon takes the rows: late, never lost.
            log.warning(
                "could not release rows; their leases will expire", rows=len(jobs), error=str(error)
            )

        return failed

    def _released(self, jobs: list[Job], count: int) -> None:
        self.sup.ledger.settle(jobs)
        self.sup.storage.forget(jobs)
        metrics.RELEASED.inc(count)
