"""The worker pool with real worker processes, no database: which file a worker that dies
or hangs is charged with, when results of fast files come back several at a time."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.errors import FailureClass
from mediad.extract import wire
from mediad.extract.options import ExtractOptions
from mediad.extract.worker import WorkerSettings
from mediad.models import Completion, Failure, Job, Record
from mediad.pool import WorkerPool
from tests.support import fusefs
from tests.support.fusefs import FuseMount
from tests.support.processes import TEST_ENGINE


def _pool(timeout: float = 30) -> WorkerPool:
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 1, timeout_seconds=timeout, max_files_per_worker=0, prefetch=4)
    # As after a run of fast files: the worker holds 4 and answers every 2 (pace.py).
    pool.pace.observe(0.001)
    assert pool.depth() == 4
    return pool


def _run(pool: WorkerPool, jobs: list[Job], until: int) -> tuple[list[Completion], list[Job]]:
    """Send every job to the one worker at once; collect `until` answers (the charged
    ones and the results), and what came back uncharged."""
    completions: list[Completion] = []
    returned: list[Job] = []
    deadline = time.monotonic() + 60
    sent = False
    while len(completions) + len(returned) < until and time.monotonic() < deadline:
        pool.maintain()
        idle = pool.idle()
        if idle and not sent:
            assert pool.dispatch(idle[0], jobs)
            sent = True
        ready, _ = pool.wait(0.2)
        completions += pool.collect(ready) + pool.enforce_timeouts()
        returned += pool.take_returned()
    return completions, returned


@pytest.fixture()
def hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the spawned workers, which inherit this process's sys.path.
    monkeypatch.setenv("MEDIAD_TEST_HOOKS", "1")
    monkeypatch.setenv("MEDIAD_TEST_ENGINE", TEST_ENGINE)


@pytest.mark.parametrize("marker", ["__mediad_crash__", "__mediad_hang__"])
def test_a_worker_holding_finished_results_charges_only_the_file_it_reads(
    marker: str, small_mp4: Path, tmp_path: Path, hooks: None
) -> None:
    """The first file is slow (its result goes back at once, and meanwhile the other two
    reach the worker's pipe); the second is fast, so its result waits in the worker for
    the third's, and the worker dies on (or hangs in) the third. Only the third is
    charged; the second comes back uncharged, to be read again, not failed as a crash.
    (The second is empty: refused in microseconds, fast however loaded the machine.)"""
    paths = []
    for name in ("__mediad_sleep_300ms__a.mp4", "b.mp4", f"{marker}c.mp4"):
        if name == "b.mp4":
            (tmp_path / name).write_bytes(b"")
        else:
            os.link(small_mp4, tmp_path / name)
        paths.append(str(tmp_path / name))
    jobs = [Job(n + 1, path, 1, 7) for n, path in enumerate(paths)]
    pool = _pool(timeout=3)
    try:
        completions, returned = _run(pool, jobs, until=3)
    finally:
        pool.kill_all()
        pool.close()
    charged = [c for c in completions if isinstance(c.outcome, Failure)]
    assert [c.job.id for c in charged] == [3]
    expected = FailureClass.WORKER_CRASH if "crash" in marker else FailureClass.TIMEOUT
    assert charged[0].outcome.failure_class is expected
    assert {c.job.id for c in completions if isinstance(c.outcome, Record)} == {1}
    assert [j.id for j in returned] == [2]  # its result died with the worker


def test_fast_results_come_back_together_and_in_order(small_mp4: Path, tmp_path: Path) -> None:
    paths = []
    for n in range(4):
        os.link(small_mp4, tmp_path / f"f{n}.mp4")
        paths.append(str(tmp_path / f"f{n}.mp4"))
    jobs = [Job(n + 1, path, 1, 7) for n, path in enumerate(paths)]
    pool = _pool()
    try:
        completions, returned = _run(pool, jobs, until=4)
    finally:
        pool.kill_all()
        pool.close()
    assert not returned
    assert [c.job.id for c in completions] == [1, 2, 3, 4]
    assert all(isinstance(c.outcome, Record) for c in completions)


def test_a_worker_that_dies_after_reading_but_before_answering_charges_that_file(
    small_mp4: Path, tmp_path: Path, hooks: None
) -> None:
    """A file whose answer kills the worker (say its record cannot be made) is charged,
    so it runs out of attempts: given back uncharged, it would kill workers forever."""
    os.link(small_mp4, tmp_path / "__mediad_crash_after__b.mp4")
    job = Job(1, str(tmp_path / "__mediad_crash_after__b.mp4"), 1, 7)
    pool = _pool()
    try:
        completions, returned = _run(pool, [job], until=1)
    finally:
        pool.kill_all()
        pool.close()
    assert not returned
    [crashed] = completions
    assert isinstance(crashed.outcome, Failure)
    assert crashed.outcome.failure_class is FailureClass.WORKER_CRASH


def _wait_idle(pool: WorkerPool, deadline: float) -> None:
    while not pool.idle() and time.monotonic() < deadline:
        pool.maintain()
        ready, _ = pool.wait(0.1)
        pool.collect(ready)


@pytest.mark.parametrize("death", ["killed", "timeout"])
def test_a_file_queued_at_workers_that_die_again_and_again_is_never_charged(
    death: str, small_mp4: Path, tmp_path: Path, hooks: None
) -> None:
    """A good file waits behind one that kills its worker (`kill -9`, or a hang killed at
    the timeout), five times over: it comes back uncharged every time, then is read. It
    was never read while those workers died, so no number of deaths makes it guilty."""
    os.link(small_mp4, tmp_path / "good.mp4")
    good = Job(99, str(tmp_path / "good.mp4"), 1, 7)
    pool = _pool(timeout=1 if death == "timeout" else 30)
    charged: list[Completion] = []
    try:
        for n in range(5):
            name = (
                f"__mediad_sleep_60000ms__{n}.mp4"
                if death == "killed"
                else f"__mediad_hang__{n}.mp4"
            )
            os.link(small_mp4, tmp_path / name)
            head = Job(n + 1, str(tmp_path / name), 1, 7)
            deadline = time.monotonic() + 60
            _wait_idle(pool, deadline)
            [slot] = pool.idle()
            assert pool.dispatch(slot, [head, good])
            while slot.reading[0] != head.id and time.monotonic() < deadline:
                time.sleep(0.01)
            if death == "killed":
                os.kill(slot.pid, signal.SIGKILL)
            returned: list[Job] = []
            while not returned and time.monotonic() < deadline:
                ready, _ = pool.wait(0.1)
                charged += pool.collect(ready) + pool.enforce_timeouts()
                returned = pool.take_returned()
            assert returned == [good]
        _wait_idle(pool, time.monotonic() + 60)
        completions, _ = _run(pool, [good], until=1)
    finally:
        pool.kill_all()
        pool.close()
    # Each head was charged (a crash, or a timeout); the good file never was.
    assert sorted(c.job.id for c in charged) == [1, 2, 3, 4, 5]
    expected = FailureClass.WORKER_CRASH if death == "killed" else FailureClass.TIMEOUT
    assert {c.outcome.failure_class for c in charged if isinstance(c.outcome, Failure)} == {
        expected
    }
    [read] = completions
    assert read.job == good and isinstance(read.outcome, Record)


def test_the_worker_publishes_the_device_of_the_file_it_has_opened(
    small_mp4: Path, tmp_path: Path, hooks: None
) -> None:
    """Where a file really is (its st_dev) is known once the worker has opened it, while
    it reads: the mount a hanging read hangs on, whatever the path suggested."""
    os.link(small_mp4, tmp_path / "__mediad_hang_opened__a.mp4")
    job = Job(1, str(tmp_path / "__mediad_hang_opened__a.mp4"), 1, 7)
    pool = _pool()
    try:
        deadline = time.monotonic() + 60
        _wait_idle(pool, deadline)
        [slot] = pool.idle()
        assert slot.reading_device() is None  # between files
        assert pool.dispatch(slot, [job])
        while slot.reading_device() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slot.reading_device() == os.stat(job.path).st_dev
        held = pool.kill_all()
    finally:
        pool.close()
    assert held == [job]


def test_kill_all_waits_for_its_workers_together_and_reaps_them(
    small_mp4: Path, tmp_path: Path, hooks: None
) -> None:
    """Killing every worker waits for them at once, a second at most, and leaves no
    zombie and no stuck process behind when they die as they should."""
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 3, timeout_seconds=30, max_files_per_worker=0)
    events: list[str] = []
    pool.on_event = lambda name, fields: events.append(name)
    try:
        deadline = time.monotonic() + 60
        while len(pool.idle()) < 3 and time.monotonic() < deadline:
            pool.maintain()
            ready, _ = pool.wait(0.1)
            pool.collect(ready)
        jobs = []
        for n, slot in enumerate(pool.idle()):
            os.link(small_mp4, tmp_path / f"__mediad_hang__{n}.mp4")
            jobs.append(Job(n + 1, str(tmp_path / f"__mediad_hang__{n}.mp4"), 1, 7))
            assert pool.dispatch(slot, [jobs[-1]])
        pids = [slot.pid for slot in pool.slots]
        started = time.monotonic()
        held = pool.kill_all()
        took = time.monotonic() - started
    finally:
        pool.close()
    assert sorted(j.id for j in held) == [1, 2, 3]
    assert took < 10  # bounded: never one join per worker without a timeout
    assert pool.stuck() == [] and "left_behind" not in events
    for pid in pids:  # reaped: not even a zombie is left
        assert not Path(f"/proc/{pid}").exists()


@pytest.fixture
def dead_mount(
    small_mp4: Path, tmp_path: Path, fuse_mount: Callable[[Path], FuseMount]
) -> FuseMount:
    """A FUSE mount holding `a.mp4`, whose reads wait until the test releases them."""
    source = tmp_path / "share"
    source.mkdir()
    os.link(small_mp4, source / "a.mp4")
    fs = fuse_mount(source)
    fs.block("a.mp4")
    return fs


def _turn(pool: WorkerPool, completions: list[Completion]) -> None:
    """One turn of the supervisor's loop, as far as the pool goes."""
    pool.maintain()
    ready, _ = pool.wait(0.2)
    completions += pool.collect(ready) + pool.enforce_timeouts()


@pytest.mark.slow
def test_a_worker_killed_in_a_read_of_a_dead_mount_is_stuck_and_not_replaced_past_the_limit(
    dead_mount: FuseMount,
) -> None:
    """Killed at the timeout, a worker held in a read the server never answers outlives
    SIGKILL: it is stuck, never capacity, never waited for; at the limit (here one) no
    worker is forked. When the server answers it dies, is reaped, and is replaced."""
    path = str(dead_mount.path / "a.mp4")
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 1, timeout_seconds=1, max_files_per_worker=0, max_stuck=1)
    pool.mount_of = lambda path, device: "/the/share" if path else None
    events: list[tuple[str, dict[str, Any]]] = []
    pool.on_event = lambda name, fields: events.append((name, fields))
    completions: list[Completion] = []
    suspect: list[set[str]] = []
    try:
        deadline = time.monotonic() + 60
        _wait_idle(pool, deadline)
        [slot] = pool.idle()
        assert pool.dispatch(slot, [Job(1, path, 1, 7)])
        while not pool.stuck() and time.monotonic() < deadline:
            turn_started = time.monotonic()
            _turn(pool, completions)
            # Never held up by the child (the 5 s join it once had, or for good).
            assert time.monotonic() - turn_started < 3
            if completions and not pool.stuck():
                suspect.append(pool.unexited_mounts())
        # Killed, neither gone nor stuck yet: its mount gets nothing more meanwhile.
        assert suspect and all(s == {"/the/share"} for s in suspect)
        assert pool.unexited_mounts() == set()  # stuck now: the mount's stall takes over
        [stuck] = pool.stuck()
        assert (stuck.pid, stuck.path) == (slot.pid, path)
        assert stuck.device == os.stat(path).st_dev  # stat is not blocked, reads are
        assert fusefs.process_state(stuck.pid) == "D"
        [charged] = completions
        assert isinstance(charged.outcome, Failure)
        assert charged.outcome.failure_class is FailureClass.TIMEOUT
        # At the limit: no worker is forked, and saying so once is enough.
        for _ in range(5):
            _turn(pool, completions)
        assert pool.live_count() == 0 and pool.next_start_in() is None
        assert [name for name, _ in events].count("stuck_limit") == 1
        [(_, stuck_event)] = [(n, f) for n, f in events if n == "worker_stuck"]
        assert stuck_event["pid"] == stuck.pid and stuck_event["seconds_since_kill"] >= 3
        dead_mount.release()
        while pool.live_count() == 0 and time.monotonic() < deadline:
            _turn(pool, completions)
        assert pool.stuck() == [] and pool.live_count() == 1
        assert fusefs.process_state(stuck.pid) is None  # reaped: no zombie either
        assert {"stuck_exited", "stuck_limit_cleared"} <= {name for name, _ in events}
    finally:
        pool.kill_all()
        pool.close()


@pytest.mark.slow
def test_a_stuck_worker_is_not_capacity_and_is_replaced_below_the_limit(
    dead_mount: FuseMount,
) -> None:
    """Below the limit, a stuck process is replaced at once: the pool keeps its size in
    workers that can read, whatever is held in the kernel."""
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 1, timeout_seconds=1, max_files_per_worker=0, max_stuck=2)
    completions: list[Completion] = []
    try:
        deadline = time.monotonic() + 60
        _wait_idle(pool, deadline)
        [slot] = pool.idle()
        assert pool.dispatch(slot, [Job(1, str(dead_mount.path / "a.mp4"), 1, 7)])
        while not pool.stuck() and time.monotonic() < deadline:
            _turn(pool, completions)
        _wait_idle(pool, deadline)
        [replacement] = pool.idle()
        assert replacement.pid != slot.pid and pool.stuck_count() == 1
        assert not pool.at_stuck_limit()
        assert fusefs.process_state(slot.pid) == "D"
        dead_mount.release()
        while pool.stuck() and time.monotonic() < deadline:
            _turn(pool, completions)
        assert fusefs.process_state(slot.pid) is None
    finally:
        pool.kill_all()
        pool.close()


@pytest.mark.slow
def test_at_the_stuck_limit_the_last_worker_is_not_recycled(
    dead_mount: FuseMount, small_mp4: Path
) -> None:
    """Recycling (max_files_per_worker) retires a worker for a fresh one; while stuck
    processes hold back forking there would be no fresh one, and local files would wait
    for the dead mount. The worker stays until forking is allowed again."""
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 2, timeout_seconds=1, max_files_per_worker=3, max_stuck=1)
    completions: list[Completion] = []
    try:
        deadline = time.monotonic() + 60
        while len(pool.idle()) < 2 and time.monotonic() < deadline:
            _turn(pool, completions)
        first, second = pool.idle()
        assert pool.dispatch(first, [Job(1, str(dead_mount.path / "a.mp4"), 1, 7)])
        while not pool.at_stuck_limit() and time.monotonic() < deadline:
            _turn(pool, completions)
        assert pool.at_stuck_limit()
        for n in range(2, 12):
            while not pool.idle() and time.monotonic() < deadline:
                _turn(pool, completions)
            [idle] = pool.idle()
            assert idle.pid == second.pid and pool.dispatch(idle, [Job(n, str(small_mp4), 1, 7)])
        while len(completions) < 11 and time.monotonic() < deadline:
            _turn(pool, completions)
        assert sorted(c.job.id for c in completions) == list(range(1, 12))
        assert [s.pid for s in pool.slots] == [second.pid] and not second.retiring
    finally:
        dead_mount.release()
        pool.kill_all()
        pool.close()


@pytest.mark.slow
def test_closing_with_a_stuck_worker_leaves_it_behind_and_does_not_wait(
    dead_mount: FuseMount,
) -> None:
    """Stopping with a worker held by a dead mount: kill_all waits a second at most,
    close leaves the process out of multiprocessing's exit-time join (which has no
    timeout), and says so. The process dies once the server answers."""
    path = str(dead_mount.path / "a.mp4")
    settings = WorkerSettings(
        ExtractOptions(), memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 1, timeout_seconds=600, max_files_per_worker=0)
    events: list[tuple[str, dict[str, Any]]] = []
    pool.on_event = lambda name, fields: events.append((name, fields))
    try:
        deadline = time.monotonic() + 60
        _wait_idle(pool, deadline)
        [slot] = pool.idle()
        assert pool.dispatch(slot, [Job(1, path, 1, 7)])
        while ("read", "a.mp4") not in dead_mount.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        held = pool.kill_all()
        pool.close()
        took = time.monotonic() - started
    finally:
        pool.close()
    assert [job.id for job in held] == [1]
    assert took < 2
    assert fusefs.process_state(slot.pid) == "D"
    assert slot.process not in multiprocessing.active_children()
    [left] = [fields for name, fields in events if name == "left_behind"]
    assert (left["processes"], left["pids"], left["paths"]) == (1, [slot.pid], [path])
    dead_mount.release()
    # Its parent here: reap it, as init would once mediad has exited.
    assert os.waitpid(slot.pid, 0)[0] == slot.pid


class _TooLargeToSend:
    """A result whose pickling runs out of memory, as a huge one would under the limit."""

    seconds = 0.25

    def __reduce__(self) -> tuple[Any, ...]:
        raise MemoryError


def test_an_answer_too_large_to_send_fails_its_own_file_and_the_worker_goes_on() -> None:
    """Dying while sending would give every file held back uncharged, and the file with
    the huge answer would be read, and kill a worker, forever: it fails alone instead."""
    ours, theirs = multiprocessing.Pipe()
    fine = Failure(FailureClass.CORRUPT, "a small answer")
    wire.answer(theirs, [(1, fine), (2, _TooLargeToSend()), (3, fine)])
    answers = [item for _ in range(3) for item in wire.receive(ours)[1]]
    assert [job_id for job_id, _ in answers] == [1, 2, 3]
    assert answers[0][1] == fine and answers[2][1] == fine
    failure = answers[1][1]
    assert isinstance(failure, Failure)
    assert failure.failure_class is FailureClass.OUT_OF_MEMORY and failure.seconds == 0.25
    assert not ours.poll()
