"""The `mediad` command line. Exit codes: 0 success or clean drain, 2 usage or config, 1 else."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from mediad import __version__, logs, notify
from mediad.config import Config, as_display_dict, load, mask_dsn
from mediad.errors import MediadError, UsageError
from mediad.paths import UNSTORABLE_MESSAGE, escaped, is_storable
from mediad.pool import WorkerBootError
from mediad.progress import Progress
from mediad.runtime import connect, open_store
from mediad.scan import ScanReport, batched, walk
from mediad.store import Store
from mediad.summary import COLUMNS
from mediad.supervisor import RunMode, Supervisor, Tally, owner_name

log = structlog.get_logger("mediad")

SHOW_SUMMARY_KEYS = (*COLUMNS, "image_tracks", "hdr_format", "languages", "streams")
SHOW_FIELDS = ("path", "state", "attempts", "error_class", "error", "priority",
               "resolved_path", "size_bytes", "mtime", "finished_at", "summary")


# --- parser ---------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file (or MEDIAD_CONFIG)")
    parser.add_argument("--dsn", help="PostgreSQL DSN; empty: the embedded server")
    parser.add_argument("--schema", help="mediad's schema (default mediad)")
    parser.add_argument("--state-dir", metavar="DIR", help="where the embedded server lives")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-format", choices=("auto", "console", "json", "journald"))


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", "--threads", dest="workers", type=int, metavar="N",
                        help="worker processes (--threads is the old script's name for it)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="rows claimed per statement")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediad",
        description="Keeps the technical metadata of a media library in PostgreSQL up to date.",
    )
    parser.add_argument("--version", action="version", version=f"mediad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        return sub

    run = command("run", "Run the daemon: claim pending rows, extract, write back, until "
                  "SIGTERM/SIGINT (which drain). SIGHUP reloads the config.")
    _worker_options(run)
    run.add_argument("--scan", nargs="+", metavar="DIR", default=[],
                     help="scan these trees before starting (the quick start uses it)")
    run.add_argument("--no-listen", action="store_true",
                     help="poll only (no LISTEN/NOTIFY), e.g. behind PgBouncer")
    run.add_argument("--metrics-listen", metavar="HOST:PORT", help="metrics address; '' for none")

    extract = command("extract", "One-shot run of the old extract-media-from-db script: "
                      "process pending rows and exit with a summary.")
    _worker_options(extract)
    extract.add_argument("--limit", type=int, default=0, metavar="N",
                         help="process at most N files (0: all)")
    extract.add_argument("--skip-existing", action="store_true",
                         help="skip rows that already hold metadata from an earlier extraction")
    extract.add_argument("--all", action="store_true",
                         help="first queue again every finished row (re-extract everything)")
    extract.add_argument("--json", action="store_true", help="print the summary as JSON")

    scan = command("scan", "Walk trees and enqueue new files and files whose size or mtime "
                   "changed; unchanged files are skipped.")
    scan.add_argument("dirs", nargs="+", metavar="DIR")
    scan.add_argument("--priority", type=int, default=0, help="higher is claimed first")

    enqueue = command("enqueue", "Queue paths for extraction (again, if already finished). "
                      "'-' reads paths from standard input, one per line.")
    enqueue.add_argument("paths", nargs="+", metavar="PATH")
    enqueue.add_argument("--priority", type=int, default=0, help="higher is claimed first")

    status = command("status", "Queue counts by state, rates, failures by class.")
    status.add_argument("--json", action="store_true", help="one JSON object")

    show = command("show", "What mediad knows of these paths.")
    show.add_argument("paths", nargs="+", metavar="PATH")
    show.add_argument("--json", action="store_true", help="one JSON object per path, per line")

    retry = command("retry", "Queue failed rows again, all or of one failure class.")
    retry.add_argument("--class", dest="error_class", metavar="CLASS",
                       help="only rows that failed with this class (e.g. timeout)")

    command("migrate", "Create or upgrade mediad's schema (safe to run concurrently).")
    check = command("check-config", "Validate the configuration and print it, secrets masked.")
    check.add_argument("--json", action="store_true")
    return parser


# --- config from file, environment and flags ------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    mapping = {
        "dsn": ("database", "dsn"),
        "schema": ("database", "schema"),
        "state_dir": ("daemon", "state_dir"),
        "log_level": ("log", "level"),
        "log_format": ("log", "format"),
        "workers": ("daemon", "workers"),
        "batch_size": ("daemon", "batch_size"),
        "metrics_listen": ("metrics", "listen"),
    }
    found = {key: getattr(args, name) for name, key in mapping.items()
             if getattr(args, name, None) is not None}
    if getattr(args, "no_listen", False):
        found[("database", "listen")] = False
    return found


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    return load(args.config, environ=environ, overrides=_overrides(args))


# --- commands ---------------------------------------------------------------------------


def _run_config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    """The daemon's config; the embedded quick start confines itself to the scanned trees."""
    config = load_config(args, environ)
    if config.embedded and not config.extract.roots and args.scan:
        roots = [os.path.abspath(d) for d in args.scan]
        config = load(args.config, environ=environ,
                      overrides={**_overrides(args), ("extract", "roots"): roots})
    return config


# Variables that may carry the database password: read once at start, then removed from
# the environment so that worker processes (which inherit it) never see them.
SECRET_VARIABLES = ("MEDIAD_DATABASE_DSN", "PGPASSWORD")


def _scrub_secret_environment() -> dict[str, str]:
    """The environment as it was (for reloads), after removing secrets from the live one."""
    startup = dict(os.environ)
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    return startup


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    startup_environment = _scrub_secret_environment()
    config = _run_config(args, startup_environment)
    notifier = notify.from_environment()  # before anything slow: a missing extra fails now
    with open_store(config, owner=owner_name(config.daemon.instance)) as store:
        if args.scan:
            _scan(store, args.scan, 0)
        if not config.extract.roots:
            log.warning("extract.roots is empty: any file this user can read may be extracted")
        else:
            log.info("reading only files under extract.roots", roots=list(config.extract.roots))
        supervisor = Supervisor(
            config,
            store,
            reload_config=lambda: _run_config(args, startup_environment),
            notifier=notifier,
            store_factory=lambda new: connect(new, store.owner),
        )
        return supervisor.run()


def cmd_extract(args: argparse.Namespace, config: Config) -> int:
    if args.all and args.skip_existing:
        raise_usage("--all and --skip-existing contradict each other")
    if args.limit < 0:
        raise_usage("--limit must be 0 or more")
    with open_store(config, owner=owner_name("extract")) as store:
        if args.all:
            requeued = store.requeue_finished()
            log.info("queued every finished row again", rows=requeued)
        counts = store.counts()
        skipped = store.count_pending_with_metadata() if args.skip_existing else 0
        total = counts["pending"] - skipped
        if args.limit:
            total = min(total, args.limit)
        progress = Progress(total)
        mode = RunMode(one_shot=True, limit=args.limit, skip_existing=args.skip_existing)
        supervisor = Supervisor(config, store, mode, on_progress=progress.update)
        code = supervisor.run()
        progress.close()
        _print_extract_summary(supervisor.tally, skipped, args.json)
        return code


def _print_extract_summary(tally: Tally, skipped: int, as_json: bool) -> None:
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
    }
    if as_json:
        print(json.dumps(summary))
        return
    print(f"processed {summary['processed']} files in {summary['seconds']} s "
          f"({summary['files_per_second']} files/s)")
    print(f"  done     {summary['done']}")
    print(f"  failed   {summary['failed']}")
    for cls, count in summary["failed_by_class"].items():
        print(f"    {cls:<14} {count}")
    print(f"  skipped  {skipped} (already had metadata)")


def _scan(store: Store, dirs: Sequence[str], priority: int) -> tuple[int, int, ScanReport]:
    for directory in dirs:
        if not os.path.isdir(directory):
            raise_usage(f"{directory}: not a directory")
    report = ScanReport()
    inserted = requeued = 0
    for batch in batched(walk(list(dirs), report), 1000):
        new, again = store.scan_upsert(batch, priority)
        inserted += new
        requeued += again
    unchanged = report.seen - report.bad_names - inserted - requeued
    log.info("scan finished", files=report.seen, new=inserted, changed=requeued,
             unchanged=unchanged, bad_names=report.bad_names,
             unreadable_dirs=report.unreadable_dirs)
    return inserted, requeued, report


def cmd_scan(args: argparse.Namespace, config: Config) -> int:
    with open_store(config) as store:
        inserted, requeued, report = _scan(store, args.dirs, args.priority)
    print(f"{report.seen} files: {inserted} new, {requeued} changed, "
          f"{report.seen - report.bad_names - inserted - requeued} unchanged")
    if report.bad_names or report.unreadable_dirs:
        print(f"{report.bad_names} names that are not UTF-8 (recorded as failed, bad_path), "
              f"{report.unreadable_dirs} unreadable directories (see the log)")
        return 1
    return 0


def cmd_enqueue(args: argparse.Namespace, config: Config) -> int:
    paths = list(args.paths)
    if paths == ["-"]:
        paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    # The name the application gave, made absolute, never resolved: the gate decides later.
    absolute = [os.path.abspath(p) if not os.path.isabs(p) else p for p in paths]
    storable = [p for p in absolute if is_storable(p)]
    unstorable = [escaped(p) for p in absolute if not is_storable(p)]
    with open_store(config) as store:
        inserted = requeued = 0
        for start in range(0, len(storable), 1000):
            new, again = store.enqueue(storable[start : start + 1000], args.priority)
            inserted += new
            requeued += again
        store.record_unstorable(unstorable, UNSTORABLE_MESSAGE)
    already = len(storable) - inserted - requeued
    print(f"{inserted} new, {requeued} queued again, {already} already pending or running")
    if unstorable:
        print(f"{len(unstorable)} names are not valid UTF-8: recorded as failed (bad_path): "
              + ", ".join(unstorable[:5]), file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    with open_store(config) as store:
        counts = store.counts()
        failures = store.failures_by_class()
        done_1m, failed_1m = store.finished_since(60)
        oldest = store.oldest_pending_seconds()
        version = store.check_schema()
    report: dict[str, Any] = {
        "counts": counts,
        "total": sum(counts.values()),
        "failures_by_class": failures,
        "rates": {"done_per_s_1m": round(done_1m / 60, 3),
                  "failed_per_s_1m": round(failed_1m / 60, 3)},
        "oldest_pending_seconds": oldest,
        "schema": config.database.schema,
        "schema_version": version,
        "database": mask_dsn(config.database.dsn) or "embedded",
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"schema {config.database.schema} (version {version}) on {report['database']}")
    for state in ("pending", "running", "done", "failed"):
        print(f"  {state:<8} {counts[state]:>10}")
    print(f"last minute: {report['rates']['done_per_s_1m']} done/s, "
          f"{report['rates']['failed_per_s_1m']} failed/s")
    if oldest is not None:
        print(f"oldest due pending row waits {oldest:.1f} s")
    if failures:
        print("failures by class:")
        for cls, count in failures.items():
            print(f"  {cls:<14} {count:>10}")
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    paths = [os.path.abspath(p) if not os.path.isabs(p) else p for p in args.paths]
    with open_store(config) as store:
        known = store.show(paths)
    for path in paths:
        row = known.get(path)
        record = _show_record(path, row)
        if args.json:
            print(json.dumps(record))
        else:
            _print_show(record)
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
    with open_store(config) as store:
        count = store.retry_failed(args.error_class)
    print(f"{count} failed rows queued again")
    return 0


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    with open_store(config, migrate=False, check=False) as store:
        applied = store.migrate()
        version = store.check_schema()
    if applied:
        print(f"schema {config.database.schema}: applied {', '.join(applied)}; now version "
              f"{version}")
    else:
        print(f"schema {config.database.schema} is up to date (version {version})")
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    shown = as_display_dict(config)
    if args.json:
        print(json.dumps(shown))
    else:
        print(f"# configuration is valid (source: {config.source or 'defaults'})")
        for section, values in shown.items():
            print(f"[{section}]")
            for key, value in values.items():
                print(f"{key} = {json.dumps(value)}")
            print()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "run": cmd_run,
    "extract": cmd_extract,
    "scan": cmd_scan,
    "enqueue": cmd_enqueue,
    "status": cmd_status,
    "show": cmd_show,
    "retry": cmd_retry,
    "migrate": cmd_migrate,
    "check-config": cmd_check_config,
}


def raise_usage(message: str) -> None:
    raise UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
    except MediadError as exc:
        print(f"mediad: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    logs.configure(config.log.level, config.log.format)
    try:
        return COMMANDS[args.command](args, config)
    except WorkerBootError as exc:
        print(f"mediad: workers cannot start: {exc}", file=sys.stderr)
        return 1
    except MediadError as exc:
        print(f"mediad: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
