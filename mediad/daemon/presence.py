"""This daemon's row in the daemons table (docs/schema.md, "daemons"): what it publishes
at each heartbeat, and its row deleted at exit."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from mediad import __version__, metrics
from mediad.daemon.mode import Phase
from mediad.daemon.requests import Forget, Heartbeat
from mediad.models import DaemonReport, InFlight
from mediad.pool.slot import reading_file

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")

PRUNE_EVERY = 3600.0  # rows of daemons gone for a day: looked for at start, then hourly


class Presence:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.next_heartbeat = 0.0
        self._next_prune = 0.0
        self._started_at = time.monotonic()

    def report(self) -> DaemonReport:
        """What this daemon publishes at each heartbeat, and shows in its stuck and mount
        gauges."""
        sup = self.sup
        host, pid = socket.gethostname(), os.getpid()
        prefix = f"{host}:{pid}:"  # owner_name(): the instance follows, if any
        owner = sup.store.owner
        return DaemonReport(
            owner=owner,
            host=host,
            pid=pid,
            instance=owner[len(prefix) :] if owner.startswith(prefix) else "",
            mediad_version=__version__,
            uptime_seconds=time.monotonic() - self._started_at,
            heartbeat_seconds=sup.config.daemon.heartbeat_seconds,
            workers_target=sup.pool.target_size,
            workers_alive=len(sup.pool.slots),
            workers_stuck=sup.mounts.stuck_now(),
            # 0 means the pool's size, as resized by SIGHUP, SIGTTIN and SIGTTOU.
            workers_stuck_limit=sup.pool.stuck_limit(),
            mounts=sup.storage.report(
                sup.pool.in_flight(),
                [k.mount for k in sup.pool.stuck()],
                time.monotonic(),
            ),
            draining=sup.phase is not Phase.RUNNING,
            mediainfo_version=sup.pool.library_version,
            files_finished=sup.tally.finished,
            in_flight=self._in_flight(time.monotonic()),
        )

    def _in_flight(self, now: float) -> tuple[InFlight, ...]:
        """What each worker reads now, slowest first: a few objects, one per worker."""
        sup = self.sup
        found = []
        for slot in sup.pool.slots:
            on = reading_file(slot)
            if on is not None:
                job, since = on
                mount = sup.storage.mount_of(job).point
                found.append(InFlight(job.path, slot.pid, mount, max(0.0, now - since)))
        return tuple(sorted(found, key=lambda f: -f.seconds))

    def maybe_heartbeat(self, now: float) -> None:
        """One statement per interval, through the database thread; a beat the database
        cannot take now is skipped, not queued (the next one says the same, newer)."""
        sup = self.sup
        if now < self.next_heartbeat:
            return
        self.next_heartbeat = now + sup.config.daemon.heartbeat_seconds
        report = self.report()
        metrics.show_daemon(report)
        if sup.db.backing_off(now) or sup.db.busy(Heartbeat):
            return
        prune = now >= self._next_prune
        if prune:
            self._next_prune = now + PRUNE_EVERY
        sup.db.submit(Heartbeat(report, prune), self._beaten, self._not_beaten(prune))

    def _not_beaten(self, prune: bool) -> Callable[[Exception], None]:
        def failed(_error: Exception) -> None:
            if prune:
                self._next_prune = 0.0  # the prune may not have run: at the next beat

        return failed

    def _beaten(self, pruned: int) -> None:
        if pruned:
            log.info("deleted the rows of daemons gone for a day", rows=pruned)

    def forget(self) -> None:
        def failed(error: Exception) -> None:
            log.warning(
                "could not delete this daemon's row: it shows as gone until deleted",
                error=str(error),
            )

        self.sup.db.submit(Forget(self.sup.store.owner), lambda _none: None, failed)
