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
    mediainfo_version: str | None = None  # of the libmediainfo that read it, None if none did
    reader_version: str | None = None  # of the second reader, None when it did not read
    # The XMP sidecar read beside the file (its size and mtime make part of the file's
    # fingerprint, so an edit of it re-queues the file on the next scan), None if none.
    sidecar: Fingerprint | None = None


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
    """A successful extraction as the write-back reads it (mediad/extract/record.py makes
    it in the worker): one JSON object, `text`, and what the supervisor needs without
    parsing it."""

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
    # The file's XMP sidecar (mediad/walker.py: sidecar_names), None when it has none: a
    # change to it is a change to the file.
    sidecar_size_bytes: int | None = None
    sidecar_mtime_us: int | None = None


MOUNT_STATES = ("ok", "stalled")
DAEMON_STATES = ("running", "draining", "degraded")


@dataclass(frozen=True)
class MountReport:
    """One mount as a daemon sees it: the `mounts` of its row and of `status --json`."""

    mount: str  # the mount point
    fstype: str
    state: str = "ok"  # one of MOUNT_STATES
    in_flight: int = 0  # files of this daemon on it, read now or queued at a worker
    stuck: int = 0  # killed processes of this daemon that never exited, blocked on it
    timeouts_recent: int = 0  # timeouts inside daemon.mount_stall_window_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "mount": self.mount,
            "fstype": self.fstype,
            "state": self.state,
            "in_flight": self.in_flight,
            "stuck": self.stuck,
            "timeouts_recent": self.timeouts_recent,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> MountReport:
        """Tolerant of keys a newer mediad may add to the row."""
        return cls(
            mount=str(value["mount"]),
            fstype=str(value.get("fstype", "")),
            state=str(value.get("state", "ok")),
            in_flight=int(value.get("in_flight", 0)),
            stuck=int(value.get("stuck", 0)),
            timeouts_recent=int(value.get("timeouts_recent", 0)),
        )


@dataclass(frozen=True)
class InFlight:
    """A file a worker of a daemon reads now: the `in_flight` of its row."""

    path: str
    worker_pid: int
    mount: str  # the mount point the daemon assigned it, "" if it knows none
    seconds: float  # on this file so far

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "worker_pid": self.worker_pid,
            "mount": self.mount,
            "seconds": round(self.seconds, 1),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> InFlight:
        """Tolerant of keys a newer mediad may add to the row."""
        return cls(
            path=str(value["path"]),
            worker_pid=int(value.get("worker_pid", 0)),
            mount=str(value.get("mount", "")),
            seconds=float(value.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class DaemonReport:
    """What a daemon publishes at each heartbeat (its row of the `daemons` table)."""

    owner: str  # as in files.lease_owner: unique per running daemon
    host: str
    pid: int
    instance: str
    mediad_version: str
    uptime_seconds: float  # the row's started_at is the database's now() less this
    heartbeat_seconds: float
    workers_target: int
    workers_alive: int
    workers_stuck: int
    workers_stuck_limit: int
    mounts: tuple[MountReport, ...] = ()
    draining: bool = False
    mediainfo_version: str = ""  # libmediainfo's, as the workers loaded it ("" before)
    files_finished: int = 0  # done or failed since the daemon started
    in_flight: tuple[InFlight, ...] = ()  # slowest first

    @property
    def state(self) -> str:
        """running; draining once it stops; degraded while stuck processes are at the
        limit or a mount is stalled (what an operator should look at)."""
        if self.draining:
            return "draining"
        stuck_at_limit = self.workers_stuck_limit > 0 and (
            self.workers_stuck >= self.workers_stuck_limit
        )
        if stuck_at_limit or any(m.state == "stalled" for m in self.mounts):
            return "degraded"
        return "running"


@dataclass(frozen=True)
class DaemonSeen:
    """A row of the `daemons` table as a reader finds it, ages from the database's clock."""

    report: DaemonReport
    state: str  # as the daemon wrote it
    heartbeat_age_seconds: float
    live: bool  # heartbeat within 3 of the daemon's intervals; else the daemon is gone

    @property
    def state_now(self) -> str:
        """What readers show: the state the daemon wrote while it is live, else `gone`
        (killed, or its host lost, without deleting its row)."""
        return self.state if self.live else "gone"
