"""Spare workers: a worker whose read of a network mount has not answered for a while is
waiting on the network, not using a core. While files elsewhere wait for a worker, the
pool runs one spare for each such worker, so a slow or dead share costs the other mounts
a second of one worker, not the whole `extract.timeout_seconds` (docs/reliability.md,
"Spare workers").

The spares count toward the stuck limit like any process that may hang in a read: each
waiting worker may end up stuck, so spares never take the budget below what those need.
When the read answers (or times out) and LINGER_SECONDS pass with no read waiting, the
spare is no longer wanted and the first idle worker beyond the pool's size leaves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from mediad import metrics
from mediad.models import Job

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")

# A read of a network file unanswered this long is waiting on the network. Longer than
# any read of a healthy share (a 2 ms-per-read mount reads a file in about 0.1 s), short
# against the timeout, which is 30 s by default.
WAITING_AFTER_SECONDS = 1.0


# A spare stays this long after it was last wanted: on a healthy share whose large files
# take a few seconds each, reads turn "waiting" again and again, and a spare let go at
# every pause between them would be a worker started (MediaInfo loaded) each time.
LINGER_SECONDS = 10.0


def lingering(wanted: int, current: int, now: float, last_wanted_at: float) -> int:
    """Spares to run: more at once when more are wanted; fewer only once none of the
    current ones has been wanted for LINGER_SECONDS. Pure."""
    if wanted >= current or now - last_wanted_at >= LINGER_SECONDS:
        return wanted
    return current


def spares_wanted(waiting: int, others_waiting: bool, budget: int) -> int:
    """Workers beyond the pool's size: one for each worker waiting on a network read,
    while files on other mounts wait for a worker, within the stuck budget. Pure."""
    if not others_waiting:
        return 0
    return max(0, min(waiting, budget))


class Spares:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self._said = 0
        self._last_wanted_at = 0.0

    def waiting(self, now: float) -> list[tuple[Job, float]]:
        """Files on network mounts whose read has gone unanswered for a while, with the
        time each started."""
        found = []
        for slot in self.sup.pool.slots:
            reading = slot.reading_now()
            if reading is None:
                continue
            position, started = reading
            job = slot.queue[position]
            if now - started >= WAITING_AFTER_SECONDS and self.sup.storage.mount_of(job).network:
                found.append((job, started))
        return found

    def update(self, now: float) -> None:
        sup = self.sup
        waiting = self.waiting(now)
        mounts = {sup.storage.mount_of(job).point for job, _ in waiting}
        wanted = spares_wanted(
            len(waiting), self._others_waiting(sup.ledger.buffer, mounts), self._budget()
        )
        if wanted and wanted >= sup.pool.spares:
            self._last_wanted_at = now
        # Lingering keeps spares that run, never starts one: the worker a spare stood in
        # for may have been killed at its timeout, the spare then being the replacement.
        running = min(sup.pool.spares, max(0, sup.pool.live_count() - sup.pool.target_size))
        # Never past the budget, lingering or not: stuck processes may have used it up.
        spares = min(lingering(wanted, running, now, self._last_wanted_at), self._budget())
        sup.pool.spares = spares
        metrics.WORKERS_SPARE.set(spares)
        if spares != self._said:
            log.info(
                "spare workers while reads of network mounts wait",
                spares=spares,
                waiting=len(waiting),
                mounts=sorted(mounts),
            )
            self._said = spares

    def next_due_in(self, now: float) -> float | None:
        """When a read now under way turns waiting: the loop looks then."""
        starts = [reading[1] for slot in self.sup.pool.slots if (reading := slot.reading_now())]
        due = [s + WAITING_AFTER_SECONDS - now for s in starts if s + WAITING_AFTER_SECONDS > now]
        return min(due) if due else None

    def _others_waiting(self, buffer: Iterable[Job], waited_on: set[str]) -> bool:
        mount_of = self.sup.storage.mount_of
        return any(mount_of(job).point not in waited_on for job in buffer)

    def _budget(self) -> int:
        """Processes that may still hang before the stuck limit: workers killed and not
        gone, and probes, already count against it."""
        pool, storage = self.sup.pool, self.sup.storage
        return max(0, pool.stuck_limit() - pool.unexited_count() - storage.probes_unexited())
