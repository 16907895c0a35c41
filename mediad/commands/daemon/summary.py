"""The summary `mediad extract` ends with, as text or as one JSON object."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from mediad.commands.output import database_json
from mediad.config import Config, database_label
from mediad.daemon.mode import Tally


def print_extract_summary(
    tally: Tally,
    skipped: int,
    pending: int | None,
    stopped_by: signal.Signals | None,
    as_json: bool,
    config: Config,
) -> None:
    elapsed = max(1e-9, time.monotonic() - tally.started_at)
    summary: dict[str, Any] = {
        "processed": tally.finished,
        "done": tally.done,
        "failed": sum(tally.failed.values()),
        "failed_by_class": dict(sorted(tally.failed.items())),
        "retried": tally.retried,
        "skipped": skipped,
        "seconds": round(elapsed, 3),
        "files_per_second": round(tally.finished / elapsed, 1),
        "pending": pending,
        "interrupted": stopped_by.name if stopped_by is not None else None,
    }
    if as_json:
        print(json.dumps(summary | database_json(config)))
        return
    print(
        f"processed {summary['processed']} files in {summary['seconds']} s "
        f"({summary['files_per_second']} files/s) on {database_label(config)}"
    )
    print(f"  done     {summary['done']}")
    print(f"  failed   {summary['failed']}")
    for cls, count in summary["failed_by_class"].items():
        print(f"    {cls:<14} {count}")
    print(f"  skipped  {skipped} (already had metadata: left done, not extracted)")
    left = "unknown (database unavailable)" if pending is None else str(pending)
    print(f"  pending  {left}")
    if stopped_by is not None:
        print(f"interrupted: {summary['done']} done, {left} still pending")
