"""How many spare workers the daemon asks for (mediad/daemon/spares.py)."""

from __future__ import annotations

from mediad.daemon.spares import spares_wanted


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
