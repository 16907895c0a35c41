"""Named SQL: every query parses, is used by the database layer, and the migrations are in
order."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from mediad.attach import Source
from mediad.db import table_sql
from mediad.db.connection import Database, compose
from mediad.queries import migrations, named_queries, parse_named

SOURCE = Path(__file__).resolve().parents[2] / "mediad"


def test_every_named_query_is_used_by_the_database_layer() -> None:
    layer_text = "".join(p.read_text() for p in (SOURCE / "db").glob("*.py"))
    used = set(re.findall(r'"([a-z_]+)"', layer_text))
    unused = set(named_queries()) - used
    assert not unused, f"queries nobody runs: {sorted(unused)}"


def test_queries_use_bound_parameters_and_quoted_schema_only() -> None:
    for name, text in named_queries().items():
        # The schema only ever enters as {schema} (a quoted identifier), never by name.
        assert '"mediad"' not in text and "mediad." not in text, name
        assert "{" not in text.replace("{schema}", "").replace("{channel}", ""), name


def test_duplicate_and_empty_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_named("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="empty"):
        parse_named("-- name: a\n\n-- name: b\nSELECT 2;\n")


def test_migrations_are_numbered_from_one() -> None:
    versions = [m.version for m in migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_every_query_plans_against_the_migrated_schema(db: Database, test_dsn: str) -> None:
    """EXPLAIN each statement with NULL parameters: catches typos and missing columns."""
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        for name, text in named_queries().items():
            if name in ("listen", "migration_lock", "record_migration"):
                continue
            statement = compose(text, db.schema).as_string(conn)
            params = {p: None for p in re.findall(r"%\((\w+)\)[sb]", statement)}
            with conn.transaction():
                conn.execute(psycopg.sql.SQL("EXPLAIN ") + psycopg.sql.SQL(statement), params)
                raise_rollback(conn)


def raise_rollback(conn: object) -> None:
    """Leave the EXPLAINed transaction without side effects."""
    raise psycopg.Rollback()


# Every statement that puts a row back to pending for a new request, and the trigger of
# attached tables: each assigns the columns from queued_again() (migration 0007).
REQUEUES = {"enqueue", "scan_upsert", "retry_failed", "requeue_finished", "reextract_batch"}


def test_queue_again_is_defined_once_and_used_by_every_requeue() -> None:
    trigger = table_sql.function_body("s", Source("a.b", "a", "b", "id", "bigint", "p", id=1))
    texts = {**named_queries(), "attach trigger": trigger.as_string(None)}
    using = {name for name, text in texts.items() if re.search(r'queued_again"?\(\)', text)}
    assert using == {*REQUEUES, "attach trigger"}
    # No copy of the clause is left: nothing else resets the attempts or enqueued_at.
    for name, text in texts.items():
        assert "attempts = 0" not in text and "enqueued_at = now()" not in text, name
    [defining] = [m for m in migrations() if "FUNCTION {schema}.queued_again()" in m.text]
    # enqueue(), the function applications call, goes through it from the same version on.
    assert "OR REPLACE FUNCTION {schema}.enqueue(" in defining.text
