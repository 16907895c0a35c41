"""Attaching a table, shared by `mediad attach` and the daemon's `[attach."TABLE"]`: the
mapping checked against the table, and trigger changes retried while the table is busy."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import structlog

from mediad import attach
from mediad.attach import Source
from mediad.config import AttachConfig
from mediad.db import tables
from mediad.db.connection import Database
from mediad.db.tables import LockTimeout
from mediad.errors import UsageError
from mediad.retry import Backoff

log = structlog.get_logger("mediad")

LOCK_TRIES = 5
# Between tries on a busy table: 1 s, 2 s, 4 s, then 5 s.
LOCK_BACKOFF = Backoff(first=1.0, most=5.0)

T = TypeVar("T")


def resolve(
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


def mapping_text(source: Source) -> str:
    return (
        f"id={source.id_column}, path={source.path_column}, "
        f"metadata={source.metadata_column or ''}, "
        f"summary_prefix={source.summary_prefix or ''}, "
        f"skip_existing={str(source.skip_existing).lower()}, "
        f"path_prefix={source.path_prefix or ''}"
    )


def with_lock_retries(table: str, change: Callable[[], T]) -> T:
    """A busy table: give up the lock queue quickly (writers wait behind us), retry."""
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            return change()
        except LockTimeout:
            if attempt == LOCK_TRIES:
                raise
            log.warning("table busy, trying again", table=table, attempt=attempt)
            time.sleep(LOCK_BACKOFF.delay(attempt))
    raise AssertionError("unreachable")


def lock_ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def attach_with_retries(
    store: Database, source: Source, lock_timeout: float, dry_run: bool
) -> tuple[Source, list[str]]:
    return with_lock_retries(
        source.table_name,
        lambda: tables.attach(
            store, source, lock_timeout_ms=lock_ms(lock_timeout), dry_run=dry_run
        ),
    )


def refresh_outdated_trigger(store: Database, source: Source, lock_timeout: float) -> bool:
    """A table attached by an older mediad gets this one's trigger (which follows id
    changes and joins the path prefix); its queued rows stay. True if it was replaced."""
    if not tables.trigger_outdated(store, source):
        return False
    with_lock_retries(
        source.table_name,
        lambda: tables.refresh_trigger(store, source, lock_timeout_ms=lock_ms(lock_timeout)),
    )
    log.info("trigger of an attached table brought up to date", table=source.table_name)
    return True


def refresh_summary_columns(
    store: Database, existing: Source, wanted: Source, dry_run: bool = False
) -> Source:
    """The same mapping attached again: the prefixed columns the table has now are the
    ones written back, so adding columns (the camera fields, say) and attaching again
    opts in without a detach. Returns the source as recorded."""
    if existing.summary_columns == wanted.summary_columns:
        return existing
    if not dry_run:
        tables.set_summary_columns(store, existing, wanted.summary_columns)
        log.info(
            "summary columns of an attached table updated",
            table=existing.table_name,
            summary_columns=list(wanted.summary_columns),
        )
    return replace(
        existing,
        summary_columns=wanted.summary_columns,
        summary_types=wanted.summary_types,
    )


def apply_attach_config(store: Database, wanted: Sequence[AttachConfig]) -> list[Source]:
    """`[attach."..."]` at start: attach what is not attached yet, refuse a changed mapping.
    Returns the sources whose backfill has not finished."""
    unfinished: list[Source] = []
    for spec in wanted:
        key = f'attach."{spec.table}"'
        try:
            plan, existing = resolve(
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
            source, _ = attach_with_retries(store, plan.source, 1.0, dry_run=False)
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
                f"({mapping_text(existing)}): run `mediad detach "
                f"{existing.table_name}` first"
            )
        else:
            _refresh_at_start(store, existing)
            existing = refresh_summary_columns(store, existing, plan.source)
            if not existing.backfilled:
                unfinished.append(existing)
    return unfinished


def _refresh_at_start(store: Database, existing: Source) -> None:
    try:
        refresh_outdated_trigger(store, existing, 1.0)
    except LockTimeout as exc:
        # The older trigger still queues work: a busy table must not keep the
        # daemon from starting (and systemd restarting it over and over).
        log.warning(
            "trigger of an attached table is outdated and its table stayed busy; "
            f"run `mediad attach {existing.table_name} …` to replace it",
            table=existing.table_name,
            error=str(exc),
        )
