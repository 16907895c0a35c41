"""What `status` and `show` print: the text an operator reads, and the records their
--json gives (documented in docs/, stable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mediad.extract.summary import COLUMNS, HDR_COLUMNS, PHOTO_COLUMNS
from mediad.models import DaemonSeen
from mediad.pauses import Pause

SHOW_SUMMARY_KEYS = (
    *COLUMNS,
    "image_tracks",
    *HDR_COLUMNS,
    *PHOTO_COLUMNS,
    "languages",
    "streams",
)
SHOW_FIELDS = (
    "path",
    "state",
    "attempts",
    "error_class",
    "error",
    "priority",
    "resolved_path",
    "size_bytes",
    "mtime",
    "finished_at",
    "summary",
)


def print_status(report: dict[str, Any], live_daemons: int) -> None:
    """The text form of `status --json`'s object."""
    counts = report["counts"]
    print(
        f"schema {report['schema']} (version {report['schema_version']}) "
        f"on {report['database_label']}"
    )
    for state in ("pending", "running", "done", "failed"):
        print(f"  {state:<8} {counts[state]:>10}")
    print(
        f"last minute: {report['rates']['done_per_s_1m']} done/s, "
        f"{report['rates']['failed_per_s_1m']} failed/s"
    )
    oldest = report["oldest_pending_seconds"]
    if oldest is not None:
        print(f"oldest due pending row waits {oldest:.1f} s")
    older = report["older_mapping"]
    if older:
        print(
            f"{older} done rows were summarised by an older mapping than this mediad's "
            "(mediad reextract --mapping-below current queues them again)"
        )
    failures = report["failures_by_class"]
    if failures:
        print("failures by class:")
        for cls, count in failures.items():
            print(f"  {cls:<14} {count:>10}")
    _print_fleet(live_daemons, report)


def fleet_json(live: Sequence[DaemonSeen]) -> dict[str, Any]:
    """What live daemons publish (their heartbeat rows): every mount each one reports,
    and the worker processes stuck across them."""
    return {
        "mounts": [
            {"owner": seen.report.owner, **mount.as_json()}
            for seen in live
            for mount in seen.report.mounts
        ],
        "stuck_workers": sum(seen.report.workers_stuck for seen in live),
    }


def _print_fleet(live_daemons: int, report: dict[str, Any]) -> None:
    print(f"live daemons: {live_daemons}, stuck worker processes: {report['stuck_workers']}")
    if report["daemons"]:
        print("daemons:")
    for daemon in report["daemons"]:
        print(f"  {daemon_line(daemon)}")
    if report["mounts"]:
        print("mounts:")
    for mount in report["mounts"]:
        print(
            f"  {mount['mount']} ({mount['fstype']}) {mount['state']} on {mount['owner']}: "
            f"{mount['in_flight']} in flight, {mount['stuck']} stuck, "
            f"{mount['timeouts_recent']} recent timeouts"
        )


def daemon_line(daemon: dict[str, Any]) -> str:
    """One daemon of `status --json`'s "daemons", on one line."""
    workers = daemon["workers"]
    return (
        f"{daemon['owner']} {daemon['state']}: {workers['alive']}/{workers['target']} "
        f"workers, {workers['stuck']} stuck, {len(daemon['in_flight'])} in flight, "
        f"heartbeat {daemon['heartbeat_age_s']:.1f} s ago"
    )


def print_pauses(pauses: Sequence[Pause]) -> None:
    if pauses:
        print("paused (mediad resume lifts):")
    for pause in pauses:
        print(f"  {pause.describe()}")


def show_record(path: str, row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return dict.fromkeys(SHOW_FIELDS) | {"path": path}
    stored = row.get("summary") or {}
    summary = {key: stored.get(key, row.get(key)) for key in SHOW_SUMMARY_KEYS}
    return {
        "path": path,
        "state": row["state"],
        "attempts": row["attempts"],
        "error_class": row["error_class"],
        "error": row["error"],
        "priority": row["priority"],
        "resolved_path": row["resolved_path"],
        "size_bytes": row["size_bytes"],
        "mtime": row["mtime"],
        "finished_at": row["finished_at"],
        "summary": summary if row.get("summary") is not None else None,
    }


def print_show(record: dict[str, Any]) -> None:
    print(record["path"])
    if record["state"] is None:
        print("  unknown to mediad")
        return
    print(f"  state {record['state']}, attempts {record['attempts']}")
    if record["error_class"]:
        print(f"  error [{record['error_class']}] {record['error']}")
    summary = record["summary"] or {}
    for key in (*COLUMNS, *PHOTO_COLUMNS):
        if summary.get(key) is not None:
            print(f"  {key:<15} {summary[key]}")
