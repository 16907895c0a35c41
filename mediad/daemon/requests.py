"""What the daemon asks of the database: one dataclass a request, each with its answer's
type, run on a database thread (mediad/daemon/dbthread.py).

A request says what it needs and nothing else; errors, back-off and latency are handled
once for all of them (mediad/daemon/database.py), so no request can forget one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from mediad.daemon.dbthread import unavailable
from mediad.errors import DatabaseUnavailable
from mediad.models import DaemonReport, DaemonSeen, Job, Record
from mediad.pauses import Pause

if TYPE_CHECKING:
    from mediad.db.queue import FailureWrite, Queue, WriteResult

T = TypeVar("T")


class Request(Generic[T]):
    """`kind`: at most one request of a kind is wanted at a time (`Database.busy`);
    `metric`: its `operation` label in mediad_db_*; `lane`: the thread it runs on."""

    kind: ClassVar[str]
    metric: ClassVar[str] = ""
    lane: ClassVar[str] = "other"

    @property
    def label(self) -> str:
        return self.metric or self.kind

    def run(self, store: Queue) -> T:
        raise NotImplementedError

    def trouble(self, value: T) -> DatabaseUnavailable | None:
        """An answer that is part result, part failure (see Write)."""
        return None


@dataclass(frozen=True)
class Claim(Request[list[Job]]):
    kind: ClassVar[str] = "claim"
    want: int
    lease_seconds: float
    skip_existing: bool
    skip_prefixes: Sequence[str]

    def run(self, store: Queue) -> list[Job]:
        return store.claim(self.want, self.lease_seconds, self.skip_existing, self.skip_prefixes)


@dataclass(frozen=True)
class Written:
    """`failed` is the error when the results were committed but the failures were not:
    only the failures must be written again (a second complete would be refused by the
    fence and counted as stale)."""

    done: WriteResult
    failed: WriteResult | DatabaseUnavailable


@dataclass(frozen=True)
class Write(Request[Written]):
    kind: ClassVar[str] = "write"
    lane: ClassVar[str] = "write"  # a claim never waits behind a write-back
    done: Sequence[tuple[Job, Record]]
    failures: Sequence[FailureWrite]

    def run(self, store: Queue) -> Written:
        written_done = store.complete(self.done)
        try:
            return Written(written_done, store.fail(self.failures))
        except Exception as exc:
            error = unavailable(exc)
            if error is None:
                raise
            return Written(written_done, error)

    def trouble(self, value: Written) -> DatabaseUnavailable | None:
        return value.failed if isinstance(value.failed, DatabaseUnavailable) else None


@dataclass(frozen=True)
class Renew(Request[set[int]]):
    """Answers the ids whose leases were renewed; the others are lost."""

    kind: ClassVar[str] = "renew"
    held: Sequence[Job]
    lease_seconds: float

    def run(self, store: Queue) -> set[int]:
        return store.renew(self.held, self.lease_seconds)


@dataclass(frozen=True)
class Rescued:
    requeued: int
    failed: int


@dataclass(frozen=True)
class Rescue(Request[Rescued]):
    """Rows of any daemon whose leases expired, back to pending (or failed)."""

    kind: ClassVar[str] = "rescue"
    max_attempts: int

    def run(self, store: Queue) -> Rescued:
        return Rescued(*store.rescue_expired(self.max_attempts))


@dataclass(frozen=True)
class Release(Request[int]):
    """Rows back to pending, their attempt given back; answers how many were still ours."""

    kind: ClassVar[str] = "release"
    jobs: Sequence[Job]

    def run(self, store: Queue) -> int:
        return store.release(self.jobs)


@dataclass(frozen=True)
class GiveBack(Request[int]):
    """Rows of a stalled mount back to pending, uncharged, due `delay_seconds` later."""

    kind: ClassVar[str] = "give_back"
    jobs: Sequence[Job]
    delay_seconds: float

    def run(self, store: Queue) -> int:
        return store.give_back(self.jobs, self.delay_seconds)


@dataclass(frozen=True)
class ReadPauses(Request[list[Pause]]):
    """The pauses (docs/operations.md); `expire`: first lift those whose time is up."""

    kind: ClassVar[str] = "pauses"
    expire: bool = False

    def run(self, store: Queue) -> list[Pause]:
        if self.expire:
            store.expire_pauses()
        found = store.pauses()
        if not any(p.prefix is not None and not p.expired for p in found):
            # No mark may outlive the prefix pauses. Markers hold the pauses they mark
            # under (migration 0014), so a lift clears them all; this stays as the check
            # that nothing else (an older mediad's race, a hand-made mark) left one.
            store.clear_pause_marks()
        return found


@dataclass(frozen=True)
class QueueMeasure:
    counts: dict[str, int]
    oldest_pending_seconds: float | None
    # Every daemon's row: exported by each live daemon, since a gone one exports nothing.
    daemons: tuple[DaemonSeen, ...] = ()


@dataclass(frozen=True)
class Measure(Request[QueueMeasure]):
    kind: ClassVar[str] = "measure"

    def run(self, store: Queue) -> QueueMeasure:
        return QueueMeasure(store.counts(), store.oldest_pending_seconds(), tuple(store.daemons()))


@dataclass(frozen=True)
class Heartbeat(Request[int]):
    """This daemon's row; `prune`: also delete the rows of daemons gone for a day
    (answers how many)."""

    kind: ClassVar[str] = "heartbeat"
    report: DaemonReport
    prune: bool

    def run(self, store: Queue) -> int:
        store.heartbeat(self.report)
        return store.prune_daemons() if self.prune else 0


@dataclass(frozen=True)
class Forget(Request[None]):
    """This daemon's row deleted, at exit."""

    kind: ClassVar[str] = "forget"
    metric: ClassVar[str] = "heartbeat"  # docs/operations.md: heartbeat includes it
    owner: str

    def run(self, store: Queue) -> None:
        store.forget_daemon(self.owner)
