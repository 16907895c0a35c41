"""Attached application tables: the mapping (docs/attach.md).

Pure: validates a mapping against catalog rows the database layer read. The statements
run on an attached table are composed in mediad/db/table_sql.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mediad.errors import UsageError
from mediad.extract.summary import COLUMNS, PHOTO_COLUMNS
from mediad.paths import UNSTORABLE_MESSAGE, escaped, is_storable

# mediad's type for each summary key (the array types the write-back binds), and the
# PostgreSQL type categories (pg_type.typcategory) an application column may have to
# receive it by assignment: numbers into any numeric type, anything into a string type.
SUMMARY_TYPES: dict[str, str] = {
    "container": "text",
    "duration_s": "float8",
    "bit_rate": "int8",
    "width": "int4",
    "height": "int4",
    "frame_rate": "float8",
    "video_codec": "text",
    "audio_codec": "text",
    "audio_channels": "int4",
    "sample_rate": "int4",
    "video_tracks": "int4",
    "audio_tracks": "int4",
    "text_tracks": "int4",
    "truncated": "bool",
    # Camera metadata (docs/attach.md). taken_at is bound as text, the summary's wall-clock
    # form, and cast to the column's own type when that is a date/time type (TIME_TYPES).
    "taken_at": "text",
    "taken_at_offset_min": "int4",
    "taken_at_source": "text",
    "gps_lat": "float8",
    "gps_lon": "float8",
    "gps_alt_m": "float8",
    "orientation": "int4",
    "rotation_deg": "int4",
    "mirrored": "bool",
    "camera_make": "text",
    "camera_model": "text",
    "lens": "text",
    "frame_count": "int4",
}
# The summary keys an attached table may receive, in the order they are looked for: the
# HDR keys and the versions stay in mediad.files alone.
MAPPED_KEYS = (*COLUMNS, *PHOTO_COLUMNS)
# Besides a text type, what taken_at may go into (format_type() names, without a
# precision): the instant for timestamptz, the wall-clock time or date as the file
# states it for the two others.
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
_CATEGORIES = {
    "text": {"S"},
    "float8": {"N", "S"},
    "int8": {"N", "S"},
    "int4": {"N", "S"},
    "bool": {"B", "S"},
}
DOCUMENT_TYPES = ("json", "jsonb")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): already quoted where it needs to be
    category: str  # pg_type.typcategory
    is_unique: bool = False


@dataclass(frozen=True)
class Source:
    """One attached table and its mapping (a row of `sources`; id 0 until recorded)."""

    table_name: str  # format('%I.%I', schema, table): the key users name it by
    table_schema: str
    table_relname: str
    id_column: str
    id_type: str
    path_column: str
    metadata_column: str | None = None
    metadata_type: str | None = None
    summary_prefix: str | None = None
    summary_columns: tuple[str, ...] = ()
    # format_type() of each summary column, as the catalog has it now (not part of the
    # mapping: only taken_at's write-back depends on it).
    summary_types: tuple[str, ...] = ()
    skip_existing: bool = True
    path_prefix: str | None = None  # normalised by prefix(): absolute, no trailing slash
    id: int = 0
    backfill_after: str | None = None
    backfilled: bool = False

    def params(self) -> dict[str, Any]:
        return {
            "table_name": self.table_name,
            "table_schema": self.table_schema,
            "table_relname": self.table_relname,
            "id_column": self.id_column,
            "id_type": self.id_type,
            "path_column": self.path_column,
            "metadata_column": self.metadata_column,
            "metadata_type": self.metadata_type,
            "summary_prefix": self.summary_prefix,
            "summary_columns": list(self.summary_columns),
            "skip_existing": self.skip_existing,
            "path_prefix": self.path_prefix,
        }

    def with_id(self, source_id: int) -> Source:
        return replace(self, id=source_id)

    def mapping(self) -> tuple[Any, ...]:
        """What must match for a configured attachment to count as the same one."""
        return (
            self.id_column,
            self.path_column,
            self.metadata_column,
            self.summary_prefix or None,
            self.skip_existing,
            self.path_prefix,
        )

    def summary_keys(self) -> list[tuple[str, str]]:
        """(application column, summary key) for each recorded summary column."""
        prefix = self.summary_prefix or ""
        return [(column, column[len(prefix) :]) for column in self.summary_columns]

    def time_column(self, column: str) -> str | None:
        """The date/time type (TIME_TYPES) of a summary column, None for another type."""
        for name, type_ in zip(self.summary_columns, self.summary_types, strict=False):
            if name == column and is_time_type(type_):
                return type_
        return None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Source:
        return cls(
            table_name=row["table_name"],
            table_schema=row["table_schema"],
            table_relname=row["table_relname"],
            id_column=row["id_column"],
            id_type=row["id_type"],
            path_column=row["path_column"],
            metadata_column=row["metadata_column"],
            metadata_type=row["metadata_type"],
            summary_prefix=row["summary_prefix"],
            summary_columns=tuple(row["summary_columns"] or ()),
            summary_types=tuple(row.get("summary_types") or ()),
            skip_existing=row["skip_existing"],
            path_prefix=row["path_prefix"],
            id=row["id"],
            backfill_after=row["backfill_after"],
            backfilled=row["backfilled_at"] is not None,
        )


@dataclass(frozen=True)
class Plan:
    source: Source
    ignored: tuple[str, ...] = ()  # prefixed columns left out, with the reason


def plan(
    table: Mapping[str, Any],
    columns: Sequence[Column],
    *,
    id_column: str,
    path_column: str,
    metadata_column: str | None = None,
    summary_prefix: str | None = None,
    skip_existing: bool = True,
    path_prefix: str | None = None,
) -> Plan:
    """Check a mapping against the table's columns; UsageError names everything missing."""
    name = table["qualified"]
    if table["kind"] not in ("r", "p"):
        raise UsageError(f"{name} is not a table (relkind {table['kind']!r})")
    by_name = {c.name: c for c in columns}
    wanted = [("--id", id_column), ("--path", path_column)]
    if metadata_column:
        wanted.append(("--metadata", metadata_column))
    missing = [f"{flag} {col}" for flag, col in wanted if col not in by_name]
    if missing:
        raise UsageError(
            f"table {name} has no column {', '.join(missing)}; it has: "
            + ", ".join(c.name for c in columns)
        )
    problems = []
    if not by_name[id_column].is_unique:
        problems.append(f"--id {id_column}: needs a primary key or a unique index on it alone")
    if by_name[path_column].category != "S":
        problems.append(
            f"--path {path_column}: must be a text column, not {by_name[path_column].type}"
        )
    meta = by_name.get(metadata_column) if metadata_column else None
    if meta is not None and meta.type not in DOCUMENT_TYPES and meta.category != "S":
        problems.append(
            f"--metadata {metadata_column}: must be jsonb, json or text, not {meta.type}"
        )
    if len({id_column, path_column, metadata_column or path_column}) < (3 if meta else 2):
        problems.append("--id, --path and --metadata must be different columns")
    if problems:
        raise UsageError(f"table {name}: " + "; ".join(problems))
    summary, ignored = summary_columns(by_name, summary_prefix or "")
    types = tuple(by_name[column].type for column in summary)
    source = Source(
        table_name=name,
        table_schema=table["schema_name"],
        table_relname=table["table_name"],
        id_column=id_column,
        id_type=by_name[id_column].type,
        path_column=path_column,
        metadata_column=metadata_column or None,
        metadata_type=meta.type if meta else None,
        summary_prefix=summary_prefix or None,
        summary_columns=tuple(summary),
        summary_types=types,
        skip_existing=skip_existing,
        path_prefix=prefix(path_prefix) if path_prefix else None,
    )
    return Plan(source, tuple(ignored))


def prefix(directory: str) -> str:
    """--path-prefix as recorded: absolute, without trailing slash (but for "/")."""
    if not directory.startswith("/"):
        raise UsageError(
            f"--path-prefix {directory!r}: must be an absolute directory (start with /)"
        )
    if not is_storable(directory):
        raise UsageError(f"--path-prefix {escaped(directory)!r}: {UNSTORABLE_MESSAGE}")
    return directory.rstrip("/") or "/"


def summary_columns(by_name: Mapping[str, Column], prefix: str) -> tuple[list[str], list[str]]:
    """The columns named <prefix><key> that can hold that summary value, and the others."""
    found: list[str] = []
    ignored: list[str] = []
    if not prefix:
        return found, ignored
    for key in MAPPED_KEYS:
        column = by_name.get(prefix + key)
        if column is None:
            continue
        if column.category in _CATEGORIES[SUMMARY_TYPES[key]] or (
            key == "taken_at" and is_time_type(column.type)
        ):
            found.append(column.name)
        else:
            ignored.append(f"{column.name} ({column.type} cannot hold {key})")
    return found, ignored


def is_time_type(type_: str) -> bool:
    """A date/time type taken_at can go into: `timestamp(0) with time zone` too."""
    if type_ in TIME_TYPES:
        return True
    # format_type() puts a precision after the name: drop it.
    base, _, zone = type_.partition(") ")
    return base.startswith("timestamp(") and f"timestamp {zone}" in TIME_TYPES
