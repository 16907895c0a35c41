"""Prometheus metrics, defined once at import and owned by the supervisor.

Workers report timings in their results, so no multiprocess mode is needed. Labels are
bounded sets (outcome, failure class, reason): never a path or a row id.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from mediad import __version__
from mediad.errors import FailureClass, MediadError
from mediad.fleet import STATES, count_by_state, per_daemon
from mediad.models import DaemonReport, DaemonSeen

REGISTRY = CollectorRegistry(auto_describe=True)

FILES = Counter(
    "mediad_files",
    "Files finished, by outcome (done, failed, retry) and failure class.",
    ["outcome", "error_class"],
    registry=REGISTRY,
)
BYTES = Counter("mediad_read_bytes", "Size of the files extracted.", registry=REGISTRY)
EXTRACT_SECONDS = Histogram(
    "mediad_extract_duration_seconds",
    "Time a worker spent on one file.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
DB_SECONDS = Histogram(
    "mediad_db_duration_seconds",
    "Latency of database statements on the hot path.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BATCH_ROWS = Histogram(
    "mediad_db_batch_rows",
    "Rows per claim or write-back statement.",
    ["operation"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
QUEUE_ROWS = Gauge("mediad_queue_rows", "Rows in the queue by state.", ["state"], registry=REGISTRY)
OLDEST_PENDING = Gauge(
    "mediad_oldest_pending_age_seconds",
    "Age of the oldest row that is due and waiting to be claimed.",
    registry=REGISTRY,
)
WORKERS = Gauge("mediad_workers", "Worker processes by activity.", ["activity"], registry=REGISTRY)
WORKER_RESTARTS = Counter(
    "mediad_worker_restarts", "Workers replaced, by reason.", ["reason"], registry=REGISTRY
)
BUFFERED = Gauge("mediad_buffered_rows", "Claimed rows waiting for a worker.", registry=REGISTRY)
LEASES_RENEWED = Counter("mediad_leases_renewed", "Leases renewed.", registry=REGISTRY)
LEASES_LOST = Counter(
    "mediad_leases_lost",
    "Rows this daemon held whose lease was gone at renewal.",
    registry=REGISTRY,
)
RECLAIMED = Counter(
    "mediad_rows_reclaimed",
    "Rows whose lease expired (their daemon died or stalled) put back in the queue.",
    registry=REGISTRY,
)
RELEASED = Counter("mediad_rows_released", "Claimed rows given back unstarted.", registry=REGISTRY)
STALE = Counter(
    "mediad_stale_completions",
    "Results refused by the fence because the lease had moved on.",
    registry=REGISTRY,
)
DB_CONNECTIONS_OPENED = Counter(
    "mediad_db_connections_opened",
    "Database connections opened (pool and LISTEN); a rise after start means reconnects.",
    registry=REGISTRY,
)
DB_ERRORS = Counter(
    "mediad_db_errors",
    "Database operations that failed (connection lost...).",
    ["operation"],
    registry=REGISTRY,
)
RELOADS = Counter("mediad_config_reloads", "Configuration reloads.", ["result"], registry=REGISTRY)
RELOAD_OK = Gauge(
    "mediad_config_last_reload_successful",
    "1 when the last reload was applied (or none was tried), 0 when it was refused.",
    registry=REGISTRY,
)
RELOAD_OK_TIME = Gauge(
    "mediad_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully (start or reload).",
    registry=REGISTRY,
)
LOOP_TIME = Gauge(
    "mediad_loop_last_iteration_timestamp_seconds",
    "When the supervisor's main loop last came round: stale means a wedged loop.",
    registry=REGISTRY,
)
QUEUE_MEASURED_TIME = Gauge(
    "mediad_queue_measured_timestamp_seconds",
    "When the queue gauges were last measured.",
    registry=REGISTRY,
)
WORKERS_TARGET = Gauge(
    "mediad_workers_target", "Configured size of the worker pool.", registry=REGISTRY
)
# Mount points are a small, bounded set (the mounts files are read from), never a path.
MOUNT_STALLED = Gauge(
    "mediad_mount_stalled",
    "1 while the mount is stalled (timeouts piled up; its files wait uncharged), else 0.",
    ["mount"],
    registry=REGISTRY,
)
MOUNT_IN_FLIGHT = Gauge(
    "mediad_mount_in_flight",
    "Files on the mount sent to a worker and not answered yet.",
    ["mount"],
    registry=REGISTRY,
)
WORKERS_SPARE = Gauge(
    "mediad_workers_spare",
    "Workers run beyond daemon.workers, in place of ones waiting on a network mount's read.",
    registry=REGISTRY,
)
WORKERS_STUCK = Gauge(
    "mediad_workers_stuck",
    "Killed worker processes that have not exited (blocked in the kernel on a mount).",
    registry=REGISTRY,
)
WORKERS_STUCK_LIMIT = Gauge(
    "mediad_workers_stuck_limit",
    "Stuck processes at which no network-mount file is dispatched and no worker forked.",
    registry=REGISTRY,
)
# The fleet, as this daemon last read the daemons table (with the queue's gauges): a
# daemon that is gone exports nothing itself, so every live daemon exports the others.
# `daemon` is host[:instance] (mediad/fleet.py), a set as small as the fleet.
FLEET_DAEMONS = Gauge(
    "mediad_fleet_daemons",
    "Daemons in the daemons table by state (running, draining, degraded, gone).",
    ["state"],
    registry=REGISTRY,
)
FLEET_UP = Gauge(
    "mediad_fleet_daemon_up",
    "1 while the daemon's heartbeat is at most 3 of its intervals old; 0 once it is gone.",
    ["daemon"],
    registry=REGISTRY,
)
FLEET_IN_FLIGHT = Gauge(
    "mediad_fleet_daemon_in_flight",
    "Files the daemon's workers were reading at its last heartbeat.",
    ["daemon"],
    registry=REGISTRY,
)
FLEET_STUCK = Gauge(
    "mediad_fleet_daemon_workers_stuck",
    "The daemon's killed worker processes that have not exited, at its last heartbeat.",
    ["daemon"],
    registry=REGISTRY,
)
FLEET_HEARTBEAT_AGE = Gauge(
    "mediad_fleet_daemon_heartbeat_age_seconds",
    "Age of the daemon's last heartbeat, by the database's clock, when last read.",
    ["daemon"],
    registry=REGISTRY,
)
FLEET_FILES = Gauge(
    "mediad_fleet_daemon_files_finished",
    "Files the daemon finished (done or failed) since it started; rate() is its files/s.",
    ["daemon"],
    registry=REGISTRY,
)
_FLEET_BY_DAEMON = (FLEET_UP, FLEET_IN_FLIGHT, FLEET_STUCK, FLEET_HEARTBEAT_AGE, FLEET_FILES)
BUILD = Info("mediad_build", "mediad version.", registry=REGISTRY)
BUILD.info({"version": __version__})
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Series that exist from the start at 0, so that rate() and increase() see the first event.
RESTART_REASONS = ("crash", "timeout", "recycled")
DB_OPERATIONS = ("claim", "write", "renew", "rescue", "measure", "release", "heartbeat")
for _reason in RESTART_REASONS:
    WORKER_RESTARTS.labels(_reason)
for _operation in DB_OPERATIONS:
    DB_ERRORS.labels(_operation)
    DB_SECONDS.labels(_operation)
for _result in ("applied", "failed"):
    RELOADS.labels(_result)
FILES.labels("done", "")
for _class in FailureClass:
    FILES.labels("failed", str(_class))
    FILES.labels("retry", str(_class))
for _state in ("pending", "running", "done", "failed"):
    QUEUE_ROWS.labels(_state)
for _activity in ("busy", "idle"):
    WORKERS.labels(_activity)
for _state in STATES:
    FLEET_DAEMONS.labels(_state)
RELOAD_OK.set(1)


_mounts_shown: set[str] = set()


def show_daemon(report: DaemonReport) -> None:
    """Set the stuck and mount gauges from what the daemon publishes at its heartbeat. A
    mount no longer reported loses its series (no frozen value left behind)."""
    WORKERS_STUCK.set(report.workers_stuck)
    WORKERS_STUCK_LIMIT.set(report.workers_stuck_limit)
    mounts = {m.mount: m for m in report.mounts}
    for gone in _mounts_shown - mounts.keys():
        MOUNT_STALLED.remove(gone)
        MOUNT_IN_FLIGHT.remove(gone)
    for point, mount in mounts.items():
        MOUNT_STALLED.labels(point).set(1 if mount.state == "stalled" else 0)
        MOUNT_IN_FLIGHT.labels(point).set(mount.in_flight)
    _mounts_shown.clear()
    _mounts_shown.update(mounts)


_daemons_shown: set[str] = set()


def show_fleet(seen: Sequence[DaemonSeen]) -> None:
    """Set the fleet's gauges from the daemons table. A daemon whose row is gone from
    the table (stopped cleanly, or pruned a day after it died) loses its series."""
    for state, count in count_by_state(seen).items():
        FLEET_DAEMONS.labels(state).set(count)
    figures = per_daemon(seen)
    for gone in _daemons_shown - figures.keys():
        for gauge in _FLEET_BY_DAEMON:
            gauge.remove(gone)
    for name, daemon in figures.items():
        FLEET_UP.labels(name).set(1 if daemon.up else 0)
        FLEET_IN_FLIGHT.labels(name).set(daemon.in_flight)
        FLEET_STUCK.labels(name).set(daemon.workers_stuck)
        FLEET_HEARTBEAT_AGE.labels(name).set(daemon.heartbeat_age_seconds)
        FLEET_FILES.labels(name).set(daemon.files_finished)
    _daemons_shown.clear()
    _daemons_shown.update(figures)


def serve(address: str) -> object | None:
    """Start the /metrics endpoint; returns the server so it can be shut down."""
    if not address:
        return None
    host, _, port = address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=REGISTRY)
    except OSError as exc:
        message = f"metrics.listen {address}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE:
            message += f"; {PORT_TAKEN_HINT}"
        raise MediadError(message) from None
    return server


# Most often a second daemon with the same config on one host.
PORT_TAKEN_HINT = (
    "another process (another mediad?) serves that port: give each daemon its own "
    "(metrics.listen, or --metrics-listen HOST:PORT), or --metrics-listen '' to serve none, "
    "and set daemon.instance to tell the daemons apart"
)
