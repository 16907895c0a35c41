"""Pauses in the database (migration 0009): set, mark, lift, expire, list.

Setting or lifting a pause is announced on the daemons' channel (payload "pause"), so
every daemon that LISTENs (mediad/db/listener.py) reads the pauses again at once; the others within
daemon.poll_seconds. The claim itself reads the pauses table, so no daemon claims a
paused row even before it has heard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mediad.db.connection import Database
from mediad.pauses import Pause


def pause(db: Database, prefix: str | None, until: datetime | None, set_by: str) -> Pause:
    """Set (or extend) a pause; committed and announced before the rows are marked."""
    row = db.run("pause_set", {"prefix": prefix, "until": until, "set_by": set_by})[0]
    return Pause(row["prefix"], row["since"], row["until"], set_by)


def mark(db: Database, prefix: str) -> int:
    """Mark the pending rows under a paused prefix, so the claim's walk skips them; none
    if a resume lifted the pause since it was set (a resume meanwhile waits for this)."""
    return int(db.run("pause_mark", {"prefix": prefix})[0]["marked"])


def clear_marks(db: Database) -> int:
    """Clear every mark: only while no prefix is paused (see the query's comment)."""
    return int(db.run("pause_marks_clear")[0]["cleared"])


def lift(db: Database, prefix: str | None, every: bool) -> int:
    """Lift one prefix's pause (None: the pause of everything), or `every` pause."""
    return int(db.run("pause_lift", {"prefix": prefix, "all": every})[0]["lifted"])


def expire(db: Database) -> int:
    """Lift the pauses whose time is up: how many."""
    return int(db.run("pause_expire")[0]["expired"])


def pauses(db: Database) -> list[Pause]:
    """Every pause, those expired but not lifted yet included (`Pause.expired`)."""
    return [_pause(row) for row in db.run("pauses_list")]


def active(db: Database) -> list[Pause]:
    return [p for p in pauses(db) if not p.expired]


def _pause(row: dict[str, Any]) -> Pause:
    ends_in = row["ends_in_s"]
    return Pause(
        prefix=row["prefix"],
        since=row["since"],
        until=row["until"],
        set_by=row["set_by"],
        expired=bool(row["expired"]),
        age_s=float(row["age_s"]),
        ends_in_s=None if ends_in is None else float(ends_in),
    )
