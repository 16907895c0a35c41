"""A successful extraction as the write-back reads it: one JSON object per row.

Made in the worker, so the supervisor neither unpickles the summary nor builds a
parameter per column: it joins the records of a batch into one JSON array, and the
`complete` statement (sql/queries.sql) reads it with jsonb_to_recordset. The keys here
are that statement's column list; tests/integration/test_queries.py checks that they match. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mediad.extract.summary import COLUMNS, HDR_COLUMNS, MAPPING_VERSION, PHOTO_COLUMNS
from mediad.models import METADATA_KEY, SUMMARY_KEY, Extracted, Job, Record
from mediad.paths import escaped, is_storable

# The keys before the summary columns, in the order of the statement's column list.
HEAD_KEYS = ("id", "token", "resolved_path", "size_bytes", "mtime_us", "inode")
# The XMP sidecar the worker read beside the file, part of its fingerprint (a scan
# compares it); both left out when there was none.
SIDECAR_KEYS = ("sidecar_size_bytes", "sidecar_mtime_us")
# Which extractor wrote the row (docs/schema.md): reader_version is NULL when the second
# reader did not read the file.
VERSION_KEYS = ("mediainfo_version", "reader_version", "mapping_version")
# The last two: the summary, then the document as it is (added by hand, not re-encoded).
_SUMMARY_KEYS = (*COLUMNS, *HDR_COLUMNS, *PHOTO_COLUMNS)
RECORD_KEYS = (
    *HEAD_KEYS,
    *_SUMMARY_KEYS,
    *SIDECAR_KEYS,
    *VERSION_KEYS,
    "summary",
    "metadata",
)


def storable_text(value: str | None) -> str | None:
    """Text PostgreSQL can store: a resolved path may carry a NUL or bytes that are not
    UTF-8 (a symlink to such a name); they become \\xNN escapes."""
    if value is None or is_storable(value):
        return value
    return escaped(value)


def taken_at_instant(wall_clock: str) -> str:
    """The `taken_at` column's value (timestamptz, the instant) for the summary's text:
    the wall-clock time as the file states it, with its offset when one is known. Without
    one, UTC is assumed (docs/schema.md), said explicitly so the database's TimeZone
    setting never decides."""
    if wall_clock.endswith("Z") or (wall_clock[-6:-5] in ("+", "-") and wall_clock[-3:-2] == ":"):
        return wall_clock
    return wall_clock + "+00:00"


def record_of(job: Job, extracted: Extracted) -> Record:
    fingerprint = extracted.fingerprint
    summary = extracted.summary
    row: dict[str, Any] = {
        "id": job.id,
        "token": job.lease_token,
        "resolved_path": storable_text(extracted.resolved_path),
        "size_bytes": fingerprint.size_bytes,
        "mtime_us": fingerprint.mtime_us,
        "inode": fingerprint.inode,
    }
    # A key left out reads as NULL in the statement (jsonb_to_recordset): most summary
    # fields of most files are unknown, and every byte here is parsed by PostgreSQL.
    for key in _SUMMARY_KEYS:
        value = summary.get(key)
        if value is not None:
            row[key] = value
    if "taken_at" in row:
        row["taken_at"] = taken_at_instant(row["taken_at"])
    sidecar = extracted.sidecar
    if sidecar is not None:
        row["sidecar_size_bytes"] = sidecar.size_bytes
        row["sidecar_mtime_us"] = sidecar.mtime_us
    if extracted.mediainfo_version is not None:
        row["mediainfo_version"] = extracted.mediainfo_version
    if extracted.reader_version is not None:
        row["reader_version"] = extracted.reader_version
    row["mapping_version"] = MAPPING_VERSION
    row["summary"] = summary
    # One encoding for all but the document. The summary's key is the first place its
    # text can occur: inside a JSON string every quote is escaped.
    start = json.dumps(row)[:-1]
    summary_at = start.index(SUMMARY_KEY) + len(SUMMARY_KEY)
    text = start + METADATA_KEY + extracted.document + "}"
    return Record(
        row_id=job.id,
        text=text,
        size_bytes=fingerprint.size_bytes,
        seconds=extracted.seconds,
        summary_at=summary_at,
        document_at=len(start) + len(METADATA_KEY),
    )


def batch_text(records: Sequence[Record]) -> str:
    """The parameter of `complete`: every record of the batch as one JSON array."""
    return "[" + ",".join(r.text for r in records) + "]"
