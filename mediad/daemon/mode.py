"""What a daemon run is asked to do, and what it did: the names the commands use."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from enum import Enum

from mediad.config import Config
from mediad.retry import RetryPolicy


@dataclass
class Tally:
    """What this run did, for the extract summary and the periodic log line."""

    done: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    stale: int = 0
    claimed: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + sum(self.failed.values())


@dataclass(frozen=True)
class RunMode:
    """`run` keeps going; `extract` stops when nothing is left (or after `limit` files)."""

    one_shot: bool = False
    limit: int = 0
    skip_existing: bool = False


class Phase(Enum):
    """RUNNING claims and dispatches; DRAINING (the first SIGTERM or SIGINT) claims no
    more, releases what no worker started and lets the workers finish, for the grace
    period; STOPPING (a second signal, or the grace period over) kills the workers."""

    RUNNING = "running"
    DRAINING = "draining"
    STOPPING = "stopping"


def owner_name(instance: str) -> str:
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{instance}" if instance else name


def retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(
        config.retry.max_attempts,
        config.retry.backoff_base_seconds,
        config.retry.backoff_max_seconds,
    )
