"""Work coming in: paths enqueued or scanned, and finished rows queued again (retry,
extract --all, reextract), or settled (extract --skip-existing).

Every way a finished row goes back to pending goes through the SQL function
`queued_again` (migration 0007, docs/schema.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mediad.db.connection import Database
from mediad.models import ScanEntry
from mediad.paths import UNSTORABLE_MESSAGE
from mediad.reextract import REEXTRACT_PRIORITY, REEXTRACT_WINDOW, Selection


def enqueue(db: Database, paths: Sequence[str], priority: int = 0) -> tuple[int, int]:
    """Returns (inserted, queued again)."""
    if not paths:
        return 0, 0
    rows = db.run("enqueue", {"paths": list(paths), "priorities": [priority] * len(paths)})
    inserted = sum(1 for r in rows if r["inserted"])
    return inserted, len(rows) - inserted


def record_unstorable(db: Database, escaped_paths: Sequence[str], message: str) -> int:
    if not escaped_paths:
        return 0
    return len(db.run("record_unstorable", {"paths": list(escaped_paths), "message": message}))


def scan_upsert(
    db: Database, entries: Sequence[ScanEntry], priority: int = 0, *, sidecars: bool = True
) -> tuple[int, int]:
    """Returns (inserted, queued again). `sidecars`: a change of a file's XMP sidecar is a
    change of the file (extract.second_reader on; off, no worker reads them)."""
    bad = [e.path for e in entries if e.unstorable]
    if bad:
        record_unstorable(db, bad, UNSTORABLE_MESSAGE)
        entries = [e for e in entries if not e.unstorable]
    if not entries:
        return 0, 0
    rows = db.run(
        "scan_upsert",
        {
            "paths": [e.path for e in entries],
            "priorities": [priority] * len(entries),
            "sizes": [e.size_bytes for e in entries],
            "mtimes_us": [e.mtime_us for e in entries],
            "sidecar_sizes": [e.sidecar_size_bytes if sidecars else None for e in entries],
            "sidecar_mtimes_us": [e.sidecar_mtime_us if sidecars else None for e in entries],
            "sidecars": sidecars,
        },
    )
    inserted = sum(1 for r in rows if r["inserted"])
    return inserted, len(rows) - inserted


def retry_failed(db: Database, error_class: str | None) -> int:
    return len(db.run("retry_failed", {"error_class": error_class}))


def requeue_finished(db: Database, limit: int | None = None) -> int:
    """Finished rows queued again, oldest first; at most `limit` (None: all)."""
    return int(db.run("requeue_finished", {"limit": limit})[0]["n"])


def reextract(
    db: Database,
    selection: Selection,
    priority: int = REEXTRACT_PRIORITY,
    *,
    dry_run: bool = False,
    window: int = REEXTRACT_WINDOW,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """The rows of `selection` queued again at `priority`, one committed statement per
    window of `window` ids, so no statement holds its locks for long however many rows
    match; with `dry_run`, only counted. Returns how many; `on_batch` hears the running
    total after each window."""
    last = int(db.run("files_max_id")[0]["id"])  # rows inserted later are new work
    params = {**selection.params(), "priority": priority, "dry_run": dry_run}
    queued = 0
    for after in range(0, last, window):
        found = db.run("reextract_batch", {**params, "after": after, "upto": after + window})
        queued += int(found[0]["n"])
        if on_batch is not None:
            on_batch(queued)
    return queued


def settle_existing(db: Database) -> int:
    """Pending rows that already hold metadata, back to done untouched: how many."""
    return int(db.run("settle_existing")[0]["n"])
