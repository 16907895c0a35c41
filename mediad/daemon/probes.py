"""The probes of stalled mounts: at most one running for each mount, and those killed at
their deadline watched until they go (one held by a dead mount may never go, and counts
as a stuck process meanwhile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

from mediad.daemon.mounts import MountState

log = structlog.get_logger("mediad")


class ProbeLike(Protocol):
    error: str

    def poll(self) -> str: ...
    def mount_answered(self) -> bool: ...
    def kill(self) -> None: ...
    def is_stuck(self) -> bool: ...
    def reap(self) -> bool: ...


ProbeStarter = Callable[[str, str, float], ProbeLike]


class Probes:
    def __init__(self, start: ProbeStarter) -> None:
        self._start = start
        self._running: dict[str, ProbeLike] = {}  # by mount point: at most one each
        self._killed: list[tuple[str, ProbeLike]] = []  # not reaped yet

    def __bool__(self) -> bool:
        return bool(self._running or self._killed)

    def running(self, point: str) -> bool:
        return point in self._running

    def step(
        self,
        point: str,
        state: MountState,
        now: float,
        may_probe: Callable[[], bool],
        deadline: float,
    ) -> float | None:
        """A stalled mount's probe: looked at if one runs, started if one is due and
        allowed. Returns how long the mount was stalled when its probe found it answering
        again (the state has resumed), else None."""
        probe = self._running.get(point)
        if probe is not None:
            status = probe.poll()
            if status == "running":
                return None
            del self._running[point]
            if probe.mount_answered():
                stalled_for = now - (state.stalled_since or now)
                state.probe_answered(now)
                return stalled_for
            state.probe_failed(now)
            if not probe.reap():
                self._killed.append((point, probe))
            log.info("mount still not answering", mount=point, probe=status, error=probe.error)
            return None
        busy = any(p == point for p, _ in self._killed)
        if state.probe_due(now) and not busy and may_probe():
            path = state.last_timed_out_path or ""
            try:
                self._running[point] = self._start(point, path, deadline)
            except OSError as exc:
                log.warning("cannot start a mount probe", mount=point, error=str(exc))
                state.probe_failed(now)
                return None
            state.probe_started(now)
        return None

    def reap(self) -> None:
        if self._killed:
            self._killed = [(p, probe) for p, probe in self._killed if not probe.reap()]

    def unexited(self) -> int:
        return len(self._running) + len(self._killed)

    def killed(self) -> tuple[int, int]:
        return len(self._killed), len(self.stuck())

    def stuck(self) -> list[str]:
        return [point for point, probe in self._killed if probe.is_stuck()]

    def close(self) -> None:
        """Kill probes, never waiting: one held by a dead mount stays behind."""
        for probe in self._running.values():
            probe.kill()
        self._running.clear()
