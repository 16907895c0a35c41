"""Validators: each returns the normalised value or raises ValueError with a reason.

Keyed by (section, key) in VALIDATORS, so a setting's rule is found beside its name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from mediad.config.schema import LOG_FORMATS, LOG_LEVELS

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _identifier(value: str) -> str:
    if not IDENTIFIER_RE.match(value):
        raise ValueError(
            "must be a plain identifier: a letter or underscore, then letters, digits or "
            "underscores, at most 63 characters"
        )
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value.lower()

    return check


def _listen_address(value: str) -> str:
    if value == "":
        return value  # metrics off
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT (for example 127.0.0.1:9464), or empty to disable")
    if not host:
        raise ValueError("needs a host: use 127.0.0.1:PORT, or 0.0.0.0:PORT deliberately")
    return value


def _roots(value: tuple[str, ...]) -> tuple[str, ...]:
    for root in value:
        if not os.path.isabs(root):
            raise ValueError(f"every root must be an absolute path, not {root!r}")
    # Confinement is checked against resolved paths, so the roots are resolved too.
    return tuple(os.path.realpath(root) for root in value)


def _parse_speed(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def _dsn(value: str) -> str:
    if value and not (value.startswith(("postgres://", "postgresql://")) or "=" in value):
        raise ValueError("must be a postgresql:// URL or a libpq 'key=value' string")
    return value


# File names, which may be any bytes; every other text setting must be UTF-8.
PATH_SETTINGS = frozenset(
    {
        ("database", "password_file"),
        ("daemon", "state_dir"),
        ("extract", "roots"),
        ("extract", "library_file"),
    }
)

VALIDATORS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("database", "dsn"): _dsn,
    ("database", "schema"): _identifier,
    ("database", "connect_timeout_seconds"): _positive,
    ("daemon", "workers"): _non_negative,
    ("daemon", "batch_size"): _positive,
    ("daemon", "poll_seconds"): _positive,
    ("daemon", "lease_seconds"): _positive,
    ("daemon", "shutdown_grace_seconds"): _non_negative,
    ("daemon", "flush_seconds"): _positive,
    ("daemon", "max_files_per_worker"): _non_negative,
    ("daemon", "memory_limit_mb"): _non_negative,
    ("daemon", "prefetch"): _positive,
    ("daemon", "mount_stall_timeouts"): _positive,
    ("daemon", "mount_stall_window_seconds"): _positive,
    ("daemon", "mount_probe_seconds"): _positive,
    ("daemon", "max_stuck_workers"): _non_negative,
    ("daemon", "heartbeat_seconds"): _positive,
    ("extract", "roots"): _roots,
    ("extract", "timeout_seconds"): _positive,
    ("extract", "cpu_seconds"): _non_negative,
    ("extract", "parse_speed"): _parse_speed,
    ("extract", "max_file_bytes"): _non_negative,
    ("extract", "engine"): _one_of("mediainfo", "noop"),
    ("retry", "max_attempts"): _positive,
    ("retry", "backoff_base_seconds"): _non_negative,
    ("retry", "backoff_max_seconds"): _non_negative,
    ("metrics", "listen"): _listen_address,
    ("log", "level"): _one_of(*LOG_LEVELS),
    ("log", "format"): _one_of(*LOG_FORMATS),
}
