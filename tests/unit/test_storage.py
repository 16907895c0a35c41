"""Storage decisions without a process or a database: which file may go to which worker,
when a timeout is held back, given back or written, and when a stalled mount is probed.
Every time is an explicit number; probes are stand-ins that answer as told."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mediad.daemon.plan import Plan, plan_dispatch
from mediad.daemon.storage import Storage, StorageSettings
from mediad.errors import FailureClass
from mediad.models import Completion, Failure, Job
from mediad.mounts import Mount, MountTable

ROOT = Mount("/", "ext4", "/dev/sda1", os.makedev(8, 1))
DATA = Mount("/data", "xfs", "/dev/sdb1", os.makedev(8, 17))
NAS = Mount("/mnt/nas", "nfs4", "nas:/media", os.makedev(0, 40))
SSHFS = Mount("/mnt/ssh", "fuse.sshfs", "me@host:/", os.makedev(0, 41))
TABLE = MountTable([ROOT, DATA, NAS, SSHFS])


def jobs(mount: Mount, count: int, first: int) -> list[Job]:
    return [Job(first + i, f"{mount.point}/f{first + i}.mkv", 1, first + i) for i in range(count)]


def plan(
    buffer: Sequence[Job],
    rooms: Sequence[int],
    queues: Sequence[Sequence[Job]] | None = None,
    *,
    busy: Sequence[Sequence[Job]] = (),
    stalled: frozenset[str] = frozenset(),
    budget: int = 100,
    overrides: dict[str, int] | None = None,
    pool_size: int | None = None,
    more_unclaimed: bool = False,
) -> Plan:
    return plan_dispatch(
        buffer,
        rooms,
        queues if queues is not None else [[] for _ in rooms],
        busy,
        lambda job: TABLE.for_path(job.path),
        pool_size=pool_size if pool_size is not None else len(rooms) + len(busy),
        stalled=set(stalled),
        network_budget=budget,
        overrides=overrides or {},
        more_unclaimed=more_unclaimed,
    )


def mounts_of(share: Sequence[Job]) -> set[str]:
    return {TABLE.for_path(job.path).point for job in share}


# --- dispatch ---------------------------------------------------------------------------


def test_local_files_are_spread_over_every_worker_as_before() -> None:
    result = plan(jobs(DATA, 8, 1), [2, 2, 2, 2])
    assert [len(share) for share in result.shares] == [2, 2, 2, 2]
    assert [job.id for job in result.shares[0]] == [1, 5]  # one at a time, in turn
    assert result.left == [] and result.blocked_mounts == set()


def test_a_network_mount_takes_half_the_workers_while_local_files_wait() -> None:
    buffer = jobs(NAS, 20, 1) + jobs(DATA, 20, 100)
    result = plan(buffer, [4, 4, 4, 4])
    on_nas = [share for share in result.shares if mounts_of(share) == {"/mnt/nas"}]
    assert len(on_nas) == 2
    # Never mixed: a worker holds the NAS's files or the others', not both.
    assert all(len(mounts_of(share)) == 1 for share in result.shares)
    assert sum(len(share) for share in result.shares) == 16


def test_a_network_mount_alone_may_use_every_worker() -> None:
    result = plan(jobs(NAS, 20, 1), [4, 4, 4, 4])
    assert all(mounts_of(share) == {"/mnt/nas"} for share in result.shares)


def test_a_local_file_never_goes_to_a_worker_holding_a_network_file() -> None:
    held_nas = jobs(NAS, 1, 500)
    result = plan(jobs(DATA, 6, 1), [3, 3], [held_nas, []])
    assert result.shares[0] == []
    assert [job.id for job in result.shares[1]] == [1, 2, 3]
    assert len(result.left) == 3


def test_a_worker_on_a_mount_takes_more_of_it_without_using_more_of_the_cap() -> None:
    # 4 workers, half for the NAS while local files wait; two already hold NAS files.
    busy = [jobs(NAS, 1, 500), jobs(NAS, 1, 501)]
    result = plan(jobs(NAS, 4, 1) + jobs(DATA, 4, 100), [2, 2], busy=busy)
    assert all(
        mounts_of(share) == {"/"} or mounts_of(share) == {"/data"} for share in result.shares
    )
    assert mounts_of(result.left) == {"/mnt/nas"} and result.blocked_mounts == {"/mnt/nas"}
    # The same, with one of them able to take more: the NAS files go there.
    result = plan(jobs(NAS, 2, 1) + jobs(DATA, 2, 100), [2, 2], [jobs(NAS, 1, 500), []])
    assert [job.id for job in result.shares[0]] == [1, 2]
    assert [job.id for job in result.shares[1]] == [100, 101]


def test_a_configured_cap_holds_with_no_competition() -> None:
    result = plan(jobs(NAS, 10, 1), [2, 2, 2], overrides={"/mnt/nas": 1})
    assert [len(share) for share in result.shares].count(0) == 2
    # A local mount can be capped too, and is then kept apart like a network one.
    result = plan(jobs(DATA, 6, 1) + jobs(ROOT, 2, 50), [2, 2, 2], overrides={"/data": 1})
    assert sorted(len(mounts_of(s)) for s in result.shares) == [1, 1, 1]
    assert sum(1 for s in result.shares if mounts_of(s) == {"/data"}) == 1


def test_a_stalled_mount_and_an_exhausted_stuck_budget_dispatch_nothing_there() -> None:
    buffer = jobs(NAS, 4, 1) + jobs(SSHFS, 4, 50) + jobs(DATA, 2, 100)
    result = plan(buffer, [4, 4], stalled=frozenset({"/mnt/nas"}))
    assert mounts_of(result.left) >= {"/mnt/nas"}
    assert "/mnt/nas" not in set().union(*(mounts_of(s) for s in result.shares))
    result = plan(buffer, [4, 4], budget=0)
    assert set().union(*(mounts_of(s) for s in result.shares)) == {"/data"}
    assert result.blocked_mounts == {"/mnt/nas", "/mnt/ssh"}
    # One stuck process still allowed: one worker at most holds network files.
    result = plan(buffer, [4, 4, 4], budget=1)
    network = [s for s in result.shares if mounts_of(s) & {"/mnt/nas", "/mnt/ssh"}]
    assert len(network) == 1


# --- timeouts, stalls, probes -----------------------------------------------------------


class FakeProbe:
    def __init__(self, point: str, path: str, deadline: float) -> None:
        self.point, self.path, self.deadline = point, path, deadline
        self.status = "running"
        self.error = ""
        self.gone = False

    def poll(self) -> str:
        return self.status

    def mount_answered(self) -> bool:
        return self.status == "ok"

    def kill(self) -> None:
        self.status = "timed_out"

    def is_stuck(self) -> bool:
        return self.status == "timed_out" and not self.gone

    def reap(self) -> bool:
        return self.gone


class Probes:
    def __init__(self) -> None:
        self.started: list[FakeProbe] = []

    def __call__(self, point: str, path: str, deadline: float) -> FakeProbe:
        probe = FakeProbe(point, path, deadline)
        self.started.append(probe)
        return probe


def storage(probes: Probes | None = None, timeouts: int = 2) -> Storage:
    settings = StorageSettings(timeouts, 30.0, 2.0, {})
    return Storage(settings, read_table=lambda: TABLE, start_probe=probes or Probes())


def timeout(job: Job) -> Completion:
    return Completion(job, Failure(FailureClass.TIMEOUT, "no result after 3 s"), 1)


def always() -> bool:
    return True


def test_a_timeout_on_a_network_mount_is_held_until_the_window_decides() -> None:
    s = storage()
    [nas] = jobs(NAS, 1, 1)
    [local] = jobs(DATA, 1, 2)
    assert not s.timed_out(timeout(local), None, 10.0)  # a local file's own timeout
    assert s.timed_out(timeout(nas), None, 10.0)
    assert s.holding()
    assert s.tick(39.9, always).write == []
    assert s.next_due_in(39.9) is not None
    result = s.tick(40.0, always)  # the window passed without a stall: it was the file
    assert [c.job for c in result.write] == [nas] and result.give_back == []
    assert not s.holding() and s.stalled() == set()


def test_a_second_timeout_in_the_window_stalls_the_mount_and_gives_both_back() -> None:
    s = storage()
    first, second, third = jobs(NAS, 3, 1)
    s.timed_out(timeout(first), None, 10.0)
    s.timed_out(timeout(second), None, 20.0)
    assert s.stalled() == {"/mnt/nas"} and s.skip_prefixes() == ["/mnt/nas/"]
    result = s.tick(20.0, always)
    assert result.give_back == [first, second] and result.write == []
    # Later timeouts there are the mount's too: given back, never held or written.
    assert s.timed_out(timeout(third), None, 25.0)
    assert s.tick(25.0, always).give_back == [third]
    assert s.tick(100.0, always).write == []
    # Rows given back are due about when the mount is probed next, never at once.
    assert s.give_back_delay(20.0) == 2.0


def test_the_device_a_worker_reports_wins_over_the_path() -> None:
    s = storage()
    # A symlink from the local disk into the NAS: the path says local, the device NAS.
    job = Job(1, "/data/link-to-nas.mkv", 1, 1)
    assert s.assign(job) == DATA
    assert s.timed_out(timeout(job), NAS.device, 10.0)
    assert s.mount_of(job) == NAS


def test_a_stalled_mount_is_probed_and_resumes_when_it_answers() -> None:
    probes = Probes()
    s = storage(probes)
    a, b = jobs(NAS, 2, 1)
    s.timed_out(timeout(a), None, 10.0)
    s.timed_out(timeout(b), None, 11.0)
    s.tick(11.0, always)
    assert s.tick(12.9, always) and probes.started == []  # first probe one interval later
    s.tick(13.0, lambda: False)  # the stuck limit allows no other process
    assert probes.started == []
    s.tick(13.0, always)
    [probe] = probes.started
    assert (probe.point, probe.path) == ("/mnt/nas", b.path)
    assert s.probes_unexited() == 1
    s.tick(14.0, always)  # still running: no second probe for the mount
    assert len(probes.started) == 1
    probe.kill()  # past its deadline, and it does not go: stuck
    assert not s.tick(14.5, always).resumed
    assert s.probes_stuck() == ["/mnt/nas"] and s.stalled() == {"/mnt/nas"}
    s.tick(17.0, always)  # the stuck probe still holds the mount's one probe
    assert len(probes.started) == 1
    probe.gone = True
    s.tick(17.0, always)
    [_, second] = probes.started
    second.status = "ok"
    result = s.tick(18.0, always)
    assert result.resumed and s.stalled() == set() and s.skip_prefixes() == []
    assert s.report([], [], 18.0)[0].timeouts_recent == 0


def test_held_results_are_released_on_stop() -> None:
    s = storage(timeouts=3)
    a, b = jobs(NAS, 2, 1)
    s.timed_out(timeout(a), None, 10.0)
    s.timed_out(timeout(b), None, 11.0)
    assert s.take_held() == [a, b] and not s.holding()


def test_rows_a_stalled_mount_could_not_give_back_yet_are_released_on_stop() -> None:
    """The database was away when the mount stalled: the rows wait to be given back. A
    one-shot run must not end, nor a stop leave them to their leases (charged then)."""
    s = storage()
    first, second = jobs(NAS, 2, 1)
    s.timed_out(timeout(first), None, 10.0)
    s.timed_out(timeout(second), None, 20.0)
    assert s.tick(20.0, always, give_back=False).give_back == []
    assert s.holding()
    assert s.take_held() == [first, second] and not s.holding()


def test_paused_rows_a_give_back_failed_to_return_come_back_as_paused_not_stalled() -> None:
    """Paused rows are no mount's: they wait apart, and the tick hands them back as paused
    once the database can take them; a stop releases them like the others."""
    s = storage()
    paused = jobs(DATA, 2, 1)
    assert s.tick(10.0, always).give_back_paused == [] and s.quiet(10.1)
    s.retry_give_back(paused, paused=True)
    assert s.holding() and not s.quiet(10.1)  # the tick has work: it must run
    assert s.tick(10.2, always, give_back=False).give_back_paused == []
    result = s.tick(11.0, always)
    assert result.give_back_paused == paused and result.give_back == []
    assert not s.holding()
    s.retry_give_back(paused, paused=True)
    assert s.take_held() == paused and not s.holding()


def test_the_report_names_each_mount_its_files_stuck_processes_and_timeouts() -> None:
    s = storage()
    nas, local = jobs(NAS, 3, 1), jobs(DATA, 2, 10)
    for job in nas + local:
        s.assign(job)
    s.timed_out(timeout(nas[0]), None, 5.0)
    report = {m.mount: m for m in s.report(nas[1:] + local, ["/mnt/nas", None], 6.0)}
    assert set(report) == {"/mnt/nas", "/data"}
    assert (report["/mnt/nas"].state, report["/mnt/nas"].in_flight) == ("ok", 2)
    assert (report["/mnt/nas"].stuck, report["/mnt/nas"].timeouts_recent) == (1, 1)
    assert (report["/data"].fstype, report["/data"].in_flight) == ("xfs", 2)
    s.timed_out(timeout(nas[1]), None, 7.0)
    assert {m.mount: m.state for m in s.report([], [], 8.0)}["/mnt/nas"] == "stalled"


def test_rows_waiting_for_a_capped_or_stalled_mount_do_not_fill_the_buffer() -> None:
    s = storage()
    local, nas = jobs(DATA, 3, 1), jobs(NAS, 50, 100)
    for job in local + nas:
        s.assign(job)
    assert s.counted_toward_full(local, 4) == 3
    assert s.counted_toward_full(local + nas, 4) == 7
    s.timed_out(timeout(nas[0]), None, 1.0)
    s.timed_out(timeout(nas[1]), None, 2.0)
    assert s.counted_toward_full(local + nas, 4) == 3


def test_an_unreadable_mount_table_makes_every_file_local() -> None:
    def broken() -> MountTable:
        raise PermissionError("no /proc")

    s = Storage(StorageSettings(2, 30.0, 2.0), read_table=broken, start_probe=Probes())
    [job] = jobs(NAS, 1, 1)
    assert s.assign(job).point == "/" and s.plain()


def test_a_mount_whose_timeouts_left_the_stuck_limit_reached_stalls_at_once() -> None:
    s = storage(timeouts=5)
    [a] = jobs(NAS, 1, 1)
    s.timed_out(timeout(a), None, 10.0)
    s.stall_stuck([None, "/data"], 11.0)  # not a mount with timeouts: nothing to say
    assert s.stalled() == set()
    s.stall_stuck(["/mnt/nas"], 11.0)
    assert s.stalled() == {"/mnt/nas"} and s.tick(11.0, always).give_back == [a]


def test_a_cap_set_by_a_reload_applies_to_a_mount_already_seen() -> None:
    s = storage()
    [job] = jobs(DATA, 1, 1)
    s.assign(job)
    assert s.plain()
    s.reconfigure(StorageSettings(2, 30.0, 2.0, {"/data": 1}))
    assert not s.plain()


def test_rows_of_a_stalled_mount_are_no_competition_for_another() -> None:
    buffer = jobs(NAS, 4, 1) + jobs(SSHFS, 8, 50)
    result = plan(buffer, [2, 2, 2, 2], stalled=frozenset({"/mnt/nas"}))
    assert sum(1 for s in result.shares if mounts_of(s) == {"/mnt/ssh"}) == 4


def test_a_network_mount_keeps_to_its_share_while_unclaimed_rows_may_be_elsewhere() -> None:
    result = plan(jobs(NAS, 20, 1), [4, 4, 4, 4], more_unclaimed=True)
    assert sum(1 for s in result.shares if s) == 2


def test_a_buffer_of_one_network_mount_is_told_apart() -> None:
    s = storage()
    assert s.one_network_mount(jobs(NAS, 3, 1))
    assert not s.one_network_mount(jobs(NAS, 3, 1) + jobs(SSHFS, 1, 10))
    assert not s.one_network_mount(jobs(NAS, 3, 1) + jobs(DATA, 1, 10))
    assert not s.one_network_mount([])
