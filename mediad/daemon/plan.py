"""Which buffered files may go to which worker now, mount by mount (mediad/daemon/storage.py
says why the caps exist). Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mediad.daemon.mounts import worker_cap
from mediad.models import Job
from mediad.mounts import Mount


@dataclass
class Plan:
    """Files for each accepting worker (in the order given), and the buffer left."""

    shares: list[list[Job]]
    left: list[Job]
    blocked_mounts: set[str]  # mounts whose files wait for a cap, a stall or the limit


def plan_dispatch(
    buffer: Iterable[Job],
    rooms: Sequence[int],
    queues: Sequence[Sequence[Job]],
    busy_elsewhere: Iterable[Sequence[Job]],
    mount_of: Callable[[Job], Mount],
    *,
    pool_size: int,
    stalled: set[str],
    network_budget: int,
    overrides: dict[str, int],
    more_unclaimed: bool = False,
) -> Plan:
    """Share the buffer out one file at a time, the least loaded worker first.

    `rooms` and `queues`: the workers that can take files (what each may still take, and
    what it holds); `busy_elsewhere`: the queues of the other workers, which count toward
    the caps. `network_budget`: how many workers may hold network-mount files at all (the
    stuck processes still allowed: each of them may become one). `more_unclaimed`: the
    database may hold due rows not claimed yet (the last claim was full and the buffer
    has room): they may be on other mounts, so a network mount is held to its share until
    they are seen, or it is known there are none.

    A capped mount (network, or named by a `[mounts."..."]` table) binds the worker that
    holds one of its files: that worker gets only more files of the same mount, so a file
    elsewhere never waits behind a read that may never return, and the mount's share of
    the workers is the number of workers bound to it."""
    jobs = list(buffer)
    rooms = list(rooms)
    shares: list[list[Job]] = [[] for _ in rooms]

    def capped(mount: Mount) -> bool:
        return mount.network or mount.point in overrides

    bound: list[Mount | None] = []
    workers_on: Counter[str] = Counter()
    network_workers = 0
    for queue in [*queues, *busy_elsewhere]:
        mount = next((m for m in map(mount_of, queue) if capped(m)), None)
        if mount is not None:
            workers_on[mount.point] += 1
            network_workers += mount.network
        if len(bound) < len(queues):
            bound.append(mount)
    mounts = [mount_of(job) for job in jobs]
    # Rows of a stalled mount cannot run: they are no competition for another mount.
    waiting = Counter(m.point for m in mounts if m.point not in stalled)
    left: list[Job] = []
    blocked: set[str] = set()
    n = 0
    for index, (job, mount) in enumerate(zip(jobs, mounts, strict=True)):
        if not any(rooms):
            left.extend(jobs[index:])
            break
        slot: int | None = None
        order = [(n + i) % len(rooms) for i in range(len(rooms))]
        if mount.point in stalled or mount.point in blocked:
            # Rooms only shrink within a plan: a mount refused once is refused again.
            # (A cap that rises as other mounts' rows are placed applies at the next turn.)
            pass
        elif not capped(mount):
            slot = next((i for i in order if rooms[i] and bound[i] is None), None)
        else:
            # A worker already on this mount first: it costs no more of the cap.
            slot = next((i for i in order if rooms[i] and bound[i] == mount), None)
            others = more_unclaimed or any(
                c > 0 for point, c in waiting.items() if point != mount.point
            )
            cap = worker_cap(mount, pool_size, others, overrides.get(mount.point))
            budget_left = not mount.network or network_workers < network_budget
            if slot is None and workers_on[mount.point] < cap and budget_left:
                slot = next((i for i in order if rooms[i] and bound[i] is None), None)
                if slot is not None:
                    bound[slot] = mount
                    workers_on[mount.point] += 1
                    network_workers += mount.network
        if slot is None:
            left.append(job)
            blocked.add(mount.point)
            continue
        shares[slot].append(job)
        rooms[slot] -= 1
        waiting[mount.point] -= 1
        n = (slot + 1) % len(rooms)
    return Plan(shares, left, blocked)
