"""Sizes that follow the pace of the files: rows per claim, files held by each worker.

Pure: the supervisor and the pool feed it the clock, counts and extraction times.

Rows per claim: about half a second of work at the current pace. A claim or write-back
statement has a fixed cost (the commit's WAL flush, the round trip, the plan) of about
as much as fifty rows (docs/benchmarks.md): on fast files, bigger batches make the
database cheaper per file. On slow files a big claim would only
hold rows that other daemons could be reading: a daemon that reads two files a second
has no use for 500 of them. So the claim follows the measured pace, between enough to
fill every worker's queue and `daemon.batch_size`.

Files held by a worker (its depth): about 50 ms of work, between 2 and `daemon.prefetch`.
A worker answers every half of its depth, and the other half keeps it busy while the
supervisor takes the answers and sends more: on fast files, one message each way per
several files (half the supervisor's CPU at depth 16 against 4, docs/benchmarks.md); on
slow ones, one file read and one waiting, so no file sits behind a slow one for long
when another worker could read it.
"""

from __future__ import annotations

import math
from collections import deque

# A claim holds about this much work: two claims a second, whatever the pace.
CLAIM_AHEAD_SECONDS = 0.5
# The pace is the files finished over about this long (a burst or a stall is forgotten).
RATE_WINDOW_SECONDS = 2.0
# Below this span of samples the pace is not known yet.
MIN_SPAN_SECONDS = 0.2

# A worker holds about this much work; half of it covers the supervisor's turnaround.
WORKER_AHEAD_SECONDS = 0.05
# One file read, one waiting: a worker never waits for the supervisor between two files.
MIN_DEPTH = 2
# Weight of the latest file in the running mean of extraction times.
PACE_WEIGHT = 0.1


class ClaimSizer:
    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()  # (when, files finished so far)

    def observe(self, now: float, finished: int) -> None:
        self._samples.append((now, finished))
        # Keep one sample older than the window, so the window is always covered.
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_SECONDS:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Files finished per second over the window; None until it is known."""
        if len(self._samples) < 2:
            return None
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        span = last_at - first_at
        if span < MIN_SPAN_SECONDS:
            return None
        return (last - first) / span

    def size(self, capacity: int, maximum: int) -> int:
        """Rows for the next claim. `capacity`: what the workers can hold at once (workers
        x prefetch), the least worth a round trip; `maximum`: `daemon.batch_size`."""
        rate = self.rate()
        # Unknown pace (just started): enough to fill the workers twice over; the pace is
        # known a fraction of a second later. Nothing finished lately: `capacity`.
        wanted = 2 * capacity if rate is None else math.ceil(rate * CLAIM_AHEAD_SECONDS)
        return max(1, min(maximum, max(capacity, wanted)))


class FilePace:
    """The running mean of extraction times: what a file costs a worker lately."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self.seconds is None:
            self.seconds = seconds
        else:
            self.seconds += PACE_WEIGHT * (seconds - self.seconds)

    def depth(self, most: int) -> int:
        """Files a worker may hold (read now, or waiting in its pipe); `most`:
        `daemon.prefetch`. Unknown pace (no file read yet): the least, until one is."""
        if self.seconds is None:
            return max(1, min(most, MIN_DEPTH))
        wanted = math.ceil(WORKER_AHEAD_SECONDS / max(self.seconds, 1e-6))
        return max(1, min(most, max(MIN_DEPTH, wanted)))


def answer_every(depth: int) -> int:
    """How many results of fast files a worker gathers per message: half its depth, so
    the other half keeps it busy while the supervisor answers."""
    return max(1, depth // 2)
