"""Claiming rows and sharing them out to the workers.

Claims are sized to what the workers get through (mediad/pace.py) and made again when
half the last claim's worth is left, so the next one arrives before the workers run dry.
Dispatch shares the buffer out one file at a time, the least loaded worker first, within
each mount's cap (mediad/daemon/plan.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mediad import metrics
from mediad.daemon.mode import Phase
from mediad.daemon.plan import plan_dispatch
from mediad.daemon.requests import Claim
from mediad.models import Job
from mediad.pace import ClaimSizer
from mediad.pool import Slot

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

# The buffer never holds more than this many claims' worth, however many of its rows wait
# for a capped or stalled mount (those do not make it "full").
MAX_BUFFER_CLAIMS = 4


class Claims:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.more_work = True  # the last claim was full, or a notification came
        self.exhausted = False  # one-shot: a claim found nothing due
        self.next_poll = 0.0
        # The last claim got all it asked for: more due rows may wait in the database.
        self.was_full = True
        self._claiming = 0
        self._sizer = ClaimSizer()

    def size(self) -> int:
        pool = self.sup.pool
        return self._sizer.size(pool.target_size * pool.depth(), self.sup.config.daemon.batch_size)

    def can_claim_more(self) -> bool:
        sup = self.sup
        if sup.mode.limit and sup.tally.claimed >= sup.mode.limit:
            return False
        # Claim again when half the last claim's worth is left: the next one arrives
        # before the workers run dry. Rows that wait for a capped or stalled mount do not
        # count, or a buffer full of them would keep other mounts' rows from being claimed.
        buffer = sup.ledger.buffer
        wanted = max(sup.pool.target_size, self.size() // 2)
        if sup.storage.plain():
            return len(buffer) < wanted
        if len(buffer) >= self.buffer_bound():
            return False
        share = max(1, sup.pool.target_size // 2) * sup.pool.depth()
        if sup.storage.counted_toward_full(buffer, share) < wanted:
            return True
        # Only one network mount's rows so far, and the database may hold more: claim on,
        # up to the bound, to learn whether rows on other mounts wait. Until then that
        # mount keeps to its share (more_unclaimed in dispatch); after, it may use every
        # worker, so a library that lives entirely on a NAS is not slowed.
        return self.was_full and sup.storage.one_network_mount(buffer)

    def buffer_bound(self) -> int:
        return MAX_BUFFER_CLAIMS * max(self.size(), self.sup.pool.target_size)

    def wanted(self) -> bool:
        """A claim would be made as soon as the database may be asked."""
        sup = self.sup
        return self.more_work and sup.phase is Phase.RUNNING and self.can_claim_more()

    def maybe_claim(self, now: float, received: int) -> None:
        sup = self.sup
        if now >= self.next_poll:
            self.more_work = True
        if sup.db.busy(Claim) or sup.db.backing_off(now):
            return
        if not self.more_work or not self.can_claim_more():
            return
        # A sample per claim (about two a second), not per loop turn.
        self._sizer.observe(now, received)
        want = self.size()
        if sup.mode.limit:
            want = min(want, sup.mode.limit - sup.tally.claimed - self._claiming)
        if want <= 0:
            return
        # Stalled mounts: their rows wait in the database.
        request = Claim(
            want,
            sup.config.daemon.lease_seconds,
            sup.mode.skip_existing,
            sup.storage.skip_prefixes(),
        )
        self._claiming = want
        sup.db.submit(request, lambda jobs: self._claimed(want, jobs), self._not_claimed)

    def _not_claimed(self, _error: Exception) -> None:
        self._claiming = 0

    def _claimed(self, want: int, jobs: list[Job]) -> None:
        sup = self.sup
        self._claiming = 0
        metrics.BATCH_ROWS.labels("claim").observe(len(jobs))
        self.next_poll = time.monotonic() + sup.config.daemon.poll_seconds
        self.more_work = len(jobs) == want
        self.was_full = len(jobs) == want
        if sup.mode.one_shot and len(jobs) < want:
            self.exhausted = True
        sup.tally.claimed += len(jobs)
        sup.ledger.claimed(jobs)
        for job in jobs:
            sup.storage.assign(job)
        if sup.phase is not Phase.RUNNING:
            # Claimed just before the drain began: give them back.
            sup.leases.release(sup.ledger.leaving(jobs))
        else:
            # Claimed just before a pause this daemon has since heard of.
            sup.pausing.hold_back(jobs)

    # --- dispatch ------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Share the buffer out one file at a time, the least loaded worker first (so a
        short buffer is spread, not handed to one worker), within each mount's cap
        (mediad/daemon/plan.py), then send each worker its share in one message."""
        sup = self.sup
        slots = sup.pool.accepting()
        if not sup.ledger.buffer or not slots:
            return
        if sup.storage.plain():
            self._dispatch_plain(slots)
            return
        accepting = {id(slot) for slot in slots}
        buffer = sup.ledger.buffer
        plan = plan_dispatch(
            buffer,
            [sup.pool.room(slot) for slot in slots],
            [slot.queue for slot in slots],
            [slot.queue for slot in sup.pool.slots if id(slot) not in accepting],
            sup.storage.mount_of,
            pool_size=sup.pool.target_size,
            # A worker killed there and not gone yet may be stuck: a file sent to that
            # mount before it is known would likely leave one more stuck process.
            stalled=sup.storage.stalled() | sup.pool.unexited_mounts(),
            network_budget=sup.mounts.network_budget(),
            overrides=sup.storage.settings.overrides,
            # Half the bound: once the buffer has been filled that far with one mount's
            # rows, a few dispatched do not put the mount back to its share.
            more_unclaimed=self.was_full and len(buffer) < self.buffer_bound() // 2,
        )
        sup.ledger.replan(plan.left, (job for share in plan.shares for job in share))
        self._send(slots, plan.shares)

    def _dispatch_plain(self, slots: list[Slot]) -> None:
        """Every file so far on local disks with no cap: no mount to weigh (the common
        case, and the fast one: only the files sent are looked at)."""
        rooms = [self.sup.pool.room(slot) for slot in slots]
        jobs = self.sup.ledger.take(sum(rooms))
        shares: list[list[Job]] = [[] for _ in slots]
        n = 0
        for job in jobs:
            while not rooms[n]:
                n = (n + 1) % len(slots)
            shares[n].append(job)
            rooms[n] -= 1
            n = (n + 1) % len(slots)
        self._send(slots, shares)

    def _send(self, slots: list[Slot], shares: list[list[Job]]) -> None:
        for slot, share in zip(slots, shares, strict=True):
            if share and not self.sup.pool.dispatch(slot, share):
                self.sup.ledger.rebuffer(share)  # its worker is dying: resend
