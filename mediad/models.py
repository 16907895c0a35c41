"""Values that flow between the database, the supervisor and the workers.

Frozen and picklable: they cross process boundaries as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mediad.errors import FailureClass


@dataclass(frozen=True)
class Job:
    """A claimed row: what a worker needs, plus the fencing token the write-back needs."""

    id: int
    path: str
    attempts: int
    lease_token: int


@dataclass(frozen=True)
class Fingerprint:
    size_bytes: int
    mtime_us: int  # microseconds since the epoch, as stored
    inode: int


@dataclass(frozen=True)
class Extracted:
    """A successful extraction."""

    document: str  # MediaInfo's JSON, as text: passed to PostgreSQL without re-encoding
    summary: dict[str, Any]
    fingerprint: Fingerprint
    resolved_path: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Failure:
    failure_class: FailureClass
    message: str
    fingerprint: Fingerprint | None = None
    resolved_path: str | None = None
    seconds: float = 0.0


Outcome = Extracted | Failure

# Where a record's summary and document start: each follows its key.
SUMMARY_KEY = ', "summary": '  # as json.dumps writes it, by default
METADATA_KEY = ',"metadata":'


@dataclass(frozen=True, slots=True)
class Record:
    """A successful extraction as the write-back reads it (mediad/record.py makes it in
    the worker): one JSON object, `text`, and what the supervisor needs without parsing
    it."""

    row_id: int
    text: str
    size_bytes: int
    seconds: float
    summary_at: int  # where the summary's JSON starts in `text`
    document_at: int  # where the document starts; it runs to the closing brace

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The default for a slotted dataclass calls dataclasses.fields() per unpickle.
        return Record, (
            self.row_id,
            self.text,
            self.size_bytes,
            self.seconds,
            self.summary_at,
            self.document_at,
        )

    def document(self) -> str:
        """MediaInfo's document, exactly as the worker had it."""
        return self.text[self.document_at : -1]

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = json.loads(
            self.text[self.summary_at : self.document_at - len(METADATA_KEY)]
        )
        return summary

    def observed(self) -> tuple[Fingerprint, str]:
        """The fingerprint and resolved path (for the rare row the database refuses)."""
        head = json.loads(self.text[: self.summary_at - len(SUMMARY_KEY)] + "}")
        return (
            Fingerprint(head["size_bytes"], head["mtime_us"], head["inode"]),
            head["resolved_path"],
        )


@dataclass(frozen=True)
class Completion:
    """An outcome tied to the claim it answers, ready for write-back."""

    job: Job
    outcome: Record | Failure  # a worker sends a record, not the Extracted it made it from
    worker_pid: int = 0


@dataclass(frozen=True)
class ScanEntry:
    """A file found by a scan, with the fingerprint that decides whether it changed."""

    path: str
    size_bytes: int
    mtime_us: int
    # The name cannot be stored as it is (not UTF-8, or a NUL): `path` is its escaped form
    # and the row is recorded as failed with class bad_path, so it is seen, not skipped.
    unstorable: bool = False
