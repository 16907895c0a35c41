"""`mediad extract`: the daemon's loop run once over what is pending, then a summary."""

from __future__ import annotations

import argparse

import structlog

from mediad.commands.base import raise_usage
from mediad.commands.daemon.progress import Progress
from mediad.commands.daemon.summary import print_extract_summary
from mediad.config import Config
from mediad.daemon.loop import Supervisor
from mediad.daemon.mode import RunMode, owner_name
from mediad.db import intake, reads, tables
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.errors import DatabaseUnavailable
from mediad.runtime import open_database

log = structlog.get_logger("mediad")


def extract(args: argparse.Namespace, config: Config) -> int:
    if args.all and args.skip_existing:
        raise_usage("--all and --skip-existing contradict each other")
    if args.limit < 0:
        raise_usage("--limit must be 0 or more")
    with open_database(config, owner=owner_name("extract")) as store:
        # Settled before the run: no claim reads them, and no later run extracts them.
        skipped = intake.settle_existing(store) if args.skip_existing else 0
        if skipped:
            log.info("rows that already had metadata settled as done", rows=skipped)
        if args.all:
            _requeue_for_all(store, args.limit)
        total = reads.counts(store)["pending"]
        if args.limit:
            total = min(total, args.limit)
        progress = Progress(total)
        mode = RunMode(one_shot=True, limit=args.limit, skip_existing=args.skip_existing)
        supervisor = Supervisor(config, Queue(store), mode, on_progress=progress.update)
        try:
            code = supervisor.run()
        finally:
            progress.close()  # the terminal as it was, whatever happened
        pending = _pending_left(supervisor.store)
        stopped_by = supervisor.stopped_by
        print_extract_summary(supervisor.tally, skipped, pending, stopped_by, args.json, config)
        # Cron and scripts tell a cut-short run from a finished one, as a shell would.
        return 128 + int(stopped_by) if stopped_by is not None and code == 0 else code


def _requeue_for_all(store: Database, limit: int) -> None:
    """--all: finished rows, and the attached rows never queued because they had metadata
    (skip-existing attach), queued again. With --limit, no more than the run will process
    after the rows already pending: a re-queued row left pending would be extracted by
    the next `run`, overwriting metadata nobody asked to refresh."""
    budget = max(0, limit - reads.counts(store)["pending"]) if limit else None
    requeued = intake.requeue_finished(store, budget)
    log.info("queued finished rows again", rows=requeued, limit=budget)
    left = None if budget is None else budget - requeued
    for source in tables.sources(store):
        if left == 0:
            break
        _, queued = tables.backfill(
            store, source, skip_existing=False, resume=False, record=False, max_queued=left
        )
        left = None if left is None else left - queued
        log.info("queued the rows of an attached table", table=source.table_name, rows=queued)


def _pending_left(store: Queue) -> int | None:
    """Pending rows after the run, for the summary; None if the database is gone (the
    summary of what was done still matters more than this count)."""
    try:
        return store.counts()["pending"]
    except DatabaseUnavailable as exc:
        log.warning("could not count the pending rows", error=str(exc))
        return None
