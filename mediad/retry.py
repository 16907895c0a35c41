"""Retry policy: which failures are worth another attempt, and when.

Pure functions, so the policy is tested without processes or a database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mediad.errors import FailureClass

# Failures that another attempt cannot fix: the file is missing, refused by the gate, or
# not media. A rescan re-queues the file if it changes on disk.
PERMANENT: frozenset[FailureClass] = frozenset(
    {
        FailureClass.NOT_FOUND,
        FailureClass.PERMISSION,
        FailureClass.NOT_REGULAR,
        FailureClass.OUTSIDE_ROOTS,
        FailureClass.BAD_PATH,
        FailureClass.TOO_LARGE,
        FailureClass.UNSUPPORTED,
        FailureClass.CORRUPT,
    }
)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: `first` after the first failure, doubling with each failure in
    a row, never more than `most`. One rule for whatever retries (a busy table, a database
    away, workers dying at boot, a failed file); each caller keeps its own figures."""

    first: float
    most: float

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1 for the first)."""
        # Past 2**64 every real step is `most` already, and a larger power of two would
        # overflow a float after a long outage.
        exponent = min(max(0, failures - 1), 64)
        return min(self.most, self.first * 2.0**exponent)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float

    def is_final(self, failure: FailureClass, attempts: int) -> bool:
        """Whether a row that failed on its `attempts`-th attempt ends `failed`."""
        return failure in PERMANENT or attempts >= self.max_attempts

    def delay_seconds(self, attempts: int, rng: random.Random | None = None) -> float:
        """Exponential back-off with jitter after the `attempts`-th failed attempt.

        "Equal jitter" (uniform between half and the whole step) spreads the retries of a
        batch that failed together, e.g. when a mount came back, yet never retries sooner
        than half the step.
        """
        rng = rng or random.Random()
        step = Backoff(self.backoff_base_seconds, self.backoff_max_seconds).delay(attempts)
        return rng.uniform(step / 2, step)
