"""`mediad attach` and `mediad detach`: a table's trigger and queued rows, added or
removed, or with --dry-run the SQL that would do it."""

from __future__ import annotations

import argparse
import sys

from mediad.attach import Source
from mediad.commands.base import raise_usage
from mediad.commands.tables.attaching import (
    attach_with_retries,
    lock_ms,
    mapping_text,
    refresh_outdated_trigger,
    refresh_summary_columns,
    resolve,
    with_lock_retries,
)
from mediad.config import Config, database_label
from mediad.db import tables
from mediad.db.connection import Database
from mediad.runtime import open_database


def attach(args: argparse.Namespace, config: Config) -> int:
    if args.backfill_batch < 1:
        raise_usage("--backfill-batch must be 1 or more")
    if args.lock_timeout <= 0:
        raise_usage("--lock-timeout must be greater than 0")
    with open_database(config) as store:
        plan, existing = resolve(
            store,
            args.table,
            id_column=args.id_column,
            path_column=args.path_column,
            metadata_column=args.metadata_column,
            summary_prefix=args.summary_prefix,
            skip_existing=not args.all,
            path_prefix=args.path_prefix,
        )
        for ignored in plan.ignored:
            print(f"warning: summary column {ignored}: left out", file=sys.stderr)
        if existing is not None:
            source = _attached_already(store, existing, plan.source, args)
        else:
            source = _attach_new(store, plan.source, args)
        if source is None:
            return 0
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


def _attached_already(
    store: Database, existing: Source, wanted: Source, args: argparse.Namespace
) -> Source | None:
    """A table attached before: the source whose backfill resumes, or None if there is
    nothing left to do (or --dry-run said what it would do)."""
    if existing.mapping() != wanted.mapping():
        raise_usage(
            f"{wanted.table_name} is already attached with another mapping "
            f"({mapping_text(existing)}): run `mediad detach "
            f"{wanted.table_name}` first"
        )
    _refresh_trigger_of_attached(store, existing, args)
    if existing.summary_columns != wanted.summary_columns:
        existing = refresh_summary_columns(store, existing, wanted, args.dry_run)
        columns = ", ".join(existing.summary_columns) or "none"
        verb = "would now be" if args.dry_run else "are now"
        print(
            f"{'-- ' if args.dry_run else ''}{wanted.table_name}: summary columns {verb}: {columns}"
        )
    if existing.backfilled:
        print(f"{wanted.table_name} is already attached on {store.label} (source {existing.id})")
        return None
    if args.dry_run:
        print(f"-- {wanted.table_name} is attached; its backfill would resume with:")
        print(tables.backfill_text(store, existing) + ";")
        return None
    print(f"{wanted.table_name} is attached; resuming its backfill")
    return existing


def _attach_new(store: Database, wanted: Source, args: argparse.Namespace) -> Source | None:
    """The table attached: the source to backfill, or None after --dry-run."""
    source, statements = attach_with_retries(store, wanted, args.lock_timeout, args.dry_run)
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
        return None
    columns = ", ".join(source.summary_columns) or "none"
    print(f"attached {source.table_name} (source {source.id}); summary columns: {columns}")
    return source


def _refresh_trigger_of_attached(store: Database, source: Source, args: argparse.Namespace) -> None:
    """`attach` of a table attached already, with the same mapping: the way to give it the
    trigger of this mediad when an older one attached it."""
    if not args.dry_run:
        if refresh_outdated_trigger(store, source, args.lock_timeout):
            print(f"{source.table_name}: its trigger, from an older mediad, was replaced")
    elif tables.trigger_outdated(store, source):
        print(f"-- {source.table_name}: its trigger, from an older mediad, would be replaced")


def detach(args: argparse.Namespace, config: Config) -> int:
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
        statements = with_lock_retries(
            source.table_name,
            lambda: tables.detach(
                store, source, lock_timeout_ms=lock_ms(args.lock_timeout), dry_run=args.dry_run
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
