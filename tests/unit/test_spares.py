"""How many spare workers the daemon asks for (mediad/daemon/spares.py)."""

from __future__ import annotations

from mediad.daemon.spares import lingering, spares_wanted


def test_one_spare_for_each_waiting_read_while_other_files_wait() -> None:
    assert spares_wanted(waiting=1, others_waiting=True, budget=2) == 1
    assert spares_wanted(waiting=3, others_waiting=True, budget=8) == 3


def test_no_spare_when_nothing_else_waits() -> None:
    """A library that lives on the share alone: a spare would only wait on it too."""
    assert spares_wanted(waiting=2, others_waiting=False, budget=8) == 0


def test_spares_stay_within_the_stuck_budget() -> None:
    assert spares_wanted(waiting=3, others_waiting=True, budget=1) == 1
    assert spares_wanted(waiting=3, others_waiting=True, budget=0) == 0
    assert spares_wanted(waiting=0, others_waiting=True, budget=4) == 0


def test_a_spare_lingers_before_it_goes_and_more_start_at_once() -> None:
    """A healthy share whose big files take seconds: reads turn waiting again and again;
    a spare let go between them would be a worker started each time."""
    assert lingering(wanted=0, current=1, now=105.0, last_wanted_at=100.0) == 1
    assert lingering(wanted=0, current=1, now=110.0, last_wanted_at=100.0) == 0
    assert lingering(wanted=2, current=1, now=100.5, last_wanted_at=100.0) == 2
    assert lingering(wanted=1, current=2, now=103.0, last_wanted_at=100.0) == 2
