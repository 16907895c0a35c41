"""What `status` and `show` read: counts, rates, ages, rows, and the daemons' table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mediad.db.connection import Database
from mediad.models import DaemonReport, DaemonSeen, InFlight, MountReport


def counts(db: Database) -> dict[str, int]:
    found = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    for row in db.run("counts_by_state"):
        found[row["state"]] = int(row["n"])
    return found


def failures_by_class(db: Database) -> dict[str, int]:
    return {str(r["error_class"]): int(r["n"]) for r in db.run("failures_by_class")}


def failures_since(db: Database, seconds: float) -> dict[str, int]:
    """Failed attempts by class in the last `seconds` (retried ones included)."""
    rows = db.run("failures_since", {"seconds": seconds})
    return {str(r["error_class"]): int(r["n"]) for r in rows}


def oldest_pending_seconds(db: Database) -> float | None:
    value = db.run("oldest_pending_seconds")[0]["seconds"]
    return None if value is None else float(value)


def finished_since(db: Database, seconds: float) -> tuple[int, int]:
    row = db.run("finished_since", {"seconds": seconds})[0]
    return int(row["done"]), int(row["failed"])


def older_mapping(db: Database, current: int) -> int:
    """Rows done by a mapping older than `current` (NULL: written before versions were)."""
    return int(db.run("older_mapping", {"current": current})[0]["n"])


def show(db: Database, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = db.run("show", {"paths": list(paths)})
    return {r["path"]: {k: _jsonable(v) for k, v in r.items()} for r in rows}


def daemons(db: Database) -> list[DaemonSeen]:
    """Every row, live or gone, with ages from the database's clock."""
    return [_daemon_seen(row) for row in db.run("daemons_list")]


def live_daemons(db: Database) -> list[DaemonSeen]:
    """Daemons whose heartbeat is at most 3 of their own intervals old."""
    return [seen for seen in daemons(db) if seen.live]


def _daemon_seen(row: dict[str, Any]) -> DaemonSeen:
    report = DaemonReport(
        owner=row["owner"],
        host=row["host"],
        pid=int(row["pid"]),
        instance=row["instance"],
        mediad_version=row["mediad_version"],
        uptime_seconds=float(row["uptime_s"]),
        heartbeat_seconds=float(row["heartbeat_seconds"]),
        workers_target=int(row["workers_target"]),
        workers_alive=int(row["workers_alive"]),
        workers_stuck=int(row["workers_stuck"]),
        workers_stuck_limit=int(row["workers_stuck_limit"]),
        mounts=tuple(MountReport.from_json(m) for m in row["mounts"] or []),
        draining=row["state"] == "draining",
        mediainfo_version=row["mediainfo_version"],
        files_finished=int(row["files_finished"]),
        in_flight=tuple(InFlight.from_json(f) for f in row["in_flight"] or []),
    )
    return DaemonSeen(report, row["state"], float(row["heartbeat_age_s"]), bool(row["live"]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value
