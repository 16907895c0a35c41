"""The daemon's side of mounts (mediad/daemon/storage.py): devices read by workers
correct the mounts guessed by path, stuck processes stall their mounts, rows of stalled
mounts (and paused rows, mediad/daemon/pauses.py) are given back uncharged, and the stuck
limit is said once per episode."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mediad import metrics
from mediad.daemon.mode import Phase
from mediad.daemon.requests import GiveBack
from mediad.models import Job

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")

# Workers' devices are compared with the mounts guessed by path this often: a file is
# read for milliseconds to seconds, and a late correction only moves one file's count.
CORRECT_EVERY = 0.2


class MountWatch:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self._next_correction = 0.0
        self._stuck_limit_said = False

    def take_returned(self) -> None:
        """Files queued at a worker that died, or withdrawn from one, were never started:
        they go out again first (or back to the database, uncharged, if they are paused
        or their mount has stopped answering)."""
        sup = self.sup
        returned = sup.pool.take_returned()
        if not returned:
            return
        returned = sup.pausing.hold_back(returned)
        stalled = [j for j in returned if sup.storage.is_stalled(j)]
        sup.storage.give_back(stalled)
        sup.ledger.park(stalled)
        sup.ledger.rebuffer([j for j in returned if not sup.storage.is_stalled(j)])

    def tick(self, now: float) -> None:
        sup = self.sup
        if now >= self._next_correction:
            self._next_correction = now + CORRECT_EVERY
            self._correct_mounts(now)
        if not sup.pool.unexited_count() and sup.storage.quiet(now):
            self._say_stuck_limit(False, 0, sup.pool.stuck_limit())
            return  # no mount has timed out, nothing is stuck: nothing to decide
        stuck, limit = self.stuck_now(), sup.pool.stuck_limit()
        self._say_stuck_limit(stuck >= limit, stuck, limit)
        if stuck:
            stuck_on = [k.mount for k in sup.pool.stuck()] + sup.storage.probes_stuck()
            sup.storage.stall_stuck(stuck_on, now)
        if sup.storage.stalled() and sup.ledger.buffer:
            # A mount stalled, or rows of it came in a claim made before it did.
            stalled = [j for j in sup.ledger.buffer if sup.storage.is_stalled(j)]
            if stalled:
                sup.storage.give_back(stalled)
                sup.ledger.park(stalled)

        def may_probe() -> bool:
            budget = self.network_budget() - self._network_workers()
            return sup.phase is Phase.RUNNING and budget > 0

        can_write = not sup.db.backing_off(now) and not sup.db.busy(GiveBack)
        result = sup.storage.tick(now, may_probe, give_back=can_write)
        if result.write:
            sup.results.results_in(result.write)
        if result.resumed:
            sup.claims.more_work = True
        if result.give_back:
            self.give_back(result.give_back, sup.storage.give_back_delay(now))
        if result.give_back_paused:
            # Due at once, as when first given back: a claim takes them again as soon as
            # the pause is lifted (perhaps already), not after a probe interval.
            self.give_back(result.give_back_paused, 0.0, "paused")

    def _correct_mounts(self, now: float) -> None:
        """Workers name the device of the file they read: a symlink into another mount,
        or a share mounted since the table was read, shows there."""
        for slot in self.sup.pool.slots:
            device = slot.reading_device()
            reading = slot.reading_now() if device is not None else None
            if device is not None and reading is not None:
                self.sup.storage.correct(slot.queue[reading[0]], device, now)

    def give_back(self, jobs: list[Job], delay: float, why: str = "stalled") -> None:
        """Held rows back to pending, uncharged, due `delay` seconds from now; `why`:
        "stalled" (their mount is not answering) or "paused"."""
        sup = self.sup
        jobs = sup.ledger.leaving(jobs)
        if not jobs:
            return
        if sup.phase is not Phase.RUNNING:
            sup.leases.release(jobs)
            return

        def failed(_error: Exception) -> None:
            # Retried once the database answers: the rows stay held (leases renewed).
            sup.storage.retry_give_back(jobs, paused=why == "paused")
            sup.ledger.park(jobs)

        sup.db.submit(
            GiveBack(jobs, delay), lambda count: self._given_back(jobs, delay, count, why), failed
        )

    def _given_back(self, jobs: list[Job], delay: float, count: int, why: str) -> None:
        self.sup.ledger.settle(jobs)
        self.sup.storage.forget(jobs)
        metrics.RELEASED.inc(count)
        if why == "paused":
            log.info("rows given back: paused", rows=count)
            return
        log.info(
            "rows given back: their mount is not answering", rows=count, due_in_s=round(delay, 1)
        )

    # --- the stuck limit -----------------------------------------------------------------

    def network_budget(self) -> int:
        """How many workers may hold files of network mounts: each may become a stuck
        process, and stuck processes (workers and probes) never pass the limit."""
        pool, storage = self.sup.pool, self.sup.storage
        budget = pool.stuck_limit() - pool.unexited_count() - storage.probes_unexited()
        return max(0, budget)

    def stuck_now(self) -> int:
        return self.sup.pool.stuck_count() + len(self.sup.storage.probes_stuck())

    def _network_workers(self) -> int:
        storage = self.sup.storage
        return sum(1 for slot in self.sup.pool.slots if storage.has_network(slot.queue))

    def _say_stuck_limit(self, at_limit: bool, stuck: int, limit: int) -> None:
        """Once per episode, in the log (the gauges and STATUS= say it all along)."""
        if at_limit == self._stuck_limit_said:
            return
        self._stuck_limit_said = at_limit
        if at_limit:
            log.warning(
                "stuck processes at the limit: files on network mounts wait",
                stuck=stuck,
                limit=limit,
            )
        else:
            log.info("stuck processes below the limit: network mounts get files again")
