"""Pauses in the database (migrations 0009 and 0010): the claim leaves paused rows alone, charges
nothing, walks none of the marked rows; lifting and expiring clear the marks no other
pause covers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg

from mediad.daemon.requests import ReadPauses
from mediad.db import intake, pauses
from mediad.db.connection import Database
from mediad.db.queue import Queue
from mediad.models import ScanEntry

SQL = Callable[..., list[tuple[Any, ...]]]


def fill(db: Database) -> None:
    intake.enqueue(db, [f"/nas/a/{i}.mkv" for i in range(5)])
    intake.enqueue(db, [f"/nas/b/{i}.mkv" for i in range(5)])
    intake.enqueue(db, [f"/nasty/{i}.mkv" for i in range(5)])  # not under /nas


def claimed_under(queue: Queue, prefix: str) -> int:
    return sum(1 for job in queue.claim(100, 30) if job.path.startswith(prefix))


def marked(sql: SQL, schema: str) -> set[str]:
    return {r[0] for r in sql(f'SELECT path FROM "{schema}".files WHERE paused')}


def test_the_claim_leaves_a_paused_prefix_alone_marked_or_not(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    fill(db)
    pauses.pause(db, "/nas", None, "test")
    # Not marked yet (as between the pause and its marking): the claim's filter holds,
    # and the claim, short of its limit, marks the paused rows it walked past.
    assert claimed_under(queue, "/nas/") == 0
    assert marked(sql, schema) == {f"/nas/{d}/{i}.mkv" for d in "ab" for i in range(5)}
    sql(f"UPDATE \"{schema}\".files SET state = 'pending', attempts = 0 WHERE path ^@ '/nasty'")
    assert pauses.mark(db, "/nas") == 0
    jobs = queue.claim(100, 30)
    assert sorted(j.path for j in jobs) == sorted(f"/nasty/{i}.mkv" for i in range(5))
    attempts = sql(f"SELECT DISTINCT attempts FROM \"{schema}\".files WHERE path ^@ '/nas/'")
    assert attempts == [(0,)]


def test_a_pause_of_everything_claims_nothing_and_resume_claims_again(
    db: Database, queue: Queue
) -> None:
    fill(db)
    pauses.pause(db, None, None, "test")
    assert queue.claim(100, 30) == []
    assert pauses.lift(db, None, every=True) == 1
    assert len(queue.claim(100, 30)) == 15


def test_lifting_one_pause_keeps_the_marks_another_covers(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    fill(db)
    pauses.pause(db, "/nas", None, "test")
    pauses.pause(db, "/nas/b", None, "test")
    pauses.mark(db, "/nas")
    assert pauses.lift(db, "/nas", every=False) == 1
    assert marked(sql, schema) == {f"/nas/b/{i}.mkv" for i in range(5)}
    assert sorted({j.path.rsplit("/", 1)[0] for j in queue.claim(100, 30)}) == [
        "/nas/a",
        "/nasty",
    ]
    assert pauses.lift(db, "/nas", every=False) == 0


def test_a_pause_ends_at_its_time_and_expiring_clears_its_marks(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    fill(db)
    now = sql("SELECT now()")[0][0]
    pauses.pause(db, "/nas", now + timedelta(hours=1), "test")
    pauses.mark(db, "/nas")
    sql(f"UPDATE \"{schema}\".pauses SET until = now() - interval '1 second'")
    [seen] = pauses.pauses(db)
    assert seen.expired and pauses.active(db) == []
    # Over by the database's clock; its marked rows wait for expire(), which any daemon
    # runs when it sees a pause over.
    assert claimed_under(queue, "/nas/") == 0
    sql(f"UPDATE \"{schema}\".files SET state = 'pending', attempts = 0")
    assert pauses.expire(db) == 1
    assert marked(sql, schema) == set()
    assert len(queue.claim(100, 30)) == 15


def test_pausing_a_prefix_again_keeps_since_and_changes_until(db: Database, sql: SQL) -> None:
    first = pauses.pause(db, "/nas", None, "one")
    now = sql("SELECT now()")[0][0]
    again = pauses.pause(db, "/nas", now + timedelta(hours=2), "two")
    assert again.since == first.since and again.until == now + timedelta(hours=2)
    [seen] = pauses.active(db)
    assert seen.set_by == "two" and seen.ends_in_s is not None and seen.ends_in_s > 7000


def test_the_claim_walks_the_index_of_unmarked_rows(sql: SQL, schema: str, db: Database) -> None:
    sql(f'ANALYZE "{schema}".files')
    [(config,)] = sql(
        "SELECT proconfig FROM pg_proc WHERE proname = 'claim' AND pronamespace = %s::regnamespace",
        [schema],
    )
    sql("BEGIN")
    for setting in config:
        name, value = setting.split("=")
        sql(f"SET LOCAL {name} = {value}")
    plan = "\n".join(
        r[0]
        for r in sql(
            f"EXPLAIN SELECT id FROM \"{schema}\".files WHERE state = 'pending' "
            "AND NOT paused AND run_after <= now() "
            "ORDER BY (-priority::bigint), run_after, id LIMIT 50 FOR UPDATE SKIP LOCKED"
        )
    )
    sql("ROLLBACK")
    assert "Index Scan using files_claim_ready_idx" in plan and "Sort" not in plan, plan


def test_paths_queued_during_a_pause_are_marked_as_they_come(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """A scan or an enqueue during a pause: its rows under the prefix are queued marked,
    out of the claim's index, as `mediad pause` marked those already there."""
    pauses.pause(db, "/nas", None, "test")
    intake.enqueue(db, [f"/nas/c/{i}.mkv" for i in range(20)] + ["/nasty/x.mkv"])
    entries = [ScanEntry(f"/nas/d/{i}.mkv", 1, 1) for i in range(20)]
    intake.scan_upsert(db, [*entries, ScanEntry("/nasty/y.mkv", 1, 1)])
    assert marked(sql, schema) == {f"/nas/{d}/{i}.mkv" for d in "cd" for i in range(20)}
    assert sorted(j.path for j in queue.claim(100, 30)) == ["/nasty/x.mkv", "/nasty/y.mkv"]
    assert pauses.lift(db, "/nas", every=False) == 1
    assert marked(sql, schema) == set()


def test_rows_queued_again_under_a_pause_are_marked_by_the_claims_that_find_little(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """Rows that become pending under a paused prefix another way (`retry`, rows a daemon
    gives back): a claim that fills its limit leaves them (it did not walk them all), the
    next one that comes back short marks them, so later claims walk past none."""
    fill(db)
    intake.enqueue(db, [f"/nas/c/{i}.mkv" for i in range(30)])
    sql(f"UPDATE \"{schema}\".files SET state = 'failed' WHERE path ^@ '/nas/c/'")
    pauses.pause(db, "/nas", None, "test")
    pauses.mark(db, "/nas")
    assert intake.retry_failed(db, None) == 30
    unmarked = f"SELECT count(*) FROM \"{schema}\".files WHERE path ^@ '/nas/c/' AND NOT paused"
    assert sql(unmarked) == [(30,)]
    assert len(queue.claim(2, 30)) == 2
    assert sql(unmarked) == [(30,)]
    assert len(queue.claim(100, 30)) == 3
    assert sql(unmarked) == [(0,)]
    attempts = sql(f"SELECT DISTINCT attempts FROM \"{schema}\".files WHERE path ^@ '/nas/'")
    assert attempts == [(0,)]
    assert pauses.lift(db, "/nas", every=False) == 1
    assert len(queue.claim(100, 30)) == 40


def test_marks_that_outlive_every_prefix_pause_are_cleared_when_a_daemon_reads_them(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """A claim or a scan batch that marked rows from a view of the pauses that a resume
    then overtook: the lift could not see those marks. The daemon's next read of the
    pauses clears them, and the rows are claimed again."""
    fill(db)
    pauses.pause(db, "/nas", None, "test")
    pauses.mark(db, "/nas")
    sql(f'DELETE FROM "{schema}".pauses')  # lifted, its marks left behind by a race
    assert len(marked(sql, schema)) == 10
    assert sorted({j.path.rsplit("/", 1)[0] for j in queue.claim(100, 30)}) == ["/nasty"]
    assert ReadPauses().run(queue) == []
    assert marked(sql, schema) == set()
    assert len(queue.claim(100, 30)) == 10


def test_marks_stay_while_a_prefix_pause_is_in_force(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    fill(db)
    pauses.pause(db, "/nas", None, "test")
    pauses.mark(db, "/nas")
    assert [p.prefix for p in ReadPauses().run(queue)] == ["/nas"]
    assert len(marked(sql, schema)) == 10


def test_a_daemon_expiring_a_pause_another_is_expiring_does_not_wait_for_it(
    db: Database, test_dsn: str, sql: SQL, schema: str
) -> None:
    """Every daemon expires a pause at its time; while one holds the row (clearing a large
    pause's marks), the others go on at once: their database thread renews leases too."""
    fill(db)
    now = sql("SELECT now()")[0][0]
    pauses.pause(db, "/nas", now + timedelta(hours=1), "test")
    sql(f"UPDATE \"{schema}\".pauses SET until = now() - interval '1 second'")
    with psycopg.connect(test_dsn) as first:
        first.execute(f'SELECT id FROM "{schema}".pauses FOR UPDATE')  # expiring it now
        sql("SET statement_timeout = '2s'")  # a wait on the row would end in an error
        try:
            assert sql(f'SELECT "{schema}".pause_expire()') == [(0,)]
        finally:
            sql("SET statement_timeout = 0")
        first.rollback()
    assert pauses.expire(db) == 1


def fill_other(db: Database) -> set[str]:
    """Rows under /other, paused and marked: the pause that stays in force."""
    paths = [f"/other/{i}.mkv" for i in range(4)]
    intake.enqueue(db, paths)
    pauses.pause(db, "/other", None, "test")
    pauses.mark(db, "/other")
    return set(paths)


def nas_claimable(queue: Queue) -> list[str]:
    return sorted(j.path for j in queue.claim(100, 30) if j.path.startswith("/nas/"))


NAS = sorted(f"/nas/{d}/{i}.mkv" for d in "ab" for i in range(5))


def test_a_pause_resumed_before_its_marking_marks_nothing_while_another_stays(
    db: Database, queue: Queue, sql: SQL, schema: str
) -> None:
    """`pause --prefix` commits the pause, then marks in a transaction of its own: a resume
    in between must not be followed by marks nothing would clear while /other is paused."""
    fill(db)
    other = fill_other(db)
    pauses.pause(db, "/nas", None, "test")
    assert pauses.lift(db, "/nas", every=False) == 1
    assert pauses.mark(db, "/nas") == 0  # the marking, from its view before the resume
    assert marked(sql, schema) == other
    assert [p.prefix for p in pauses.active(db)] == ["/other"]
    assert nas_claimable(queue) == NAS


def test_marks_from_a_view_a_resume_overtook_are_never_left_while_another_pause_stays(
    db: Database, queue: Queue, sql: SQL, schema: str, test_dsn: str
) -> None:
    """The resume of /nas is committed between a claim's (and an enqueue's) read of the
    pauses and their commit: what they mark under /nas from that older view must not keep
    the rows out of the claim while /other stays paused."""
    fill(db)
    other = fill_other(db)
    pauses.pause(db, "/nas", None, "test")  # not marked yet: the claims will mark
    with psycopg.connect(test_dsn) as resume:
        resume.execute(f"SELECT \"{schema}\".pause_lift('/nas', false)")  # not committed
        # Both still see /nas paused, and commit after the resume does.
        assert nas_claimable(queue) == []
        intake.enqueue(db, ["/nas/c/0.mkv"])
        resume.commit()
    assert [p.prefix for p in pauses.active(db)] == ["/other"]
    assert marked(sql, schema) == other
    assert nas_claimable(queue) == [*NAS, "/nas/c/0.mkv"]


def test_a_resume_waits_for_a_claim_marking_under_its_pause_and_clears_those_marks(
    db: Database, queue: Queue, sql: SQL, schema: str, test_dsn: str
) -> None:
    """A claim marks rows under /nas and has not committed when the resume of /nas runs:
    the resume cannot see those marks yet, so it waits for the claim, then clears them,
    while /other stays paused."""
    fill(db)
    other = fill_other(db)
    pauses.pause(db, "/nas", None, "test")
    lifted: list[int] = []
    with psycopg.connect(test_dsn) as claim:
        [(claimed,)] = claim.execute(
            f"SELECT count(*) FROM \"{schema}\".claim(100, 'other-daemon', 30, false)"
        ).fetchall()
        assert claimed == 5  # /nasty only: short of its limit, it marked the /nas rows
        resume = threading.Thread(target=lambda: lifted.append(pauses.lift(db, "/nas", False)))
        resume.start()
        wait_until(lambda: bool(lifted) or lock_waits(sql, "pause_lift") > 0)
        claim.commit()
    resume.join(timeout=30)
    assert lifted == [1]
    assert marked(sql, schema) == other
    assert nas_claimable(queue) == NAS


def lock_waits(sql: SQL, text: str) -> int:
    """Backends waiting on a lock in a statement containing `text`."""
    [(n,)] = sql(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid() AND position(%s IN query) > 0",
        [text],
    )
    return int(n)


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
