"""The settings themselves: one frozen dataclass per section, with its defaults.

Every other part of mediad.config reads these declarations: parsing, validation,
environment overrides and `check-config` all come from the same fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "json", "journald")


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = ""
    password_file: str = ""
    schema: str = "mediad"
    listen: bool = True
    auto_migrate: bool = False
    connect_timeout_seconds: float = 5.0
    prepared_statements: bool = True  # false behind PgBouncer in transaction mode (< 1.21)


@dataclass(frozen=True)
class DaemonConfig:
    workers: int = 0  # 0 means one per core
    batch_size: int = 500  # the most rows per claim; the claim follows the pace (pace.py)
    poll_seconds: float = 5.0
    lease_seconds: float = 30.0
    shutdown_grace_seconds: float = 30.0
    state_dir: str = ""
    flush_seconds: float = 0.25
    max_files_per_worker: int = 5000
    memory_limit_mb: int = 1024
    instance: str = ""
    prefetch: int = 16  # the most files a worker holds; it holds about 50 ms of work (pace.py)
    mount_stall_timeouts: int = 3  # this many timeouts on one mount within the window stall it
    mount_stall_window_seconds: float = 120.0
    mount_probe_seconds: float = 15.0  # a stalled mount is probed this often
    max_stuck_workers: int = 0  # 0 means the worker count
    heartbeat_seconds: float = 5.0  # the daemon's row in the daemons table; gone after 3


@dataclass(frozen=True)
class ExtractConfig:
    roots: tuple[str, ...] = ()
    timeout_seconds: float = 60.0
    parse_speed: float = 0.5
    max_file_bytes: int = 0  # 0 means no limit
    full_document: bool = False
    engine: str = "mediainfo"  # "noop": skip MediaInfo, to measure the pipeline alone
    library_file: str = ""  # a libmediainfo to load instead of pymediainfo's own
    cpu_seconds: float = 60.0  # CPU time one file may use (RLIMIT_CPU); 0: no limit
    second_reader: bool = True  # camera metadata (EXIF, XMP, IPTC) beside MediaInfo's


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 3
    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class AttachConfig:
    """One `[attach."schema.table"]` table: an application table mediad works from
    (docs/attach.md). Applied when `mediad run` starts."""

    table: str = ""  # the TOML key: the table's name, schema-qualified or not
    id: str = ""  # required
    path: str = ""  # required
    metadata: str = ""  # empty: results are not written into the table
    summary_prefix: str = ""  # empty: no summary columns
    skip_existing: bool = True
    path_prefix: str = ""  # empty: paths are used as the table holds them


ATTACH_KEYS = ("id", "path", "metadata", "summary_prefix", "skip_existing", "path_prefix")


@dataclass(frozen=True)
class MountConfig:
    """One `[mounts."/mnt/nas"]` table: settings for the filesystem mounted there
    (docs/operations.md). The point is matched against the mount table as written,
    never resolved: resolving would touch the mount, which may hang."""

    point: str = ""  # the TOML key: an absolute mount point
    max_workers: int = 0  # required: the most files of this mount in flight at once


MOUNT_KEYS = ("max_workers",)


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    attach: tuple[AttachConfig, ...] = ()  # file only: no environment variables
    mounts: tuple[MountConfig, ...] = ()  # file only: no environment variables
    source: str = ""  # the file it was read from, for messages

    @property
    def embedded(self) -> bool:
        """No DSN configured: mediad runs its own PostgreSQL in its state directory."""
        return not self.database.dsn

    def effective_workers(self) -> int:
        return self.daemon.workers or (os.cpu_count() or 1)

    def effective_max_stuck(self) -> int:
        """Stuck processes tolerated before network mounts get no more files."""
        return self.daemon.max_stuck_workers or self.effective_workers()

    def mount_overrides(self) -> dict[str, int]:
        """Mount point -> max_workers, from the `[mounts."..."]` tables."""
        return {m.point: m.max_workers for m in self.mounts}

    def state_path(self) -> Path:
        if self.daemon.state_dir:
            return Path(self.daemon.state_dir)
        systemd_state = os.environ.get("STATE_DIRECTORY")
        if systemd_state:
            return Path(systemd_state.split(":")[0])
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(xdg) / "mediad"


SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "daemon": DaemonConfig,
    "extract": ExtractConfig,
    "retry": RetryConfig,
    "metrics": MetricsConfig,
    "log": LogConfig,
}
