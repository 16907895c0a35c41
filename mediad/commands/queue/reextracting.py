"""`mediad reextract`: finished rows queued again, behind new work, to be extracted anew
(mediad/reextract.py says what is selected, mediad/db/intake.py queues it)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import structlog

from mediad.commands.base import raise_usage
from mediad.commands.output import database_json
from mediad.config import Config, database_label
from mediad.db import intake
from mediad.extract.summary import MAPPING_VERSION
from mediad.reextract import Selection, SelectionError
from mediad.runtime import open_database

log = structlog.get_logger("mediad")

# How often a long reextract says how far it got.
PROGRESS_SECONDS = 5.0


def selection_of(args: argparse.Namespace) -> Selection:
    """The rows the flags name; a usage error (exit 2) if they name none sensibly."""
    below = MAPPING_VERSION if args.mapping_below == "current" else args.mapping_below
    try:
        return Selection(
            mapping_below=below,
            containers=_given(args.containers),
            extensions=_given(args.extensions),
            classes=_given(args.classes),
            everything=args.all,
        )
    except SelectionError as exc:
        raise_usage(str(exc))


def reextract(args: argparse.Namespace, config: Config) -> int:
    selection = selection_of(args)
    with open_database(config) as store:
        rows = intake.reextract(
            store, selection, args.priority, dry_run=args.dry_run, on_batch=_progress()
        )
    if args.json:
        print(
            json.dumps(
                {
                    "rows": rows,
                    "dry_run": args.dry_run,
                    "priority": args.priority,
                    **database_json(config),
                }
            )
        )
    elif args.dry_run:
        print(
            f"{rows} rows would be queued again at priority {args.priority} "
            f"(dry run: nothing changed) on {database_label(config)}"
        )
    else:
        print(
            f"{rows} rows queued again at priority {args.priority}, behind new work, "
            f"on {database_label(config)}"
        )
    return 0


def _given(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _progress() -> Callable[[int], None]:
    """A log line every PROGRESS_SECONDS while the windows go by."""
    last = [time.monotonic()]

    def heard(queued: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            log.info("reextract progress", queued=queued)

    return heard
