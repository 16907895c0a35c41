"""The ledger: every row this daemon holds a lease on, and where it is now.

A claimed row is buffered, then sent to a worker, then its result waits to be written,
then it is being written, and then it is settled (written) and leaves the ledger. Beside
that path, a row may be parked with the storage (a timeout held for its mount's window,
or a row of a stalled mount waiting to be given back) or leaving (a release or give-back
on its way to the database), and its lease may be lost to another daemon.

One place says where each row is, so nothing has to cross-check collections that must
agree: the rows whose leases to renew are the rows in the ledger; what to release at a
stop is what no worker holds and no write carries. Pure: no processes, no database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from mediad.models import Job


class Where(Enum):
    BUFFERED = "buffered"  # claimed, waiting for a worker
    SENT = "sent"  # at a worker: read now or queued there (or returned by one that died)
    RESULT = "result"  # answered, waiting to be written
    WRITING = "writing"  # in a write-back
    PARKED = "parked"  # with the storage, until its mount decides
    LEAVING = "leaving"  # a release or give-back submitted

    # Members are singletons: hashed by identity, in C. Enum's own hash calls Python code,
    # and the ledger hashes a state several times for every row it follows.
    __hash__ = object.__hash__


@dataclass(frozen=True)
class LostLeases:
    """`lost`: rows another daemon may have taken (not renewed, not yet written);
    `dropped`: those of them no worker reads, no longer ours at all."""

    lost: list[Job]
    dropped: list[Job]


class Ledger:
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._where: dict[int, Where] = {}
        self._buffer: deque[Job] = deque()  # the BUFFERED rows, in the order to send them
        self._counts: dict[Where, int] = dict.fromkeys(Where, 0)

    def __contains__(self, row_id: int) -> bool:
        return row_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def where(self, row_id: int) -> Where | None:
        return self._where.get(row_id)

    def count(self, where: Where) -> int:
        return self._counts[where]

    def held(self, jobs: Iterable[Job]) -> list[Job]:
        return [job for job in jobs if job.id in self._where]

    @property
    def buffer(self) -> Sequence[Job]:
        return self._buffer

    # --- the path of a row ---------------------------------------------------------------

    def claimed(self, jobs: Sequence[Job]) -> None:
        where_of, counts = self._where, self._counts
        for job in jobs:
            was = where_of.get(job.id)
            if was is not None:  # claimed again, under a new lease, while a worker read it
                counts[was] -= 1
                self._leave_buffer([job])
            self._jobs[job.id] = job
            where_of[job.id] = Where.BUFFERED
        counts[Where.BUFFERED] += len(jobs)
        self._buffer.extend(jobs)

    def take(self, count: int) -> list[Job]:
        """The first `count` buffered rows, sent."""
        taken = [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]
        self._mark(taken, Where.SENT)
        return taken

    def replan(self, left: Iterable[Job], sent: Iterable[Job]) -> None:
        """A dispatch plan: `sent` went to workers, `left` (the rest of the buffer, in
        its new order) stays."""
        self._buffer = deque(left)
        self._mark(sent, Where.SENT)

    def rebuffer(self, jobs: Sequence[Job]) -> None:
        """Rows a worker never started (it was dying, or died): sent again first."""
        jobs = [job for job in jobs if self._where.get(job.id) is not Where.BUFFERED]
        self._buffer.extendleft(reversed(self._mark(jobs, Where.BUFFERED)))

    def answered(self, jobs: Iterable[Job]) -> None:
        self._mark(jobs, Where.RESULT)

    def park(self, jobs: Iterable[Job]) -> None:
        self._leave_buffer(self._mark(jobs, Where.PARKED))

    def writing(self, jobs: Iterable[Job]) -> None:
        self._mark(jobs, Where.WRITING)

    def unwritten(self, jobs: Iterable[Job]) -> None:
        """A write-back the database did not take: written again later."""
        self._mark(jobs, Where.RESULT)

    def leaving(self, jobs: Iterable[Job]) -> list[Job]:
        """Rows to release or give back: those still held (a lease lost meanwhile makes a
        row another daemon's, not ours to hand back)."""
        marked = self._mark(jobs, Where.LEAVING)
        self._leave_buffer(marked)
        return marked

    def settle(self, jobs: Iterable[Job]) -> None:
        """Written, released or given back: no longer ours."""
        where_of, counts, held = self._where, self._counts, self._jobs
        for job in jobs:
            where = where_of.pop(job.id, None)
            if where is not None:
                counts[where] -= 1
                del held[job.id]

    # --- leases --------------------------------------------------------------------------

    def renewal(self) -> list[Job]:
        """Every row held: exactly the leases to renew."""
        return list(self._jobs.values())

    def leases_lost(self, asked: Iterable[Job], renewed: set[int]) -> LostLeases:
        """A renewal answered. Rows with a result, written or being written since it was
        sent, are no longer running: not lost. A row a worker still reads stays held (its
        result will come, and the fence refuses it); the others are dropped."""
        lost = [
            job
            for job in asked
            if job.id not in renewed
            and self._where.get(job.id) not in (None, Where.RESULT, Where.WRITING)
        ]
        dropped = [job for job in lost if self._where[job.id] is not Where.SENT]
        self._leave_buffer(dropped)
        self.settle(dropped)
        return LostLeases(lost, dropped)

    def at_stop(self) -> list[Job]:
        """Rows to release when stopping, now leaving: buffered ones and parked ones (a
        held timeout is not decided yet; a row not given back would wait for its lease)."""
        parked = [job for job in self._jobs.values() if self._where[job.id] is Where.PARKED]
        return self.leaving([*self._buffer, *parked])

    # --- bookkeeping ---------------------------------------------------------------------

    def _mark(self, jobs: Iterable[Job], where: Where) -> list[Job]:
        """The rows still held among `jobs`, now at `where` (once per row: hot)."""
        where_of, counts = self._where, self._counts
        marked = []
        for job in jobs:
            was = where_of.get(job.id)
            if was is not None:
                counts[was] -= 1
                where_of[job.id] = where
                marked.append(job)
        counts[where] += len(marked)
        return marked

    def _leave_buffer(self, jobs: list[Job]) -> None:
        gone = {job.id for job in jobs}
        if gone and self._buffer:
            self._buffer = deque(job for job in self._buffer if job.id not in gone)
