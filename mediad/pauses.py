"""Pauses (`mediad pause`, `mediad resume`): what one covers, and reading their flags.
Pure: the database keeps the pauses (mediad/db/pauses.py), the daemon obeys them
(mediad/daemon/pauses.py)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Pause:
    """A pause as the database holds it: `prefix` None pauses every row, `until` None
    lasts until resumed. `ends_in_s` and `age_s` come from the database's clock."""

    prefix: str | None
    since: datetime
    until: datetime | None
    set_by: str = ""
    expired: bool = False
    age_s: float = 0.0
    ends_in_s: float | None = None

    def covers(self, path: str) -> bool:
        return covers(self.prefix, path)

    def as_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }

    def describe(self) -> str:
        what = self.prefix or "everything"
        until = f" until {self.until.isoformat(timespec='seconds')}" if self.until else ""
        by = f" by {self.set_by}" if self.set_by else ""
        return f"{what}: since {self.since.isoformat(timespec='seconds')}{until}{by}"


def normalize_prefix(text: str) -> str:
    """The directory a pause names, as stored: absolute (relative to the current
    directory, as `enqueue` makes paths), no trailing slash but for "/" itself."""
    if not text:
        raise ValueError("--prefix needs a directory")
    path = posixpath.normpath(os.path.abspath(text))
    # POSIX keeps a leading "//" apart; a path mediad reads never has one.
    return "/" + path.lstrip("/")


def match_of(prefix: str) -> str:
    """What a path starts with when it lies under `prefix` (as pause_match in SQL)."""
    return "/" if prefix == "/" else prefix + "/"


def covers(prefix: str | None, path: str) -> bool:
    return prefix is None or path.startswith(match_of(prefix))


def covered(pauses: Iterable[Pause], path: str) -> bool:
    return any(p.covers(path) for p in pauses)


def parse_until(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (2026-12-03T18:00, with an offset or "Z", or in the local time
    zone without one), which must lie after `now` (aware)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--until {text!r} is not an ISO 8601 time (e.g. 2026-12-03T18:00+01:00)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # the local time zone, as a person means it
    if when <= now:
        raise ValueError(f"--until {text!r} is not in the future")
    return when
