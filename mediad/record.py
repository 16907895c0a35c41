"""A successful extraction as the write-back reads it: one JSON object per row.

Made in the worker, so the supervisor neither unpickles the summary nor builds a
parameter per column: it joins the records of a batch into one JSON array, and the
`complete` statement (sql/queries.sql) reads it with jsonb_to_recordset. The keys here
are that statement's column list; tests/test_queries.py checks that they match. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mediad.models import METADATA_KEY, SUMMARY_KEY, Extracted, Job, Record
from mediad.paths import escaped, is_storable
from mediad.summary import COLUMNS

# The keys before the summary columns, in the order of the statement's column list.
HEAD_KEYS = ("id", "token", "resolved_path", "size_bytes", "mtime_us", "inode")
# The last two keys, written by hand below: the summary, then the document as it is.
RECORD_KEYS = (*HEAD_KEYS, *COLUMNS, "summary", "metadata")


def storable_text(value: str | None) -> str | None:
    """Text PostgreSQL can store: a resolved path may carry a NUL or bytes that are not
    UTF-8 (a symlink to such a name); they become \\xNN escapes."""
    if value is None or is_storable(value):
        return value
    return escaped(value)


def record_of(job: Job, extracted: Extracted) -> Record:
    fingerprint = extracted.fingerprint
    summary = extracted.summary
    head = {
        "id": job.id,
        "token": job.lease_token,
        "resolved_path": storable_text(extracted.resolved_path),
        "size_bytes": fingerprint.size_bytes,
        "mtime_us": fingerprint.mtime_us,
        "inode": fingerprint.inode,
    }
    head.update((key, summary.get(key)) for key in COLUMNS)
    start = json.dumps(head)[:-1] + SUMMARY_KEY
    summary_text = json.dumps(summary)
    text = start + summary_text + METADATA_KEY + extracted.document + "}"
    return Record(
        row_id=job.id,
        text=text,
        size_bytes=fingerprint.size_bytes,
        seconds=extracted.seconds,
        summary_at=len(start),
        document_at=len(start) + len(summary_text) + len(METADATA_KEY),
    )


def batch_text(records: Sequence[Record]) -> str:
    """The parameter of `complete`: every record of the batch as one JSON array."""
    return "[" + ",".join(r.text for r in records) + "]"
