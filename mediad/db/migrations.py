"""The schema's version, and bringing it up to date (`sql/migrations`)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from mediad.db.connection import Database, compose
from mediad.errors import SchemaError
from mediad.queries import latest_version, migrations


def schema_version(db: Database) -> int:
    present = db.run("schema_exists", {"schema": db.schema})[0]["present"]
    if not present:
        return 0
    return int(db.run("schema_version")[0]["version"])


def check_schema(db: Database) -> int:
    """The schema's version, or SchemaError saying what to run."""
    version = schema_version(db)
    latest = latest_version()
    if version == 0:
        raise SchemaError(
            f'schema "{db.schema}" is not set up: run `mediad migrate` '
            "(or set database.auto_migrate = true)"
        )
    if version < latest:
        raise SchemaError(
            f'schema "{db.schema}" is at version {version}, this mediad needs {latest}: '
            "run `mediad migrate`"
        )
    if version > latest:
        raise _newer(db.schema, version)
    return version


def migrate(db: Database) -> list[str]:
    """Apply missing migrations under an advisory lock; idempotent and safe to race."""
    applied: list[str] = []
    with db.connection() as conn, conn.transaction():
        conn.execute(db.query("migration_lock"), {"schema": db.schema})
        current = _version_on(db, conn)
        if current > latest_version():
            raise _newer(db.schema, current)
        for migration in migrations():
            if migration.version <= current:
                continue
            conn.execute(compose(migration.text, db.schema))
            conn.execute(db.query("record_migration"), {"version": migration.version})
            applied.append(migration.name)
    return applied


def _version_on(db: Database, conn: psycopg.Connection[Any]) -> int:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(db.query("schema_exists"), {"schema": db.schema})
        row = cur.fetchone()
        if not row or not row["present"]:
            return 0
        cur.execute(db.query("schema_version"))
        row = cur.fetchone()
        return int(row["version"]) if row else 0


def _newer(schema: str, version: int) -> SchemaError:
    return SchemaError(
        f'schema "{schema}" is at version {version}, newer than this mediad knows '
        f"({latest_version()}): upgrade mediad"
    )
