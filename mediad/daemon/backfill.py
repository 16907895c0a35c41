"""The backfill of newly attached tables, run inside the daemon."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import structlog

from mediad.attach import Source
from mediad.db import tables
from mediad.db.connection import Database
from mediad.errors import DatabaseUnavailable
from mediad.retry import Backoff

log = structlog.get_logger("mediad")

# Waits for the database while it is away: 1 s, doubling, at most a minute.
OUTAGE_BACKOFF = Backoff(first=1.0, most=60.0)


class Backfill:
    """Backfills of newly configured tables, in a thread with its own connections, so the
    daemon starts (and works on what is queued) at once. Progress is recorded: a backfill
    cut short by a stop resumes at the next start."""

    def __init__(self, store: Database, sources: Sequence[Source]) -> None:
        self._store = store
        self._sources = list(sources)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediad-backfill", daemon=True)

    def start(self) -> None:
        if self._sources:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        own = self._store.clone()
        try:
            for source in self._sources:
                self._backfill_until_done(own, source)
        finally:
            own.close()

    def _backfill_until_done(self, own: Database, source: Source) -> None:
        """A database outage pauses the backfill (it resumes where it stopped, recorded in
        the database); anything else is logged with its traceback, never lost silently."""
        failures = 0
        while not self._stop.is_set():
            try:
                own.open()
                seen, queued = tables.backfill(own, source, stop=self._stop)
            except DatabaseUnavailable as exc:
                failures += 1
                delay = OUTAGE_BACKOFF.delay(failures)
                log.warning(
                    "backfill waits for the database",
                    table=source.table_name,
                    error=str(exc),
                    retry_in_s=delay,
                )
                self._stop.wait(delay)
                continue
            except Exception:
                log.exception(
                    "backfill stopped; it resumes at the next start", table=source.table_name
                )
                return
            log.info(
                "backfill finished" if not self._stop.is_set() else "backfill paused",
                table=source.table_name,
                rows=seen,
                queued=queued,
            )
            return
