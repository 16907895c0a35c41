"""One mount's state as the daemon drives it: the stall state machine and the cap rule.

Pure: the supervisor drives them with its own clock (`now` arguments), so tests can play
any timeline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mediad.mounts import Mount

# --- stalls ---------------------------------------------------------------------------


@dataclass
class MountState:
    """One mount's stall state, driven by the supervisor with explicit times.

    ok --(stall_timeouts timeouts within stall_window_seconds)--> stalled
    stalled --(probe_seconds later: a probe runs; at most one at a time)--> ...
    ... the probe answers --> ok (recent timeouts forgotten), or it does not --> the next
    probe probe_seconds after that one ended.
    """

    point: str
    stall_timeouts: int
    stall_window_seconds: float
    probe_seconds: float
    last_timed_out_path: str | None = None
    stalled_since: float | None = None
    probe_running_since: float | None = None
    next_probe_at: float | None = None
    _timeouts: deque[float] = field(default_factory=deque)

    @property
    def stalled(self) -> bool:
        return self.stalled_since is not None

    @property
    def probe_running(self) -> bool:
        return self.probe_running_since is not None

    def _forget_old(self, now: float) -> None:
        while self._timeouts and self._timeouts[0] <= now - self.stall_window_seconds:
            self._timeouts.popleft()

    def record_timeout(self, now: float, path: str) -> None:
        self._timeouts.append(now)
        self.last_timed_out_path = path
        self._forget_old(now)

    def timeouts_recent(self, now: float) -> int:
        """Timeouts within the window ending at `now` (exactly one window old is out)."""
        self._forget_old(now)
        return len(self._timeouts)

    def should_stall(self, now: float) -> bool:
        return not self.stalled and self.timeouts_recent(now) >= self.stall_timeouts

    def stall(self, now: float) -> None:
        if self.stalled:
            return
        self.stalled_since = now
        # The mount has just stopped answering: the first probe waits a full interval.
        self.next_probe_at = now + self.probe_seconds

    def probe_due(self, now: float) -> bool:
        return (
            self.stalled
            and not self.probe_running
            and self.next_probe_at is not None
            and now >= self.next_probe_at
        )

    def probe_started(self, now: float) -> None:
        self.probe_running_since = now

    def probe_answered(self, now: float) -> None:
        """The mount answers again: it resumes, and the timeouts that stalled it are
        forgotten so that they cannot stall it again at once."""
        self.stalled_since = None
        self.probe_running_since = None
        self.next_probe_at = None
        self._timeouts.clear()

    def probe_failed(self, now: float) -> None:
        """The probe failed or was killed at its deadline: try again an interval later."""
        self.probe_running_since = None
        if self.stalled:
            self.next_probe_at = now + self.probe_seconds


# --- caps -----------------------------------------------------------------------------


def worker_cap(mount: Mount, pool_size: int, others_waiting: bool, override: int | None) -> int:
    """The most files of this mount that may be in flight at once.

    A network mount takes at most half the workers (at least one) while rows on other
    mounts wait, so a stalled share cannot hold every worker; without competition it may
    use them all, so a library that lives entirely on a NAS is not slowed. Local disks get
    no cap. A configured override (`[mounts."/point"] max_workers`) wins for any mount.
    Never more than the pool."""
    if override is not None:
        cap = override
    elif mount.network and others_waiting:
        cap = max(1, pool_size // 2)
    else:
        cap = pool_size
    return max(0, min(cap, pool_size))
