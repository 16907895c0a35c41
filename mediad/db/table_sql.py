"""The statements run on an attached application table, composed with psycopg.sql,
every name a quoted identifier: trigger function and triggers, backfill batch, write-back.

Pure: nothing here talks to the database (mediad/db/tables.py and queue.py run them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString, cast

from psycopg import sql
from psycopg.adapt import PyFormat

from mediad.attach import SUMMARY_TYPES, Source
from mediad.extract.record import taken_at_instant


def full_path(source: Source, path: sql.Composable) -> sql.Composable:
    """The path mediad opens for the application's `path` (text): the prefix joined to a
    relative one. Without a prefix a relative path stays as it is, and fails bad_path."""
    if source.path_prefix is None:
        return path
    root = source.path_prefix.rstrip("/") + "/"
    return sql.SQL("CASE WHEN left({path}, 1) = '/' THEN {path} ELSE {root} || {path} END").format(
        path=path, root=sql.Literal(root)
    )


# --- names ----------------------------------------------------------------------------


def app_table(source: Source) -> sql.Identifier:
    return sql.Identifier(source.table_schema, source.table_relname)


def function_name(source: Source) -> str:
    return f"source_{source.id}_sync"


def trigger_name(schema: str, source: Source) -> str:
    """Unique per mediad schema and source, at most 63 bytes (PostgreSQL's limit)."""
    name = f"{schema}_source_{source.id}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(schema.encode()).hexdigest()[:10]
    return f"mediad_{digest}_source_{source.id}"


def _raw(text: str) -> sql.SQL:
    """SQL text that is not a literal in this file: a type name from format_type() (which
    quotes what needs quoting) or a template assembled here from literals."""
    return sql.SQL(cast(LiteralString, text))  # type: ignore[redundant-cast]


def _files(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, "files")


# --- statements -------------------------------------------------------------------------


def set_lock_timeout(milliseconds: int) -> sql.Composed:
    return sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{milliseconds}ms"))


# Queued again as every other re-queue is (migration 0007); the lease is cleared, so a
# running extraction of the old file is refused by the fence.
_REQUEUE = """(state, attempts, run_after, enqueued_at, error_class, error,
             lease_token, lease_owner, lease_expires_at) = (SELECT * FROM {queued_again}())"""


def create_function(schema: str, source: Source) -> sql.Composed:
    """The row trigger's function, in mediad's schema, owned by mediad.

    SECURITY DEFINER with a fixed search_path: the application's role needs no privilege
    on mediad's schema for its own writes to queue work."""
    body = function_body(schema, source)
    tag = _dollar_tag(body)
    return sql.SQL(
        "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql\n"
        "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {tag}{body}{tag}"
    ).format(function=sql.Identifier(schema, function_name(source)), tag=sql.SQL(tag), body=body)


def function_body(schema: str, source: Source) -> sql.Composed:
    """The trigger function's body: PostgreSQL keeps it as written (pg_proc.prosrc), so
    comparing the two tells a trigger an older mediad created.

    A changed id moves the queue row with its state (a running extraction is written back
    under the new id). The move is skipped when another row took the old id in the same
    statement (a swap or a chain of renumbers): each row then gets the queue row already
    at its new id, re-queued if it names another file, or a fresh one.
    """
    skip = ""
    if source.skip_existing and source.metadata_column:
        skip = """
    IF NEW.{meta} IS NOT NULL AND (TG_OP = 'INSERT' OR NOT (path_changed OR queued)) THEN
        RETURN NULL;  -- skip-existing: the application already has its metadata
    END IF;"""
    return _raw(
        """
DECLARE
    path_changed boolean := true;
    queued boolean := false;
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM {files} WHERE source_id = {sid} AND source_row = OLD.{id}::text;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        path_changed := OLD.{path} IS DISTINCT FROM NEW.{path};
        IF OLD.{id} IS DISTINCT FROM NEW.{id}
           AND NOT EXISTS (SELECT 1 FROM {table} AS a WHERE a.{id} = OLD.{id}) THEN
            UPDATE {files} AS f SET source_row = NEW.{id}::text
            WHERE f.source_id = {sid} AND f.source_row = OLD.{id}::text
              AND NOT EXISTS (SELECT 1 FROM {files} AS g
                              WHERE g.source_id = {sid} AND g.source_row = NEW.{id}::text);
            DELETE FROM {files} WHERE source_id = {sid} AND source_row = OLD.{id}::text;
        END IF;
        queued := EXISTS (SELECT 1 FROM {files} AS g
                          WHERE g.source_id = {sid} AND g.source_row = NEW.{id}::text);
    END IF;
    IF NEW.{path} IS NULL OR NEW.{path}::text = '' THEN
        DELETE FROM {files} WHERE source_id = {sid} AND source_row = NEW.{id}::text;
        RETURN NULL;
    END IF;"""
        + skip
        + """
    INSERT INTO {files} AS f (source_id, source_row, source_path)
    VALUES ({sid}, NEW.{id}::text, {full})
    ON CONFLICT (source_id, source_row) WHERE source_id IS NOT NULL DO UPDATE
        SET source_path = EXCLUDED.source_path,
            """
        + _REQUEUE
        + """
        WHERE path_changed OR f.source_path IS DISTINCT FROM EXCLUDED.source_path;
    RETURN NULL;
END
"""
    ).format(
        files=_files(schema),
        queued_again=sql.Identifier(schema, "queued_again"),
        table=app_table(source),
        sid=sql.Literal(source.id),
        id=sql.Identifier(source.id_column),
        path=sql.Identifier(source.path_column),
        full=full_path(source, sql.SQL("NEW.{}::text").format(sql.Identifier(source.path_column))),
        meta=sql.Identifier(source.metadata_column or "-"),
    )


def _dollar_tag(body: sql.Composable) -> str:
    """A dollar-quote tag that the body (which holds user identifiers) cannot close."""
    text = body.as_string(None)
    tag, n = "$mediad$", 0
    while tag in text:
        n += 1
        tag = f"$mediad{n}$"
    return tag


def create_triggers(schema: str, source: Source) -> list[sql.Composed]:
    """Two triggers: a WHEN clause may not mention OLD on INSERT nor NEW on DELETE."""

    def one(suffix: str, events: sql.Composable, when: sql.Composable) -> sql.Composed:
        return sql.SQL(
            "CREATE TRIGGER {trigger}\nAFTER {events} ON {table}\nFOR EACH ROW{when}\n"
            "EXECUTE FUNCTION {function}()"
        ).format(
            trigger=sql.Identifier(trigger_name(schema, source) + suffix),
            events=events,
            table=app_table(source),
            when=when,
            function=sql.Identifier(schema, function_name(source)),
        )

    path, ident = sql.Identifier(source.path_column), sql.Identifier(source.id_column)
    return [
        one("", sql.SQL("INSERT OR DELETE"), sql.SQL("")),
        # Named _path since it first followed the path alone; detach drops it by that name.
        one(
            "_path",
            sql.SQL("UPDATE OF {id}, {path}").format(id=ident, path=path),
            sql.SQL(
                "\nWHEN (OLD.{id} IS DISTINCT FROM NEW.{id}\n"
                "      OR OLD.{path} IS DISTINCT FROM NEW.{path})"
            ).format(id=ident, path=path),
        ),
    ]


def trigger_names(schema: str, source: Source) -> list[str]:
    base = trigger_name(schema, source)
    return [base, base + "_path"]


def drop_triggers(schema: str, source: Source) -> list[sql.Composed]:
    return [
        sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table}").format(
            trigger=sql.Identifier(name), table=app_table(source)
        )
        for name in trigger_names(schema, source)
    ]


def drop_function(schema: str, source: Source) -> sql.Composed:
    return sql.SQL("DROP FUNCTION IF EXISTS {function}()").format(
        function=sql.Identifier(schema, function_name(source))
    )


def backfill(schema: str, source: Source, first: bool, capped: bool = False) -> sql.Composed:
    """One batch: the next `limit` rows by id (keyset), queued unless already queued.

    Only reads the application's table (ACCESS SHARE, no row locks). Parameters: after
    (the last id of the previous batch, as text; absent on the first), limit,
    skip_existing. Returns seen, queued and last (the batch's last id, as text).
    `capped`: the batch holds only rows that will be queued (so `limit` caps the rows
    queued, and `seen` counts those alone).
    """
    ident = sql.Identifier(source.id_column)
    after = (
        sql.SQL("")
        if first
        else sql.SQL("\n    WHERE a.{id} > %(after)s::text::{type}").format(
            id=ident, type=_raw(source.id_type)
        )
    )
    filled = (
        sql.SQL("a.{} IS NOT NULL").format(sql.Identifier(source.metadata_column))
        if source.metadata_column
        else sql.SQL("false")
    )
    if capped:
        after = _queueable_only(schema, source, after, filled, "WHERE" if first else "AND")
    return sql.SQL("""WITH batch AS (
    SELECT a.{id} AS id, a.{path}::text AS path, {filled} AS filled
    FROM {table} AS a{after}
    ORDER BY a.{id}
    LIMIT %(limit)s
), queued AS (
    INSERT INTO {files} (source_id, source_row, source_path)
    SELECT {sid}, b.id::text, {full} FROM batch AS b
    WHERE b.path IS NOT NULL AND b.path <> '' AND NOT (%(skip_existing)s AND b.filled)
    ON CONFLICT (source_id, source_row) WHERE source_id IS NOT NULL DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS seen, (SELECT count(*) FROM queued) AS queued,
       (SELECT b.id::text FROM batch AS b ORDER BY b.id DESC LIMIT 1) AS last""").format(
        id=ident,
        path=sql.Identifier(source.path_column),
        full=full_path(source, sql.SQL("b.path")),
        filled=filled,
        table=app_table(source),
        after=after,
        files=_files(schema),
        sid=sql.Literal(source.id),
    )


def _queueable_only(
    schema: str, source: Source, after: sql.Composable, filled: sql.Composable, joiner: str
) -> sql.Composed:
    """The batch's WHERE clause, narrowed to the rows its INSERT would queue: the same
    conditions, and not queued already (which ON CONFLICT would skip after the LIMIT)."""
    path = sql.SQL("a.{}").format(sql.Identifier(source.path_column))
    return sql.SQL(
        "{after}\n    {joiner} {path} IS NOT NULL AND {path}::text <> ''"
        "\n      AND NOT (%(skip_existing)s AND {filled})"
        "\n      AND NOT EXISTS (SELECT 1 FROM {files} AS q"
        "\n                      WHERE q.source_id = {sid} AND q.source_row = a.{id}::text)"
    ).format(
        after=after,
        joiner=sql.SQL(joiner),
        path=path,
        filled=filled,
        files=_files(schema),
        sid=sql.Literal(source.id),
        id=sql.Identifier(source.id_column),
    )


def write_back(source: Source) -> sql.Composed | None:
    """The UPDATE of the application's rows after a completion; None if nothing to write.

    Parameters: rows (source_row values), documents, and one array per summary key
    (write_back_params). Run in the same transaction as the fenced `complete`.
    """
    sets: list[sql.Composable] = []
    # Arrays in binary format, as in queries.sql: no per-element escaping in Python.
    arrays: list[sql.Composable] = [sql.SQL("%(rows)b::text[]")]
    names: list[sql.Composable] = [sql.Identifier("source_row")]
    if source.metadata_column:
        sets.append(
            sql.SQL("{} = r.document::{}").format(
                sql.Identifier(source.metadata_column), _raw(source.metadata_type or "text")
            )
        )
        arrays.append(sql.SQL("%(documents)b::text[]"))
        names.append(sql.Identifier("document"))
    for column, key in source.summary_keys():
        time_type = source.time_column(column) if key == "taken_at" else None
        value = sql.SQL("r.{}").format(sql.Identifier(key))
        if time_type is not None:
            # Text has no assignment cast to a date/time type: cast to the column's own.
            value = sql.SQL("{}::{}").format(value, _raw(time_type))
        sets.append(sql.SQL("{} = {}").format(sql.Identifier(column), value))
        arrays.append(
            sql.SQL("{}::{}[]").format(
                sql.Placeholder(key, PyFormat.BINARY), _raw(SUMMARY_TYPES[key])
            )
        )
        names.append(sql.Identifier(key))
    if not sets:
        return None
    return sql.SQL(
        "UPDATE {table} AS a\nSET {sets}\nFROM unnest({arrays}) AS r({names})\n"
        "WHERE a.{id} = r.source_row::{type}"
    ).format(
        table=app_table(source),
        sets=sql.SQL(",\n    ").join(sets),
        arrays=sql.SQL(", ").join(arrays),
        names=sql.SQL(", ").join(names),
        id=sql.Identifier(source.id_column),
        type=_raw(source.id_type),
    )


def write_back_params(
    source: Source, rows: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Parameters of write_back for (source_row, document, summary) triples."""
    params: dict[str, Any] = {"rows": [row for row, _, _ in rows]}
    if source.metadata_column:
        params["documents"] = [document for _, document, _ in rows]
    for column, key in source.summary_keys():
        values = [summary.get(key) for _, _, summary in rows]
        if key == "taken_at" and source.time_column(column) is not None:
            # The instant, UTC when the file states no zone: a timestamptz column holds
            # it, and a timestamp or date column reads the wall clock and drops the zone.
            values = [None if v is None else taken_at_instant(v) for v in values]
        params[key] = values
    return params
