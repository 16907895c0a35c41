"""Attached application tables: mediad works from a table it did not design (docs/attach.md).

The mapping and the statements (pure), then the trigger, backfill, write-back and detach
against a real PostgreSQL, then a running daemon filling a 5,000-row application table,
and the application's writers never waiting on mediad for more than 100 ms.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mediad import attach
from mediad.attach import Column
from mediad.config import load
from mediad.db import table_sql
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.errors import ConfigError, UsageError
from tests.integration.test_store import extracted, records
from tests.support.processes import Daemon, counts, mediad, wait_until

SQL = Callable[..., list[tuple[Any, ...]]]
# `mediad attach TABLE` arguments for make_table's columns, and the summary columns' prefix.
MAPPING = ("--id", "id", "--path", "path", "--metadata", "metadata")
MEDIA_SUMMARY = ("--summary-prefix", "media_")

APP_TABLE = """CREATE TABLE {t} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path text NOT NULL,
    title text,
    metadata jsonb,
    media_duration_s double precision,
    media_width integer
)"""


# --- pure: the mapping and the statements ----------------------------------------------

TABLE = {
    "qualified": "public.media_files",
    "kind": "r",
    "schema_name": "public",
    "table_name": "media_files",
    "oid": 1,
}
COLUMNS = [
    Column("id", "bigint", "N", True),
    Column("path", "text", "S"),
    Column("metadata", "jsonb", "U"),
    Column("media_duration_s", "double precision", "N"),
    Column("media_width", "integer", "N"),
    Column("media_container", "jsonb", "U"),
]


def test_plan_records_the_summary_columns_that_exist_and_fit() -> None:
    plan = attach.plan(
        TABLE,
        COLUMNS,
        id_column="id",
        path_column="path",
        metadata_column="metadata",
        summary_prefix="media_",
    )
    assert plan.source.summary_columns == ("media_duration_s", "media_width")
    assert plan.ignored == ("media_container (jsonb cannot hold container)",)
    assert plan.source.summary_keys() == [
        ("media_duration_s", "duration_s"),
        ("media_width", "width"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id_column": "key", "path_column": "file"}, "--id key, --path file"),
        ({"id_column": "id", "path_column": "path", "metadata_column": "meta"}, "--metadata meta"),
        ({"id_column": "path", "path_column": "path"}, "unique index"),
        ({"id_column": "id", "path_column": "media_width"}, "must be a text column"),
        (
            {"id_column": "id", "path_column": "path", "metadata_column": "media_width"},
            "must be jsonb, json or text",
        ),
    ],
)
def test_plan_names_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        attach.plan(TABLE, COLUMNS, **kwargs)


def test_statements_quote_every_name() -> None:
    odd = attach.Source(
        '"My App".files', "My App", "files", "Id", "bigint", "Pa$mediad$th", "Meta", "jsonb", id=7
    )
    function = table_sql.create_function("mediad", odd).as_string(None)
    assert 'NEW."Pa$mediad$th"' in function and "$mediad1$" in function
    assert '"mediad"."source_7_sync"' in function
    triggers = [s.as_string(None) for s in table_sql.create_triggers("mediad", odd)]
    assert 'ON "My App"."files"' in triggers[0]
    assert 'UPDATE OF "Id", "Pa$mediad$th"' in triggers[1]
    assert table_sql.write_back(attach.Source("a.b", "a", "b", "id", "bigint", "p")) is None
    assert len(table_sql.trigger_name("s" * 63, odd)) <= 63


def test_attach_config_is_validated_naming_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[attach."public.media_files"]\nid = "id"\npath = "path"\n'
        'metadata = "metadata"\nsummary_prefix = "media_"\npath_prefix = "/srv/media"\n'
    )
    config = load(str(good), environ={})
    assert config.attach[0].path_prefix == "/srv/media"
    assert [(a.table, a.id, a.path, a.metadata, a.skip_existing) for a in config.attach] == [
        ("public.media_files", "id", "path", "metadata", True)
    ]
    for text, key in [
        ('[attach."t"]\npath = "p"\n', 'attach."t".id'),
        ('[attach."t"]\nid = "i"\npath = "p"\nskip_existing = "no"\n', 'attach."t".skip_existing'),
        ('[attach."t"]\nid = "i"\npath = "p"\ncolour = 1\n', 'attach."t".colour'),
        ("[attach]\nt = 3\n", 'attach."t"'),
        ('[attach."t"]\nid = "i"\npath = "p"\npath_prefix = "lib"\n', 'attach."t".path_prefix'),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as info:
            load(str(bad), environ={})
        assert info.value.key == key


# --- against PostgreSQL --------------------------------------------------------------------


def make_table(
    sql: SQL, app_schema: str, rows: list[tuple[str, str | None]], name: str = "media_files"
) -> str:
    table = f'"{app_schema}".{name}'
    sql(APP_TABLE.format(t=table))
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        sql(
            f"INSERT INTO {table} (path, title, metadata) "
            "SELECT p, 'title ' || p, m::jsonb FROM unnest(%s::text[], %s::text[]) AS r(p, m)",
            [[p for p, _ in chunk], [m for _, m in chunk]],
        )
    return f"{app_schema}.{name}"


def dump(sql: SQL, table: str) -> list[tuple[Any, ...]]:
    """The application's own columns (not the ones mediad writes), in id order."""
    schema_name, name = table.split(".")
    return sql(f'SELECT id, path, title FROM "{schema_name}".{name} ORDER BY id')


def triggers_on(sql: SQL, table: str) -> list[str]:
    schema_name, name = table.split(".")
    return [
        r[0]
        for r in sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal "
            "ORDER BY tgname",
            [f'"{schema_name}".{name}'],
        )
    ]


def files(sql: SQL, schema: str) -> dict[str, tuple[Any, ...]]:
    """source_row -> (state, source_path, attempts)"""
    return {
        r[0]: r[1:]
        for r in sql(
            f'SELECT source_row, state, source_path, attempts FROM "{schema}".files '
            "WHERE source_id IS NOT NULL"
        )
    }


def test_attach_queues_follows_inserts_updates_deletes_and_detach_restores(
    mediad_env: dict[str, str], sql: SQL, schema: str, app_schema: str, queue: Queue
) -> None:
    rows: list[tuple[str, str | None]] = [(f"/m/{i}.mp4", None) for i in range(30)]
    rows += [(f"/m/old{i}.mp4", '{"old": true}') for i in range(5)]
    rows += [("/m/0.mp4", None)]  # the same file twice in the application's table
    table = make_table(sql, app_schema, rows)
    before = dump(sql, table)

    shown = mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, "--dry-run", env=mediad_env)
    assert shown.returncode == 0, shown.stderr
    for fragment in (
        "CREATE FUNCTION",
        "CREATE TRIGGER",
        'UPDATE OF "id", "path"',
        "INSERT INTO",
        "WITH batch AS",
        "lock_timeout",
    ):
        assert fragment in shown.stdout, fragment
    assert triggers_on(sql, table) == [] and files(sql, schema) == {}
    assert sql(f'SELECT count(*) FROM "{schema}".sources') == [(0,)]

    result = mediad(
        "attach", table, *MAPPING, *MEDIA_SUMMARY, "--backfill-batch", "7", env=mediad_env
    )
    assert result.returncode == 0, result.stderr
    assert "36 rows read, 31 queued" in result.stdout
    assert len(triggers_on(sql, table)) == 2
    queued = files(sql, schema)
    assert len(queued) == 31 and {s for s, _, _ in queued.values()} == {"pending"}
    assert sql(f'SELECT summary_columns FROM "{schema}".sources') == [
        (["media_duration_s", "media_width"],)
    ]
    # Attaching again with the same mapping is a no-op; with another one it is refused.
    again = mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, env=mediad_env)
    assert again.returncode == 0 and "already attached" in again.stdout
    other = mediad("attach", table, "--id", "id", "--path", "title", env=mediad_env)
    assert other.returncode == 2 and "detach" in other.stderr
    # `show` still answers one row per path.
    shown_rows = [
        json.loads(line)
        for line in mediad("show", "--json", "/m/0.mp4", env=mediad_env).stdout.splitlines()
    ]
    assert len(shown_rows) == 1 and shown_rows[0]["state"] == "pending"

    # Insert (with and without metadata), path change, delete.
    [(new_id,)] = sql(
        f'INSERT INTO "{app_schema}".media_files (path) VALUES (%s) RETURNING id', ["/m/new.mp4"]
    )
    sql(
        f'INSERT INTO "{app_schema}".media_files (path, metadata) VALUES (%s, %s)',
        ["/m/has.mp4", '{"x": 1}'],
    )
    assert files(sql, schema)[str(new_id)][:2] == ("pending", "/m/new.mp4")
    assert len(files(sql, schema)) == 32

    # Complete two rows through the queue (fenced write-back), one of them twice-claimed.
    jobs = {j.path: j for j in queue.claim(100, 30)}
    first, second = jobs["/m/1.mp4"], jobs["/m/2.mp4"]
    sql(f'UPDATE "{schema}".files SET lease_token = -1 WHERE id = %s', [second.id])  # fenced
    result_w = queue.complete(
        records([(first, extracted("/m/1.mp4")), (second, extracted("/m/2.mp4"))])
    )
    assert result_w.written == 1 and result_w.stale == 1
    written = sql(
        f"SELECT path, metadata, media_duration_s, media_width FROM "
        f'"{app_schema}".media_files WHERE path IN (%s, %s) ORDER BY path',
        ["/m/1.mp4", "/m/2.mp4"],
    )
    assert written[0][0] == "/m/1.mp4" and written[0][1]["media"]["@ref"] == "/m/1.mp4"
    assert written[0][2:] == (2.0, 320)
    assert written[1][1:] == (None, None, None)  # the fence kept it out

    # A path change re-queues the row (even a running one: its late result is fenced off).
    row1 = sql(f'SELECT id FROM "{app_schema}".media_files WHERE path = %s', ["/m/1.mp4"])[0][0]
    sql(f'UPDATE "{app_schema}".media_files SET path = %s WHERE id = %s', ["/m/1b.mp4", row1])
    assert files(sql, schema)[str(row1)] == ("pending", "/m/1b.mp4", 0)
    sql(f"UPDATE \"{app_schema}\".media_files SET title = 'renamed' WHERE id = %s", [row1])
    assert files(sql, schema)[str(row1)] == ("pending", "/m/1b.mp4", 0)
    sql(f'DELETE FROM "{app_schema}".media_files WHERE id = %s', [new_id])
    assert str(new_id) not in files(sql, schema)

    # Detach: no trigger, no source, no queued rows; the application's rows as they were,
    # plus the metadata written.
    dry = mediad("detach", table, "--dry-run", env=mediad_env)
    assert dry.returncode == 0 and "DROP TRIGGER" in dry.stdout
    assert len(triggers_on(sql, table)) == 2
    gone = mediad("detach", table, env=mediad_env)
    assert gone.returncode == 0, gone.stderr
    assert triggers_on(sql, table) == [] and files(sql, schema) == {}
    assert sql(f'SELECT count(*) FROM "{schema}".sources') == [(0,)]
    assert sql(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = to_regnamespace(%s) "
        "AND proname LIKE 'source%%'",
        [f'"{schema}"'],
    ) == [(0,)]
    after = dump(sql, table)
    expected = [r if r[0] != row1 else (row1, "/m/1b.mp4", "renamed") for r in before]
    expected.append(next(r for r in after if r[1] == "/m/has.mp4"))
    assert after == expected
    assert sql(
        f'SELECT metadata IS NOT NULL FROM "{app_schema}".media_files WHERE id = %s', [row1]
    ) == [(True,)]
    assert mediad("detach", table, env=mediad_env).returncode == 2


def test_attach_refuses_what_it_cannot_use_exit_2(
    mediad_env: dict[str, str], sql: SQL, app_schema: str
) -> None:
    table = make_table(sql, app_schema, [("/m/a.mp4", None)])
    missing = mediad("attach", f"{app_schema}.nope", "--id", "id", "--path", "path", env=mediad_env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    columns = mediad(
        "attach", table, "--id", "id", "--path", "file", "--metadata", "meta", env=mediad_env
    )
    assert columns.returncode == 2
    assert "--path file, --metadata meta" in columns.stderr


def test_two_tables_and_extract_all_covers_attached_rows(
    mediad_env: dict[str, str], sql: SQL, schema: str, app_schema: str
) -> None:
    one = make_table(sql, app_schema, [("/m/a.mp4", None), ("/m/b.mp4", '{"k": 1}')])
    two = make_table(sql, app_schema, [("/m/a.mp4", None)], name="other_files")
    for table in (one, two):
        result = mediad("attach", table, *MAPPING, env=mediad_env)
        assert result.returncode == 0, result.stderr
    assert sql(f'SELECT count(*) FROM "{schema}".files') == [(2,)]
    assert len(triggers_on(sql, one)) == 2 and len(triggers_on(sql, two)) == 2
    # extract --all: the row skipped for its metadata is queued too (MediaInfo fails these
    # missing files, which is enough here: they were claimed).
    result = mediad("extract", "--all", "--json", env=mediad_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["processed"] == 3
    assert mediad("detach", one, env=mediad_env).returncode == 0
    assert sql(f'SELECT count(*) FROM "{schema}".files') == [(1,)]
    assert len(triggers_on(sql, two)) == 2


def created_names(sql: SQL, schema: str, table: str) -> tuple[list[str], list[str]]:
    """The triggers on the table, and mediad's trigger functions."""
    functions = sql(
        "SELECT proname FROM pg_proc WHERE pronamespace = to_regnamespace(%s) "
        "AND proname LIKE 'source%%' ORDER BY proname",
        [f'"{schema}"'],
    )
    return triggers_on(sql, table), [r[0] for r in functions]


def database_state(sql: SQL, schema: str, table: str) -> tuple[Any, ...]:
    return (
        sql(f'SELECT * FROM "{schema}".sources ORDER BY id'),
        sql(f'SELECT last_value, is_called FROM "{schema}".sources_id_seq'),
        sql(f'SELECT count(*) FROM "{schema}".files'),
        created_names(sql, schema, table),
    )


def test_attach_dry_run_prints_the_names_the_real_attach_creates_and_changes_nothing(
    mediad_env: dict[str, str], sql: SQL, schema: str, app_schema: str, db: Database
) -> None:
    table = make_table(sql, app_schema, [("/m/a.mp4", None), ("/m/b.mp4", None)])
    # Twice: on a fresh sequence, and once an attach and a detach have used a value.
    for _ in range(2):
        before = database_state(sql, schema, table)
        dry = mediad("attach", table, *MAPPING, "--dry-run", env=mediad_env)
        assert dry.returncode == 0, dry.stderr
        assert database_state(sql, schema, table) == before
        shown_triggers = sorted(re.findall(r'CREATE TRIGGER "([^"]+)"', dry.stdout))
        shown_functions = re.findall(r'CREATE FUNCTION "[^"]+"\."([^"]+)"', dry.stdout)
        assert len(shown_triggers) == 2 and len(shown_functions) == 1

        real = mediad("attach", table, *MAPPING, env=mediad_env)
        assert real.returncode == 0, real.stderr
        assert created_names(sql, schema, table) == (shown_triggers, shown_functions)
        assert mediad("detach", table, env=mediad_env).returncode == 0
    assert shown_functions == ["source_2_sync"]


ID_TABLE = """CREATE TABLE {t} (
    id bigint PRIMARY KEY DEFERRABLE INITIALLY DEFERRED,
    path text,
    metadata jsonb
)"""


def test_an_id_change_moves_the_queue_row_and_extract_writes_back_under_the_new_id(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a", "b", "c", "d", "e", "f"):
        os.link(small_mp4, lib / f"{name}.mp4")
    t = f'"{app_schema}".media_files'
    sql(ID_TABLE.format(t=t))
    sql(
        f"INSERT INTO {t} (id, path) VALUES (1, %s), (2, %s), (3, %s), (4, %s), (5, %s)",
        [str(lib / f"{n}.mp4") for n in "abcde"],
    )
    result = mediad("attach", f"{app_schema}.media_files", *MAPPING, env=mediad_env)
    assert result.returncode == 0, result.stderr

    # The id alone: the queue row moves, still pending and untouched otherwise.
    [(queue_id,)] = sql(f'SELECT id FROM "{schema}".files WHERE source_row = %s', ["1"])
    sql(f"UPDATE {t} SET id = 101 WHERE id = 1")
    # The id and the path: moved and queued for the new file.
    sql(f"UPDATE {t} SET id = 102, path = %s WHERE id = 2", [str(lib / "f.mp4")])
    # Two rows swap ids in one statement: each id's queue row names that row's file.
    sql(f"UPDATE {t} SET id = CASE id WHEN 3 THEN 4 ELSE 3 END WHERE id IN (3, 4)")
    queued = files(sql, schema)
    assert sql(f'SELECT source_row FROM "{schema}".files WHERE id = %s', [queue_id]) == [("101",)]
    assert queued == {
        "101": ("pending", str(lib / "a.mp4"), 0),
        "102": ("pending", str(lib / "f.mp4"), 0),
        "3": ("pending", str(lib / "d.mp4"), 0),
        "4": ("pending", str(lib / "c.mp4"), 0),
        "5": ("pending", str(lib / "e.mp4"), 0),
    }

    extracted_run = mediad("extract", "--json", env=mediad_env)
    assert extracted_run.returncode == 0, extracted_run.stderr
    assert json.loads(extracted_run.stdout.splitlines()[-1])["done"] == 5
    written = sql(f"SELECT id, path, metadata->'media'->>'@ref' FROM {t} ORDER BY id")
    assert [(i, ref) for i, _, ref in written] == [(i, p) for i, p, _ in written]
    assert [i for i, _, _ in written] == [3, 4, 5, 101, 102]

    # A done row renumbered stays done (nothing to extract again) and nothing is orphaned.
    sql(f"UPDATE {t} SET id = 201 WHERE id = 101")
    assert files(sql, schema)["201"][0] == "done" and "101" not in files(sql, schema)
    again = mediad("extract", "--json", env=mediad_env)
    assert json.loads(again.stdout.splitlines()[-1])["processed"] == 0
    assert set(files(sql, schema)) == {str(r[0]) for r in sql(f"SELECT id FROM {t}")}


def make_trigger_as_before_ids_were_followed(sql: SQL, schema: str, table: str) -> None:
    """What an older mediad installed: the update trigger fires on the path alone, and the
    function has no step that moves the queue row to a new id."""
    [(source_id,)] = sql(f'SELECT id FROM "{schema}".sources')
    function = f'"{schema}".source_{source_id}_sync'
    [(body,)] = sql(f"SELECT prosrc FROM pg_proc WHERE oid = '{function}'::regproc")
    older = re.sub(
        r"\n        IF OLD\.\"id\" IS DISTINCT.*?\n        END IF;", "", body, flags=re.S
    )
    assert older != body
    trigger = sql(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE '%%_path'",
        [table],
    )[0][0]
    sql(f'DROP TRIGGER "{trigger}" ON {table}')
    sql(
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
        f"SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $older${older}$older$"
    )
    sql(
        f'CREATE TRIGGER "{trigger}" AFTER UPDATE OF path ON {table} FOR EACH ROW '
        f"WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION {function}()"
    )


def test_attach_again_replaces_a_trigger_an_older_mediad_installed(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    t = f'"{app_schema}".media_files'
    sql(ID_TABLE.format(t=t))
    sql(f"INSERT INTO {t} (id, path) VALUES (1, '/m/a.mkv'), (2, '/m/b.mkv')")
    assert mediad("attach", f"{app_schema}.media_files", *MAPPING, env=mediad_env).returncode == 0
    make_trigger_as_before_ids_were_followed(sql, schema, t)
    sql(f"UPDATE {t} SET id = 11 WHERE id = 1")
    assert set(files(sql, schema)) == {"1", "2"}  # the older trigger orphans the queue row

    dry = mediad("attach", f"{app_schema}.media_files", *MAPPING, "--dry-run", env=mediad_env)
    assert "would be replaced" in dry.stdout, dry.stdout
    again = mediad("attach", f"{app_schema}.media_files", *MAPPING, env=mediad_env)
    assert again.returncode == 0, again.stderr
    assert "from an older mediad, was replaced" in again.stdout
    sql(f"UPDATE {t} SET id = 12 WHERE id = 2")
    assert "12" in files(sql, schema) and "2" not in files(sql, schema)
    assert sql(
        f"SELECT count(*) FROM pg_trigger WHERE tgrelid = '{t}'::regclass AND NOT tgisinternal"
    ) == [(2,)]

    third = mediad("attach", f"{app_schema}.media_files", *MAPPING, env=mediad_env)
    assert third.returncode == 0 and "replaced" not in third.stdout


def test_attach_again_writes_the_columns_added_since(
    mediad_env: dict[str, str], sql: SQL, schema: str, app_schema: str
) -> None:
    """The opt-in to fields added to mediad later (the camera fields): add the prefixed
    columns, attach again with the same mapping."""
    table = make_table(sql, app_schema, [("/m/a.jpg", None)])
    assert mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, env=mediad_env).returncode == 0
    sql(
        f'ALTER TABLE "{app_schema}".media_files ADD media_taken_at timestamptz, '
        "ADD media_gps_lat double precision, ADD media_mirrored text"
    )

    dry = mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, "--dry-run", env=mediad_env)
    assert dry.returncode == 0, dry.stderr
    assert "summary columns would now be: media_duration_s, media_width, media_taken_at" in (
        dry.stdout
    )
    assert sql(f'SELECT summary_columns FROM "{schema}".sources') == [
        (["media_duration_s", "media_width"],)
    ]
    again = mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, env=mediad_env)
    assert again.returncode == 0, again.stderr
    columns = "media_duration_s, media_width, media_taken_at, media_gps_lat, media_mirrored"
    assert f"summary columns are now: {columns}" in again.stdout
    assert sql(f'SELECT summary_columns FROM "{schema}".sources') == [(columns.split(", "),)]
    assert set(files(sql, schema)) == {"1"}  # nothing queued again


def test_path_prefix_joins_relative_paths_in_trigger_and_backfill(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.mp4", "c.mp4", "d.mp4"):
        os.link(small_mp4, lib / name)
    elsewhere = tmp_path / "elsewhere.mp4"
    os.link(small_mp4, elsewhere)
    table = make_table(
        sql, app_schema, [("a.mp4", None), ("sub/b.mp4", None), (str(elsewhere), None)]
    )
    t = f'"{app_schema}".media_files'

    # Without a prefix, a relative path fails bad_path, and the message says what to do.
    assert mediad("attach", table, *MAPPING, env=mediad_env).returncode == 0
    mediad("extract", env=mediad_env)
    failed = sql(
        f'SELECT source_path, error_class, error FROM "{schema}".files WHERE state = %s ORDER BY 1',
        ["failed"],
    )
    assert [(p, c) for p, c, _ in failed] == [("a.mp4", "bad_path"), ("sub/b.mp4", "bad_path")]
    assert all("--path-prefix" in e for _, _, e in failed)
    # Another prefix is another mapping.
    changed = mediad("attach", table, *MAPPING, "--path-prefix", str(lib), env=mediad_env)
    assert changed.returncode == 2 and "path_prefix=" in changed.stderr
    assert mediad("detach", table, env=mediad_env).returncode == 0
    sql(f"UPDATE {t} SET metadata = NULL")

    relative = mediad("attach", table, *MAPPING, "--path-prefix", "lib", env=mediad_env)
    assert relative.returncode == 2 and "--path-prefix" in relative.stderr
    result = mediad("attach", table, *MAPPING, "--path-prefix", f"{lib}/", env=mediad_env)
    assert result.returncode == 0, result.stderr
    assert sql(f'SELECT path_prefix FROM "{schema}".sources') == [(str(lib),)]
    same = mediad("attach", table, *MAPPING, "--path-prefix", str(lib), env=mediad_env)
    assert same.returncode == 0 and "already attached" in same.stdout
    # The trigger joins the prefix too: an insert, and a path changed to a relative one.
    sql(f"INSERT INTO {t} (path) VALUES ('c.mp4')")
    sql(f"UPDATE {t} SET path = 'd.mp4' WHERE path = %s", [str(elsewhere)])
    assert sorted(p for _, p, _ in files(sql, schema).values()) == [
        str(lib / n) for n in ("a.mp4", "c.mp4", "d.mp4", "sub/b.mp4")
    ]
    run = mediad("extract", "--json", env=mediad_env)
    assert json.loads(run.stdout.splitlines()[-1])["done"] == 4, run.stdout
    written = sql(f"SELECT path, metadata->'media'->>'@ref' FROM {t} ORDER BY path")
    assert written == [(n, str(lib / n)) for n in ("a.mp4", "c.mp4", "d.mp4", "sub/b.mp4")]

    # extract --all queues every row again, prefixed; detach removes them.
    everything = mediad("extract", "--all", "--json", env=mediad_env)
    assert json.loads(everything.stdout.splitlines()[-1])["done"] == 4, everything.stdout
    assert mediad("detach", table, env=mediad_env).returncode == 0
    assert files(sql, schema) == {} and triggers_on(sql, table) == []


# --- a running daemon ----------------------------------------------------------------------


def app_rows(small_mp4: Path, directory: Path, n: int) -> list[tuple[str, str | None]]:
    """n rows on hard links of one real MP4; every 50th already has metadata."""
    directory.mkdir()
    rows: list[tuple[str, str | None]] = []
    for i in range(n):
        path = directory / f"f{i:05d}.mp4"
        os.link(small_mp4, path)
        rows.append((str(path), '{"kept": true}' if i % 50 == 0 else None))
    return rows


@pytest.mark.slow
def test_a_daemon_fills_an_attached_5000_row_table(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    rows = app_rows(small_mp4, tmp_path / "lib", 5000)
    table = make_table(sql, app_schema, rows)
    t = f'"{app_schema}".media_files'
    before = dump(sql, table)
    result = mediad("attach", table, *MAPPING, *MEDIA_SUMMARY, env=mediad_env)
    assert result.returncode == 0, result.stderr
    assert "5000 rows read, 4900 queued" in result.stdout

    daemon = daemons()
    daemon.wait_started()
    wait_until(lambda: counts(sql, schema)["done"] == 4900, 600, "4,900 rows to finish")
    assert sql(
        f"SELECT count(*) FROM {t} WHERE metadata->'media'->>'@ref' = path "
        "AND media_duration_s > 1.9 AND media_width = 320"
    ) == [(4900,)]
    assert sql(f"SELECT count(*) FROM {t} WHERE metadata = '{{\"kept\": true}}'") == [(100,)]

    # An insert afterwards is picked up and filled within a bounded wait.
    extra = tmp_path / "lib" / "extra.mp4"
    os.link(small_mp4, extra)
    started = time.monotonic()
    [(new_id,)] = sql(f"INSERT INTO {t} (path) VALUES (%s) RETURNING id", [str(extra)])
    wait_until(
        lambda: sql(f"SELECT metadata IS NOT NULL FROM {t} WHERE id = %s", [new_id])[0][0],
        10,
        "the new row's metadata",
    )
    assert time.monotonic() - started < 5

    # A path change: extracted again, the document names the new path.
    moved = tmp_path / "lib" / "moved.mp4"
    os.link(small_mp4, moved)
    [(finished_before,)] = sql(
        f'SELECT finished_at FROM "{schema}".files WHERE source_row = %s', [str(new_id)]
    )
    sql(f"UPDATE {t} SET path = %s WHERE id = %s", [str(moved), new_id])
    wait_until(
        lambda: (
            sql(f"SELECT metadata->'media'->>'@ref' FROM {t} WHERE id = %s", [new_id])[0][0]
            == str(moved)
        ),
        10,
        "re-extraction of the moved row",
    )
    [(state, finished_after, source_path)] = sql(
        f'SELECT state, finished_at, source_path FROM "{schema}".files WHERE source_row = %s',
        [str(new_id)],
    )
    assert (state, source_path) == ("done", str(moved)) and finished_after > finished_before

    # A delete removes the work for that row.
    sql(f"DELETE FROM {t} WHERE id = %s", [new_id])
    assert sql(f'SELECT count(*) FROM "{schema}".files WHERE source_row = %s', [str(new_id)]) == [
        (0,)
    ]
    assert daemon.stop() == 0

    detached = mediad("detach", table, env=mediad_env)
    assert detached.returncode == 0, detached.stderr
    assert dump(sql, table) == before and triggers_on(sql, table) == []


@pytest.mark.slow
def test_application_writers_never_wait_on_attach(
    tmp_path: Path,
    mediad_env: dict[str, str],
    sql: SQL,
    schema: str,
    app_schema: str,
    test_dsn: str,
) -> None:
    rows: list[tuple[str, str | None]] = [(f"/m/{i:05d}.mp4", None) for i in range(5000)]
    table = make_table(sql, app_schema, rows)
    t = f'"{app_schema}".media_files'
    stop = threading.Event()
    updates: list[float] = []  # when each update committed
    errors: list[BaseException] = []

    def application() -> None:
        try:
            with psycopg.connect(test_dsn, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '100ms'")
                i = 0
                while not stop.is_set():
                    i += 1
                    conn.execute(
                        f"UPDATE {t} SET title = %s WHERE id = %s", [f"t{i}", i % 5000 + 1]
                    )
                    updates.append(time.monotonic())
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    writer = threading.Thread(target=application)
    writer.start()
    try:
        wait_until(lambda: len(updates) > 10, 10, "the application to be writing")
        started = time.monotonic()
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "mediad",
                "attach",
                table,
                *MAPPING,
                "--backfill-batch",
                "100",
            ],
            env=mediad_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        ended = time.monotonic()
    finally:
        stop.set()
        writer.join(timeout=10)
    assert process.returncode == 0, process.stderr
    assert "5000 rows read, 5000 queued" in process.stdout
    assert not errors, errors
    during = [u for u in updates if started <= u <= ended]
    assert len(during) >= 10, (len(during), ended - started)
    assert counts(sql, schema)["pending"] == 5000


@pytest.mark.slow
def test_run_applies_the_attach_config_and_refuses_a_changed_mapping(
    small_mp4: Path,
    tmp_path: Path,
    mediad_env: dict[str, str],
    daemons: Callable[..., Daemon],
    sql: SQL,
    schema: str,
    app_schema: str,
) -> None:
    table = make_table(sql, app_schema, app_rows(small_mp4, tmp_path / "lib", 20))
    config = tmp_path / "attach.toml"
    config.write_text(
        f'[attach."{table}"]\nid = "id"\npath = "path"\n'
        'metadata = "metadata"\nsummary_prefix = "media_"\n'
    )
    daemon = daemons("--config", str(config))
    daemon.wait_started()
    wait_until(
        lambda: (
            sql(f'SELECT count(*) FROM "{app_schema}".media_files WHERE media_width = 320')
            == [(19,)]
        ),
        60,
        "19 rows filled",
    )
    assert daemon.stop() == 0
    # Same mapping again: nothing to do. Another mapping: refused, saying what to run.
    again = daemons("--config", str(config))
    again.wait_started()
    assert again.stop() == 0
    assert sql(f'SELECT count(*) FROM "{schema}".sources') == [(1,)]
    # A path_prefix is part of the mapping: adding one is a change too.
    config.write_text(
        f'[attach."{table}"]\nid = "id"\npath = "path"\nmetadata = "metadata"\n'
        f'summary_prefix = "media_"\npath_prefix = "{tmp_path}"\n'
    )
    prefixed = mediad("run", "--config", str(config), env=mediad_env, timeout=60)
    assert prefixed.returncode == 2 and "another mapping" in prefixed.stderr
    config.write_text(f'[attach."{table}"]\nid = "id"\npath = "title"\n')
    refused = mediad("run", "--config", str(config), env=mediad_env, timeout=60)
    assert refused.returncode == 2
    assert f'attach."{table}"' in refused.stderr and "mediad detach" in refused.stderr
