"""What `mediad top` shows, laid out in lines no wider than the terminal: pure, so the
80-column layout is tested without a database or a terminal (tests/unit/test_topview.py).
The live view styles these lines; `--once` prints them as they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediad.fleet import daemon_name, elapsed
from mediad.models import DaemonSeen
from mediad.pauses import Pause

# Failures are counted over this window: long enough to see a burst after it ended.
FAILURES_WINDOW_SECONDS = 300.0
ELLIPSIS = "..."  # ASCII: the snapshot is plain text whatever the locale


@dataclass(frozen=True)
class Snapshot:
    """One reading of the database: the queue, recent failures, every daemon's row."""

    database: str
    counts: dict[str, int]
    done_per_s: float
    failed_per_s: float
    oldest_pending_seconds: float | None
    failures: dict[str, int]  # by class, over FAILURES_WINDOW_SECONDS
    daemons: list[DaemonSeen] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)  # in force (mediad pause)


@dataclass(frozen=True)
class Line:
    """A line of the view and its kind (the live view styles by kind)."""

    text: str
    kind: str = "body"  # title, heading, body, warning, gone


# Control characters in a file or host name (an escape sequence, a newline) would reach
# the operator's terminal as they are: they are shown as \xNN instead.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


def printable(text: str) -> str:
    return text.translate(_CONTROL)


def fit(text: str, width: int) -> str:
    """Cut a line to `width` characters, marking the cut."""
    text = printable(text)
    return text if len(text) <= width else text[: max(0, width - len(ELLIPSIS))] + ELLIPSIS


def fit_left(text: str, width: int) -> str:
    """Cut a path from the left: its file name is what says which file it is."""
    text = printable(text)
    if len(text) <= width:
        return text
    return ELLIPSIS + text[len(text) - max(0, width - len(ELLIPSIS)) :]


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m{int(seconds % 60):02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _queue(snapshot: Snapshot) -> list[Line]:
    counts = snapshot.counts
    oldest = snapshot.oldest_pending_seconds
    lines = [
        Line(
            "queue: " + "  ".join(f"{state} {counts.get(state, 0)}" for state in _QUEUE_STATES),
            "heading",
        ),
        Line(
            f"last minute: {snapshot.done_per_s:.1f} done/s, {snapshot.failed_per_s:.1f} failed/s"
            + (f"; oldest due pending {_clock(oldest)}" if oldest is not None else "")
        ),
    ]
    minutes = int(FAILURES_WINDOW_SECONDS // 60)
    failures = ", ".join(f"{cls} {n}" for cls, n in snapshot.failures.items()) or "none"
    lines.append(Line(f"failures, last {minutes} min: {failures}"))
    return lines


_QUEUE_STATES = ("pending", "running", "done", "failed")


def _stalled(snapshot: Snapshot) -> list[Line]:
    stalled = sorted(
        {
            (mount.mount, daemon_name(seen.report))
            for seen in snapshot.daemons
            if seen.live
            for mount in seen.report.mounts
            if mount.state == "stalled"
        }
    )
    return [Line(f"stalled mount {point} on {name}", "warning") for point, name in stalled]


def _paused(snapshot: Snapshot) -> list[Line]:
    return [Line(f"paused {pause.describe()}", "warning") for pause in snapshot.pauses]


def _daemons(snapshot: Snapshot, name_width: int) -> list[Line]:
    if not snapshot.daemons:
        return [Line("no daemon has a row in this schema", "heading")]
    lines = [
        Line(
            f"{'DAEMON':<{name_width}} {'PID':>7} {'STATE':<8} {'WORKERS':>7} "
            f"{'STUCK':>5} {'FILES':>5} {'BEAT':>7}",
            "heading",
        )
    ]
    for seen in snapshot.daemons:
        report = seen.report
        workers = f"{report.workers_alive}/{report.workers_target}"
        lines.append(
            Line(
                f"{fit(daemon_name(report), name_width):<{name_width}} {report.pid:>7} "
                f"{seen.state_now:<8} {workers:>7} {report.workers_stuck:>5} "
                f"{len(report.in_flight):>5} {_clock(seen.heartbeat_age_seconds):>7}",
                "body" if seen.state_now == "running" else "warning",
            )
        )
    return lines


def _workers(snapshot: Snapshot, width: int, name_width: int) -> list[Line]:
    """Every file a live daemon's worker reads, slowest first."""
    reading = sorted(
        (
            (elapsed(seen, f.seconds), daemon_name(seen.report), f.worker_pid, f.path)
            for seen in snapshot.daemons
            if seen.live
            for f in seen.report.in_flight
        ),
        key=lambda row: -row[0],
    )
    if not reading:
        return [Line("no file is being read", "heading")]
    head = f"{'ELAPSED':>8} {'WORKER':>7} {'DAEMON':<{name_width}} "
    lines = [Line(head + "FILE", "heading")]
    room = max(8, width - len(head))
    for seconds, name, pid, path in reading:
        lines.append(
            Line(
                f"{_clock(seconds):>8} {pid:>7} {fit(name, name_width):<{name_width}} "
                + fit_left(path, room)
            )
        )
    return lines


def layout(snapshot: Snapshot, width: int, title: str = "mediad top") -> list[Line]:
    """The whole view, every line at most `width` characters (at least 40 assumed)."""
    width = max(40, width)
    name_width = min(24, max([6, *(len(daemon_name(d.report)) for d in snapshot.daemons)]))
    lines = [
        Line(f"{title}: {snapshot.database}", "title"),
        *_queue(snapshot),
        *_stalled(snapshot),
        *_paused(snapshot),
        Line(""),
        *_daemons(snapshot, name_width),
        Line(""),
        *_workers(snapshot, width, name_width),
    ]
    return [Line(fit(line.text, width), line.kind) for line in lines]
