"""`mediad pause` and `mediad resume`: pauses kept in the database, obeyed by every
daemon (mediad/db/pauses.py, docs/operations.md)."""

from __future__ import annotations

import argparse
import getpass
import socket
from datetime import UTC, datetime

from mediad.commands.base import raise_usage
from mediad.config import Config, database_label
from mediad.db import pauses
from mediad.pauses import normalize_prefix, parse_until
from mediad.runtime import open_database


def pause(args: argparse.Namespace, config: Config) -> int:
    prefix = _prefix(args.prefix)
    until = None
    if args.until is not None:
        try:
            until = parse_until(args.until, datetime.now(UTC))
        except ValueError as exc:
            raise_usage(str(exc))
    with open_database(config) as db:
        paused = pauses.pause(db, prefix, until, _who())
        # After the pause is committed: daemons already obey it, this only makes their
        # claims skip the rows without looking at them.
        marked = pauses.mark(db, prefix) if prefix is not None else None
    what = paused.prefix or "everything"
    until_text = f" until {paused.until.isoformat(timespec='seconds')}" if paused.until else ""
    rows = f" ({marked} pending rows)" if marked is not None else ""
    print(f"paused {what}{rows}{until_text} on {database_label(config)}")
    return 0


def resume(args: argparse.Namespace, config: Config) -> int:
    prefix = _prefix(args.prefix)
    with open_database(config) as db:
        lifted = pauses.lift(db, prefix, every=prefix is None)
    if prefix is None:
        print(f"resumed: {lifted} pauses lifted on {database_label(config)}")
        return 0
    if not lifted:
        print(f"no pause of {prefix} on {database_label(config)}")
        return 1
    print(f"resumed {prefix} on {database_label(config)}")
    return 0


def _prefix(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return normalize_prefix(text)
    except ValueError as exc:
        raise_usage(str(exc))


def _who() -> str:
    """Who set a pause, for the person who finds it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "?"
    return f"{user}@{socket.gethostname()}"
