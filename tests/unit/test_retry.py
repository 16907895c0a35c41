"""The back-off shared by everything that retries, and the retry policy of failed files."""

from __future__ import annotations

import random

from mediad.retry import Backoff, RetryPolicy


def test_backoff_doubles_from_the_first_step_up_to_the_most() -> None:
    steps = [Backoff(first=1.0, most=5.0).delay(n) for n in range(1, 6)]
    assert steps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_survives_an_outage_of_any_length() -> None:
    # A daemon that has failed a million times in a row still waits, never overflows.
    assert Backoff(first=0.5, most=10.0).delay(1_000_000) == 10.0


def test_backoff_before_any_failure_is_the_first_step() -> None:
    assert Backoff(first=0.2, most=30.0).delay(0) == 0.2


def test_a_failed_file_waits_between_half_and_all_of_its_step() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base_seconds=10.0, backoff_max_seconds=3600.0)
    rng = random.Random(7)
    for attempts, step in ((1, 10.0), (3, 40.0), (20, 3600.0)):
        delays = [policy.delay_seconds(attempts, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 4  # jittered, not one fixed value
