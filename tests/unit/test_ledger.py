"""The ledger alone: where each held row is, which leases to renew, what a lost lease or
a stop does to each row. No processes, no database."""

from __future__ import annotations

from mediad.daemon.ledger import Ledger, Where
from mediad.models import Job


def jobs(*ids: int) -> list[Job]:
    return [Job(n, f"/m/{n}.mp4", 1, 100 + n) for n in ids]


def test_a_row_goes_from_buffered_to_settled_and_leaves() -> None:
    ledger = Ledger()
    [row] = jobs(1)
    ledger.claimed([row])
    assert ledger.where(1) is Where.BUFFERED and list(ledger.buffer) == [row]
    assert ledger.take(5) == [row]
    assert ledger.where(1) is Where.SENT and not ledger.buffer
    ledger.answered([row])
    assert ledger.where(1) is Where.RESULT
    ledger.writing([row])
    assert ledger.where(1) is Where.WRITING
    ledger.settle([row])
    assert 1 not in ledger and len(ledger) == 0 and ledger.renewal() == []
    assert all(ledger.count(where) == 0 for where in Where)


def test_the_renewal_list_is_exactly_the_rows_held_wherever_they_are() -> None:
    ledger = Ledger()
    a, b, c, d, e, f = jobs(1, 2, 3, 4, 5, 6)
    ledger.claimed([a, b, c, d, e, f])
    ledger.take(4)  # a b c d sent
    ledger.answered([b])
    ledger.writing([c])
    ledger.park([d])
    ledger.answered([a])
    ledger.settle([a])  # written: no longer ours
    ledger.leaving([e])  # a release on its way: still ours until it is answered
    assert {j.id for j in ledger.renewal()} == {2, 3, 4, 5, 6}
    assert [ledger.where(n) for n in (2, 3, 4, 5, 6)] == [
        Where.RESULT,
        Where.WRITING,
        Where.PARKED,
        Where.LEAVING,
        Where.BUFFERED,
    ]


def test_a_row_returned_by_a_dead_worker_is_sent_again_first() -> None:
    ledger = Ledger()
    a, b, c = jobs(1, 2, 3)
    ledger.claimed([a, b, c])
    ledger.take(2)
    ledger.rebuffer([a, b])  # queued at a worker that died: never started
    assert [j.id for j in ledger.buffer] == [1, 2, 3]
    assert ledger.count(Where.SENT) == 0 and ledger.count(Where.BUFFERED) == 3


def test_a_row_sent_then_lost_to_a_worker_death_is_released_at_a_stop() -> None:
    ledger = Ledger()
    a, b = jobs(1, 2)
    ledger.claimed([a, b])
    ledger.take(2)
    ledger.answered([a])  # read, result waiting: written, not released
    ledger.rebuffer([b])  # its worker died before starting it
    assert ledger.at_stop() == [b]
    assert ledger.where(2) is Where.LEAVING and ledger.where(1) is Where.RESULT
    ledger.settle([b])  # the release answered: uncharged, no longer ours
    assert {j.id for j in ledger.renewal()} == {1}


def test_at_a_stop_buffered_and_parked_rows_are_released_not_those_at_workers() -> None:
    ledger = Ledger()
    a, b, c, d = jobs(1, 2, 3, 4)
    ledger.claimed([a, b, c, d])
    ledger.take(2)  # a, b at workers
    ledger.park([b])  # a timeout held for its mount's window
    assert {j.id for j in ledger.at_stop()} == {2, 3, 4}
    assert not ledger.buffer and ledger.where(1) is Where.SENT
    # The workers are killed next: what they held is released too, once.
    assert ledger.leaving([a]) == [a]
    assert ledger.count(Where.LEAVING) == 4


def test_a_lost_lease_drops_rows_no_worker_reads_and_keeps_the_others() -> None:
    ledger = Ledger()
    a, b, c, d, e = jobs(1, 2, 3, 4, 5)
    ledger.claimed([a, b, c, d, e])
    ledger.take(2)  # a b at workers
    ledger.answered([b])  # b's result came after the renewal was sent
    ledger.park([e])
    asked = ledger.renewal()
    lost = ledger.leases_lost(asked, renewed={3})
    assert [j.id for j in lost.lost] == [1, 4, 5]  # b has a result: not running any more
    assert [j.id for j in lost.dropped] == [4, 5]  # a is read now: its result will come
    assert {j.id for j in ledger.renewal()} == {1, 2, 3}
    assert [j.id for j in ledger.buffer] == [3]


def test_a_row_lost_meanwhile_is_not_handed_back() -> None:
    ledger = Ledger()
    a, b = jobs(1, 2)
    ledger.claimed([a, b])
    ledger.leases_lost(ledger.renewal(), renewed={1})
    assert ledger.leaving([a, b]) == [a]  # b is another daemon's now
    ledger.answered([b])  # a late answer about it changes nothing
    assert 2 not in ledger


def test_a_dispatch_plan_sends_its_shares_and_keeps_the_rest_in_its_order() -> None:
    ledger = Ledger()
    a, b, c, d = jobs(1, 2, 3, 4)
    ledger.claimed([a, b, c, d])
    ledger.replan([d, b], [a, c])
    assert [j.id for j in ledger.buffer] == [4, 2]
    assert ledger.where(1) is Where.SENT and ledger.where(3) is Where.SENT
    ledger.rebuffer([a])  # its worker was dying: first again
    assert [j.id for j in ledger.buffer] == [1, 4, 2]
