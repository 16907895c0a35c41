"""The commands of `mediad` other than argument parsing: each opens what it needs (the
store, the supervisor, the workers) and returns an exit code. Imported by mediad/cli.py
once the arguments are read and, for `run`, once the workers are booting, so that they
boot while this module's dependencies (psycopg, structlog, prometheus-client) load."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from mediad import attach, notify
from mediad.attach import Source
from mediad.config import AttachConfig, Config, as_display_dict, database_label, mask_dsn
from mediad.db import intake, migrations, reads, tables
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.db.tables import LockTimeout
from mediad.errors import DatabaseUnavailable, UsageError
from mediad.extract.summary import COLUMNS
from mediad.models import DaemonSeen
from mediad.paths import UNSTORABLE_MESSAGE, escaped, is_storable, split_names
from mediad.pool import WorkerPool
from mediad.progress import Progress
from mediad.runtime import connect, open_database
from mediad.scan import ScanReport, scan_batches
from mediad.supervisor import RunMode, Supervisor, Tally, owner_name
from mediad.walker import MIN_STALL_SECONDS, STALL_SECONDS

log = structlog.get_logger("mediad")

SHOW_SUMMARY_KEYS = (*COLUMNS, "image_tracks", "hdr_format", "languages", "streams")
# Paths looked up per statement: a long list from standard input prints as it goes.
SHOW_BATCH = 1000
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


def cmd_run(
    args: argparse.Namespace,
    config: Config,
    *,
    reload_config: Callable[[], Config],
    notifier: notify.Notifier,
    pool: WorkerPool,
) -> int:
    """The daemon, with workers that the command line started already (mediad/cli.py)."""
    with open_database(config, owner=owner_name(config.daemon.instance)) as store:
        pending_backfills = _apply_attach_config(store, config.attach)
        if args.scan:
            _scan(store, args.scan, 0)
        if not config.extract.roots:
            log.warning("extract.roots is empty: any file this user can read may be extracted")
        else:
            log.info("reading only files under extract.roots", roots=list(config.extract.roots))
        supervisor = Supervisor(
            config,
            Queue(store),
            reload_config=reload_config,
            notifier=notifier,
            store_factory=lambda new: Queue(connect(new, store.owner)),
            pool=pool,
        )
        backfill = Backfill(store, pending_backfills)
        backfill.start()
        try:
            return supervisor.run()
        finally:
            backfill.stop()


def cmd_extract(args: argparse.Namespace, config: Config) -> int:
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
        code = supervisor.run()
        progress.close()
        pending = _pending_left(supervisor.store)
        stopped_by = supervisor.stopped_by
        _print_extract_summary(supervisor.tally, skipped, pending, stopped_by, args.json, config)
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


def _print_extract_summary(
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


def _scan(
    store: Database, dirs: Sequence[str], priority: int, stall_seconds: float = STALL_SECONDS
) -> tuple[int, int, ScanReport]:
    report = ScanReport()
    inserted = requeued = 0
    for batch in scan_batches(list(dirs), report, stall_seconds):
        new, again = intake.scan_upsert(store, batch, priority)
        inserted += new
        requeued += again
    unchanged = report.seen - report.bad_names - inserted - requeued
    log.info(
        "scan finished" if report.unreachable is None else "scan stopped",
        files=report.seen,
        new=inserted,
        changed=requeued,
        unchanged=unchanged,
        bad_names=report.bad_names,
        unreadable_dirs=report.unreadable_dirs,
        unreachable=None if report.unreachable is None else escaped(report.unreachable),
    )
    return inserted, requeued, report


def cmd_scan(args: argparse.Namespace, config: Config) -> int:
    if args.stall_seconds < MIN_STALL_SECONDS:
        raise_usage(f"--stall-seconds must be {MIN_STALL_SECONDS:g} or more")
    with open_database(config) as store:
        inserted, requeued, report = _scan(store, args.dirs, args.priority, args.stall_seconds)
    if report.unreachable is not None:
        print(
            f"unreachable: {escaped(report.unreachable)} "
            f"(no answer for {args.stall_seconds:g} s); scanned before it:"
        )
    print(
        f"{report.seen} files: {inserted} new, {requeued} changed, "
        f"{report.seen - report.bad_names - inserted - requeued} unchanged "
        f"on {database_label(config)}"
    )
    if report.bad_names or report.unreadable_dirs:
        print(
            f"{report.bad_names} names that are not UTF-8 (recorded as failed, bad_path), "
            f"{report.unreadable_dirs} unreadable directories (see the log)"
        )
        return 1
    return 1 if report.unreachable is not None else 0


def _path_arguments(args: argparse.Namespace) -> list[str]:
    """The PATH arguments of `enqueue` and `show`, or with `-` alone the names on standard
    input; made absolute, never resolved (the gate decides later what a name designates)."""
    paths = list(args.paths)
    if "-" in paths:
        if len(paths) > 1:
            raise_usage(
                "'-' (paths from standard input) must be the only PATH; name a file called - as ./-"
            )
        paths = split_names(sys.stdin.buffer.read(), null=args.null)
    elif args.null:
        raise_usage("--null applies to paths read from standard input: give '-' as the only PATH")
    return [os.path.abspath(p) if not os.path.isabs(p) else p for p in paths]


def cmd_enqueue(args: argparse.Namespace, config: Config) -> int:
    absolute = _path_arguments(args)
    storable = [p for p in absolute if is_storable(p)]
    unstorable = [escaped(p) for p in absolute if not is_storable(p)]
    with open_database(config) as store:
        inserted = requeued = 0
        for start in range(0, len(storable), 1000):
            new, again = intake.enqueue(store, storable[start : start + 1000], args.priority)
            inserted += new
            requeued += again
        intake.record_unstorable(store, unstorable, UNSTORABLE_MESSAGE)
    already = len(storable) - inserted - requeued
    print(
        f"{inserted} new, {requeued} queued again, {already} already pending or running "
        f"on {database_label(config)}"
    )
    if unstorable:
        print(
            f"{len(unstorable)} names are not valid UTF-8: recorded as failed (bad_path): "
            + ", ".join(unstorable[:5]),
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    with open_database(config) as store:
        counts = reads.counts(store)
        failures = reads.failures_by_class(store)
        done_1m, failed_1m = reads.finished_since(store, 60)
        oldest = reads.oldest_pending_seconds(store)
        version = migrations.check_schema(store)
        live = reads.live_daemons(store)  # after the check: an older schema has no such table
    report: dict[str, Any] = {
        "counts": counts,
        "total": sum(counts.values()),
        "failures_by_class": failures,
        "rates": {
            "done_per_s_1m": round(done_1m / 60, 3),
            "failed_per_s_1m": round(failed_1m / 60, 3),
        },
        "oldest_pending_seconds": oldest,
        "schema": config.database.schema,
        "schema_version": version,
        **database_json(config),
        **fleet_json(live),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"schema {config.database.schema} (version {version}) on {report['database_label']}")
    for state in ("pending", "running", "done", "failed"):
        print(f"  {state:<8} {counts[state]:>10}")
    print(
        f"last minute: {report['rates']['done_per_s_1m']} done/s, "
        f"{report['rates']['failed_per_s_1m']} failed/s"
    )
    if oldest is not None:
        print(f"oldest due pending row waits {oldest:.1f} s")
    if failures:
        print("failures by class:")
        for cls, count in failures.items():
            print(f"  {cls:<14} {count:>10}")
    _print_fleet(live, report)
    return 0


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


def _print_fleet(live: Sequence[DaemonSeen], report: dict[str, Any]) -> None:
    print(f"live daemons: {len(live)}, stuck worker processes: {report['stuck_workers']}")
    if report["mounts"]:
        print("mounts:")
    for mount in report["mounts"]:
        print(
            f"  {mount['mount']} ({mount['fstype']}) {mount['state']} on {mount['owner']}: "
            f"{mount['in_flight']} in flight, {mount['stuck']} stuck, "
            f"{mount['timeouts_recent']} recent timeouts"
        )


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    # A name that is not UTF-8 is stored, and so looked up and printed, escaped (enqueue
    # and scan record it so); it could not be sent to PostgreSQL or printed as it is.
    paths = [escaped(p) for p in _path_arguments(args)]
    with open_database(config) as store:
        for start in range(0, len(paths), SHOW_BATCH):
            batch = paths[start : start + SHOW_BATCH]
            known = reads.show(store, batch)
            for path in batch:
                record = _show_record(path, known.get(path))
                if args.json:
                    print(json.dumps(record))
                else:
                    _print_show(record)
    if not args.json:
        print(f"database: {database_label(config)}")
    return 0


def _show_record(path: str, row: dict[str, Any] | None) -> dict[str, Any]:
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


def _print_show(record: dict[str, Any]) -> None:
    print(record["path"])
    if record["state"] is None:
        print("  unknown to mediad")
        return
    print(f"  state {record['state']}, attempts {record['attempts']}")
    if record["error_class"]:
        print(f"  error [{record['error_class']}] {record['error']}")
    summary = record["summary"] or {}
    for key in COLUMNS:
        if summary.get(key) is not None:
            print(f"  {key:<15} {summary[key]}")


def cmd_retry(args: argparse.Namespace, config: Config) -> int:
    with open_database(config) as store:
        count = intake.retry_failed(store, args.error_class)
    print(f"{count} failed rows queued again on {database_label(config)}")
    return 0


# --- attached tables --------------------------------------------------------------------


LOCK_TRIES = 5


def _resolve(
    store: Database,
    table: str,
    *,
    id_column: str,
    path_column: str,
    metadata_column: str | None,
    summary_prefix: str | None,
    skip_existing: bool,
    path_prefix: str | None,
) -> tuple[attach.Plan, Source | None]:
    """The mapping checked against the table, and the source already recorded for it."""
    info = tables.table_info(store, table)
    if info is None:
        raise UsageError(
            f"table {table} does not exist in {store.label} (or this role cannot see it); "
            "name it as schema.table"
        )
    plan = attach.plan(
        info,
        tables.table_columns(store, int(info["oid"])),
        id_column=id_column,
        path_column=path_column,
        metadata_column=metadata_column,
        summary_prefix=summary_prefix,
        skip_existing=skip_existing,
        path_prefix=path_prefix,
    )
    existing = next(
        (s for s in tables.sources(store) if s.table_name == plan.source.table_name), None
    )
    return plan, existing


def _mapping_text(source: Source) -> str:
    return (
        f"id={source.id_column}, path={source.path_column}, "
        f"metadata={source.metadata_column or ''}, "
        f"summary_prefix={source.summary_prefix or ''}, "
        f"skip_existing={str(source.skip_existing).lower()}, "
        f"path_prefix={source.path_prefix or ''}"
    )


T = TypeVar("T")


def _with_lock_retries(table: str, change: Callable[[], T]) -> T:
    """A busy table: give up the lock queue quickly (writers wait behind us), retry."""
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            return change()
        except LockTimeout:
            if attempt == LOCK_TRIES:
                raise
            log.warning("table busy, trying again", table=table, attempt=attempt)
            time.sleep(min(5.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


def _lock_ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _attach_with_retries(
    store: Database, source: Source, lock_timeout: float, dry_run: bool
) -> tuple[Source, list[str]]:
    return _with_lock_retries(
        source.table_name,
        lambda: tables.attach(
            store, source, lock_timeout_ms=_lock_ms(lock_timeout), dry_run=dry_run
        ),
    )


def _refresh_outdated_trigger(store: Database, source: Source, lock_timeout: float) -> bool:
    """A table attached by an older mediad gets this one's trigger (which follows id
    changes and joins the path prefix); its queued rows stay. True if it was replaced."""
    if not tables.trigger_outdated(store, source):
        return False
    _with_lock_retries(
        source.table_name,
        lambda: tables.refresh_trigger(store, source, lock_timeout_ms=_lock_ms(lock_timeout)),
    )
    log.info("trigger of an attached table brought up to date", table=source.table_name)
    return True


def _refresh_trigger_of_attached(store: Database, source: Source, args: argparse.Namespace) -> None:
    """`attach` of a table attached already, with the same mapping: the way to give it the
    trigger of this mediad when an older one attached it."""
    if not args.dry_run:
        if _refresh_outdated_trigger(store, source, args.lock_timeout):
            print(f"{source.table_name}: its trigger, from an older mediad, was replaced")
    elif tables.trigger_outdated(store, source):
        print(f"-- {source.table_name}: its trigger, from an older mediad, would be replaced")


def cmd_attach(args: argparse.Namespace, config: Config) -> int:
    if args.backfill_batch < 1:
        raise_usage("--backfill-batch must be 1 or more")
    if args.lock_timeout <= 0:
        raise_usage("--lock-timeout must be greater than 0")
    with open_database(config) as store:
        plan, existing = _resolve(
            store,
            args.table,
            id_column=args.id_column,
            path_column=args.path_column,
            metadata_column=args.metadata_column,
            summary_prefix=args.summary_prefix,
            skip_existing=not args.all,
            path_prefix=args.path_prefix,
        )
        wanted = plan.source
        for ignored in plan.ignored:
            print(f"warning: summary column {ignored}: left out", file=sys.stderr)
        if existing is not None:
            if existing.mapping() != wanted.mapping():
                raise_usage(
                    f"{wanted.table_name} is already attached with another mapping "
                    f"({_mapping_text(existing)}): run `mediad detach "
                    f"{wanted.table_name}` first"
                )
            _refresh_trigger_of_attached(store, existing, args)
            if existing.backfilled:
                print(
                    f"{wanted.table_name} is already attached on {store.label} "
                    f"(source {existing.id})"
                )
                return 0
            if args.dry_run:
                print(f"-- {wanted.table_name} is attached; its backfill would resume with:")
                print(tables.backfill_text(store, existing) + ";")
                return 0
            source = existing
            print(f"{wanted.table_name} is attached; resuming its backfill")
        else:
            source, statements = _attach_with_retries(
                store, wanted, args.lock_timeout, args.dry_run
            )
            if args.dry_run:
                print(
                    f"-- mediad attach --dry-run on {store.label}: nothing was changed. "
                    "These statements would run, in one transaction:"
                )
                print("BEGIN;")
                for statement in statements:
                    print(statement.rstrip() + ";")
                print("COMMIT;")
                print(
                    f"-- then, in batches of {args.backfill_batch} rows (one transaction "
                    "each; the first batch without the WHERE clause):"
                )
                print(tables.backfill_text(store, source) + ";")
                return 0
            columns = ", ".join(source.summary_columns) or "none"
            print(f"attached {source.table_name} (source {source.id}); summary columns: {columns}")
        seen, queued = tables.backfill(store, source, batch_size=args.backfill_batch)
    print(
        f"backfill: {seen} rows read, {queued} queued"
        + (
            f", {seen - queued} skipped (metadata already filled, no path, or already queued)"
            if seen != queued
            else ""
        )
        + f" on {database_label(config)}"
    )
    return 0


def cmd_detach(args: argparse.Namespace, config: Config) -> int:
    if args.lock_timeout <= 0:
        raise_usage("--lock-timeout must be greater than 0")
    with open_database(config) as store:
        info = tables.table_info(store, args.table)
        name = info["qualified"] if info else args.table
        sources = tables.sources(store)
        source = next((s for s in sources if s.table_name == name), None)
        if source is None:
            attached = ", ".join(s.table_name for s in sources) or "none"
            raise_usage(
                f"{args.table} is not attached on {database_label(config)} (attached: {attached})"
            )
        assert source is not None
        statements = _with_lock_retries(
            source.table_name,
            lambda: tables.detach(
                store, source, lock_timeout_ms=_lock_ms(args.lock_timeout), dry_run=args.dry_run
            ),
        )
    if args.dry_run:
        print(
            f"-- mediad detach --dry-run on {database_label(config)}: nothing was changed. "
            "These statements would run:"
        )
        for statement in statements:
            print(statement.rstrip() + ";")
        return 0
    print(
        f"detached {source.table_name} on {database_label(config)}: trigger, function and "
        "queued rows removed; the table's data is unchanged"
    )
    return 0


def _apply_attach_config(store: Database, wanted: Sequence[AttachConfig]) -> list[Source]:
    """`[attach."..."]` at start: attach what is not attached yet, refuse a changed mapping.
    Returns the sources whose backfill has not finished."""
    unfinished: list[Source] = []
    for spec in wanted:
        key = f'attach."{spec.table}"'
        try:
            plan, existing = _resolve(
                store,
                spec.table,
                id_column=spec.id,
                path_column=spec.path,
                metadata_column=spec.metadata or None,
                summary_prefix=spec.summary_prefix or None,
                skip_existing=spec.skip_existing,
                path_prefix=spec.path_prefix or None,
            )
        except UsageError as exc:
            raise UsageError(f"{key}: {exc}") from None
        if existing is None:
            source, _ = _attach_with_retries(store, plan.source, 1.0, dry_run=False)
            log.info(
                "attached a table",
                table=source.table_name,
                source=source.id,
                summary_columns=list(source.summary_columns),
            )
            unfinished.append(source)
        elif existing.mapping() != plan.source.mapping():
            raise UsageError(
                f"{key}: {existing.table_name} is attached with another mapping "
                f"({_mapping_text(existing)}): run `mediad detach "
                f"{existing.table_name}` first"
            )
        else:
            try:
                _refresh_outdated_trigger(store, existing, 1.0)
            except LockTimeout as exc:
                # The older trigger still queues work: a busy table must not keep the
                # daemon from starting (and systemd restarting it over and over).
                log.warning(
                    "trigger of an attached table is outdated and its table stayed busy; "
                    f"run `mediad attach {existing.table_name} …` to replace it",
                    table=existing.table_name,
                    error=str(exc),
                )
            if not existing.backfilled:
                unfinished.append(existing)
    return unfinished


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
        delay = 1.0
        while not self._stop.is_set():
            try:
                own.open()
                seen, queued = tables.backfill(own, source, stop=self._stop)
            except DatabaseUnavailable as exc:
                log.warning(
                    "backfill waits for the database",
                    table=source.table_name,
                    error=str(exc),
                    retry_in_s=delay,
                )
                self._stop.wait(delay)
                delay = min(60.0, delay * 2)
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


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    with open_database(config, migrate=False, check=False) as store:
        applied = migrations.migrate(store)
        version = migrations.check_schema(store)
    if applied:
        steps = ", ".join(f"{name} (version {int(name[:4])})" for name in applied)
        print(
            f"schema {config.database.schema} on {database_label(config)}: applied {steps}; "
            f"now version {version}"
        )
    else:
        print(
            f"schema {config.database.schema} on {database_label(config)} is up to date "
            f"(version {version})"
        )
    return 0


# Sections made of named tables: [attach."TABLE"], [mounts."/POINT"].
TABLE_SECTIONS = ("attach", "mounts")


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    shown = as_display_dict(config)
    if args.json:
        print(json.dumps(shown))
    else:
        source = escaped(config.source) if config.source else "defaults"
        print(f"# configuration is valid (source: {source})")
        print(f"# database: {database_label(config)}")
        for section, values in shown.items():
            tables = values.items() if section in TABLE_SECTIONS else [("", values)]
            for table, table_values in tables:
                print(f"[{section}]" if not table else f"[{section}.{json.dumps(table)}]")
                for key, value in table_values.items():
                    print(f"{key} = {json.dumps(value)}")
                print()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "extract": cmd_extract,
    "scan": cmd_scan,
    "enqueue": cmd_enqueue,
    "status": cmd_status,
    "show": cmd_show,
    "retry": cmd_retry,
    "attach": cmd_attach,
    "detach": cmd_detach,
    "migrate": cmd_migrate,
    "check-config": cmd_check_config,
}


def database_json(config: Config) -> dict[str, str]:
    """The database in a --json output: "database" as `status --json` has always given it
    (the DSN masked, or "embedded"), and "database_label" as the text output names it."""
    return {
        "database": mask_dsn(config.database.dsn) or "embedded",
        "database_label": database_label(config),
    }


def raise_usage(message: str) -> None:
    raise UsageError(message)
