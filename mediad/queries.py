"""Named SQL: `sql/queries.sql` split on `-- name: NAME` lines, and the migrations.

Pure text handling; the store turns these into composed statements for its schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def parse_named(text: str) -> dict[str, str]:
    """Split a file of named statements; a name may appear only once."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        statement = body.strip().rstrip(";").strip()
        if not statement:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = statement
    return queries


@cache
def named_queries() -> dict[str, str]:
    text = resources.files("mediad").joinpath("sql/queries.sql").read_text(encoding="utf-8")
    return parse_named(text)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this mediad, in version order, numbered without gaps."""
    folder = resources.files("mediad").joinpath("sql/migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(f"migration {migration.name}: expected version {expected}")
    return tuple(found)


def latest_version() -> int:
    return migrations()[-1].version
