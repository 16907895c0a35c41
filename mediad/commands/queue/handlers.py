"""`mediad scan`, `enqueue` and `retry`: rows into the queue, and what became of them."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from mediad.commands.base import raise_usage
from mediad.commands.options import path_arguments
from mediad.config import Config, database_label
from mediad.db import intake
from mediad.paths import UNSTORABLE_MESSAGE, escaped, is_storable
from mediad.runtime import open_database
from mediad.scan import scan_into
from mediad.walker import MIN_STALL_SECONDS

# Paths queued per statement.
ENQUEUE_BATCH = 1000


def scan(args: argparse.Namespace, config: Config) -> int:
    if args.stall_seconds < MIN_STALL_SECONDS:
        raise_usage(f"--stall-seconds must be {MIN_STALL_SECONDS:g} or more")
    with open_database(config) as store:
        # Sidecars count only where a worker reads them (extract.second_reader).
        upsert = partial(intake.scan_upsert, store, sidecars=config.extract.second_reader)
        inserted, requeued, report = scan_into(upsert, args.dirs, args.priority, args.stall_seconds)
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


def enqueue(args: argparse.Namespace, config: Config) -> int:
    absolute = path_arguments(args)
    storable = [p for p in absolute if is_storable(p)]
    unstorable = [escaped(p) for p in absolute if not is_storable(p)]
    with open_database(config) as store:
        inserted = requeued = 0
        for start in range(0, len(storable), ENQUEUE_BATCH):
            new, again = intake.enqueue(
                store, storable[start : start + ENQUEUE_BATCH], args.priority
            )
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


def retry(args: argparse.Namespace, config: Config) -> int:
    with open_database(config) as store:
        count = intake.retry_failed(store, args.error_class)
    print(f"{count} failed rows queued again on {database_label(config)}")
    return 0
