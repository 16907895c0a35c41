"""How many rows to claim at a time: about half a second of work at the current pace.

A claim or write-back statement has a fixed cost (the commit's WAL flush, the round
trip, the plan) of about as much as fifty rows (docs/benchmarks.md): on fast files,
bigger batches make the database cheaper per file. On slow files a big claim would only
hold rows that other daemons could be reading: a daemon that reads two files a second
has no use for 500 of them. So the claim follows the measured pace, between enough to
fill every worker's queue and `daemon.batch_size`. Pure: the supervisor feeds it the
clock and its count of finished files.
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
