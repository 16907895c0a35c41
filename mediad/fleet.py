"""The fleet as readers see it: the rows of the daemons table (docs/schema.md) turned into
what `status --json`, `mediad top` and the fleet's metrics show. Pure: the rows come in
already read, their ages from the database's clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mediad.models import DaemonReport, DaemonSeen

# Every state a reader may show; `gone` is never written, only computed (a heartbeat
# older than 3 of the row's own intervals).
STATES = ("running", "draining", "degraded", "gone")


def daemon_name(report: DaemonReport) -> str:
    """What the fleet's metrics and `top` call a daemon: host, and its instance if any.
    Unlike the owner it survives a restart (the pid changes), so a dashboard follows
    one daemon across restarts and an alert clears when it comes back."""
    return f"{report.host}:{report.instance}" if report.instance else report.host


def count_by_state(seen: Iterable[DaemonSeen]) -> dict[str, int]:
    found = dict.fromkeys(STATES, 0)
    for daemon in seen:
        found[daemon.state_now] += 1
    return found


def elapsed(daemon: DaemonSeen, seconds: float) -> float:
    """Seconds on a file now: as the row said, plus the row's age while the daemon lives
    (it is still reading, or the next beat will say otherwise); a gone daemon's files
    are frozen where it left them."""
    return seconds + daemon.heartbeat_age_seconds if daemon.live else seconds


def daemon_json(daemon: DaemonSeen) -> dict[str, Any]:
    """One entry of `status --json`'s "daemons" (stable: extend, never rename)."""
    report = daemon.report
    return {
        "owner": report.owner,
        "host": report.host,
        "pid": report.pid,
        "instance": report.instance,
        "state": daemon.state_now,
        "workers": {
            "target": report.workers_target,
            "alive": report.workers_alive,
            "stuck": report.workers_stuck,
        },
        "heartbeat_age_s": round(daemon.heartbeat_age_seconds, 1),
        "mounts": [mount.as_json() for mount in report.mounts],
        "in_flight": [
            {
                "path": f.path,
                "worker_pid": f.worker_pid,
                "mount": f.mount,
                "seconds": round(elapsed(daemon, f.seconds), 1),
            }
            for f in report.in_flight
        ],
    }


@dataclass(frozen=True)
class DaemonFigures:
    """One daemon name's series in the fleet's metrics."""

    up: bool  # a row of this name is live
    in_flight: int
    workers_stuck: int
    heartbeat_age_seconds: float
    files_finished: int


def per_daemon(seen: Sequence[DaemonSeen]) -> dict[str, DaemonFigures]:
    """The figures of each daemon name. A restarted daemon leaves its killed self's row
    (gone) beside its new one: while a row of the name is live, the gone ones are
    left out, so the name counts as up and its figures are the live daemon's."""
    rows: dict[str, list[DaemonSeen]] = {}
    for daemon in seen:
        rows.setdefault(daemon_name(daemon.report), []).append(daemon)
    figures = {}
    for name, of_name in rows.items():
        live = [d for d in of_name if d.live]
        chosen = live or of_name
        figures[name] = DaemonFigures(
            up=bool(live),
            in_flight=sum(len(d.report.in_flight) for d in live),
            workers_stuck=sum(d.report.workers_stuck for d in live),
            heartbeat_age_seconds=min(d.heartbeat_age_seconds for d in chosen),
            # Each row counts since its own start: the live rows' files, or with none
            # live the newest gone row's alone (a sum of killed selves would jump, and a
            # rate() taken on it would read the drop back as a counter reset).
            files_finished=(
                sum(d.report.files_finished for d in live)
                if live
                else min(of_name, key=lambda d: d.heartbeat_age_seconds).report.files_finished
            ),
        )
    return figures
