"""Named SQL: every query parses, is used by the store, and the migrations are in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mediad.queries import migrations, named_queries, parse_named

SOURCE = Path(__file__).resolve().parent.parent / "mediad"


def test_every_named_query_is_used_by_the_store() -> None:
    store_text = (SOURCE / "store.py").read_text()
    used = set(re.findall(r'"([a-z_]+)"', store_text))
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


def test_every_query_plans_against_the_migrated_schema(store: object, test_dsn: str) -> None:
    """EXPLAIN each statement with NULL parameters: catches typos and missing columns."""
    import psycopg

    from mediad.store import Store, compose

    assert isinstance(store, Store)
    with psycopg.connect(test_dsn, autocommit=True) as conn:
        for name, text in named_queries().items():
            if name in ("listen", "migration_lock", "record_migration"):
                continue
            statement = compose(text, store.schema).as_string(conn)
            params = {p: None for p in re.findall(r"%\((\w+)\)[sb]", statement)}
            with conn.transaction():
                conn.execute(psycopg.sql.SQL("EXPLAIN ") + psycopg.sql.SQL(statement), params)
                raise_rollback(conn)


def raise_rollback(conn: object) -> None:
    """Leave the EXPLAINed transaction without side effects."""
    import psycopg

    raise psycopg.Rollback()
