"""mediad's own errors and the failure classes a row can end with."""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """Why a file could not be extracted. Stored in `error_class`; stable names."""

    NOT_FOUND = "not_found"
    PERMISSION = "permission"
    NOT_REGULAR = "not_regular"
    OUTSIDE_ROOTS = "outside_roots"
    BAD_PATH = "bad_path"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    CORRUPT = "corrupt"
    IO_ERROR = "io_error"
    TIMEOUT = "timeout"
    WORKER_CRASH = "worker_crash"
    OUT_OF_MEMORY = "out_of_memory"
    LEASE_EXPIRED = "lease_expired"
    INTERNAL = "internal"


class MediadError(Exception):
    """Base of every error mediad raises on purpose."""

    exit_code = 1


class ConfigError(MediadError):
    """A configuration value is wrong; the message names the key."""

    exit_code = 2

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class UsageError(MediadError):
    exit_code = 2


class SchemaError(MediadError):
    """The database schema is missing, older or newer than this mediad knows."""

    exit_code = 2


class DatabaseUnavailable(MediadError):
    """The database could not be reached or the connection broke; retry later."""


class DatabaseRejected(DatabaseUnavailable):
    """The server answered and refused: no such database or role, a wrong password, no
    pg_hba.conf entry, a bad DSN. Waiting does not help until someone changes the
    configuration or the server, so a command fails at once with the server's reason."""
