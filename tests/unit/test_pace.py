"""Claims and worker queues follow the pace: pure, no database or process."""

from __future__ import annotations

from mediad.pace import (
    CLAIM_AHEAD_SECONDS,
    MIN_DEPTH,
    RATE_WINDOW_SECONDS,
    ClaimSizer,
    FilePace,
    answer_every,
)


def _paced(rate: float, seconds: float, start: float = 0.0, done: int = 0) -> ClaimSizer:
    sizer = ClaimSizer()
    steps = int(seconds * 10)
    for n in range(steps + 1):
        sizer.observe(start + n / 10, done + int(rate * n / 10))
    return sizer


def test_before_the_pace_is_known_the_claim_fills_the_workers_twice() -> None:
    sizer = ClaimSizer()
    assert sizer.rate() is None
    assert sizer.size(capacity=8, maximum=500) == 16
    sizer.observe(0.0, 0)
    sizer.observe(0.05, 3)  # too short a span to say
    assert sizer.size(capacity=8, maximum=500) == 16
    assert sizer.size(capacity=8, maximum=10) == 10  # never above batch_size


def test_fast_files_get_half_a_second_of_work_up_to_batch_size() -> None:
    sizer = _paced(rate=600, seconds=3)
    assert sizer.rate() == 600
    assert sizer.size(capacity=8, maximum=500) == int(600 * CLAIM_AHEAD_SECONDS)
    assert _paced(rate=5000, seconds=3).size(capacity=8, maximum=500) == 500


def test_slow_files_claim_only_what_the_workers_can_hold() -> None:
    assert _paced(rate=2, seconds=5).size(capacity=8, maximum=500) == 8
    stalled = _paced(rate=0, seconds=5, done=100)  # nothing finished lately
    assert stalled.size(capacity=8, maximum=500) == 8


def test_a_burst_is_forgotten_after_the_window() -> None:
    sizer = _paced(rate=5000, seconds=2)
    late = 2 + RATE_WINDOW_SECONDS * 2
    for n in range(int(late * 10)):  # then a slow stretch, twice the window long
        sizer.observe(2.1 + n / 10, 10_000 + n // 10)
    assert sizer.size(capacity=8, maximum=500) == 8


def test_a_worker_holds_about_50_ms_of_work_between_2_and_prefetch() -> None:
    pace = FilePace()
    assert pace.depth(most=16) == MIN_DEPTH  # nothing read yet
    for _ in range(50):
        pace.observe(0.003)  # small media: 3 ms each
    assert pace.depth(most=16) == 16
    assert answer_every(16) == 8
    slow = FilePace()
    slow.observe(0.5)
    assert slow.depth(most=16) == MIN_DEPTH  # one read, one waiting
    assert answer_every(MIN_DEPTH) == 1
    assert slow.depth(most=1) == 1  # prefetch = 1: one file at a time


def test_the_pace_follows_a_change_of_files_within_a_few_dozen() -> None:
    pace = FilePace()
    for _ in range(100):
        pace.observe(0.002)
    assert pace.depth(most=16) == 16
    for _ in range(40):  # the library moves on to long videos
        pace.observe(0.2)
    assert pace.depth(most=16) == MIN_DEPTH
