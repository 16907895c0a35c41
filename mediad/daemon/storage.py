"""Storage: which mount each claimed file lives on, and what to do when a mount stalls.

The supervisor asks this module four things, and does what it answers:

- `assign` each claimed row its mount, by path alone (a stat could hang on a dead mount),
  and `correct` it from the device the worker reports once it has opened the file;
- `plan_dispatch` (mediad/daemon/plan.py): which buffered files may go to which worker
  now. A network or FUSE mount holds at most its cap of workers (mounts.worker_cap), and
  none at all while it is stalled or stuck processes are at their limit; a worker holding
  a file of a network mount gets only more files of that mount, so a local file never
  waits behind a read that may never return;
- `timed_out`: a file ran past the timeout. On a network mount the result is held back
  until the mount's stall window decides: the mount stalls (the result is given back,
  uncharged), or the window passes (it is written as the timeout it was);
- `tick(now)`: held results now due, rows to give back, probes of stalled mounts.

Probes and the mount table are the only effects, both injected so that tests can drive
every decision with an explicit clock and no process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from mediad.config import Config
from mediad.daemon.mounts import MountState
from mediad.daemon.probe import Probe
from mediad.daemon.probes import Probes, ProbeStarter
from mediad.models import Completion, Job, MountReport
from mediad.mounts import Mount, MountTable, read_mount_table

log = structlog.get_logger("mediad")

# The mount table is read again this often, and at once when a worker reports a device no
# mount in it has (a share mounted after mediad started).
REFRESH_EVERY = 30.0
# Rows given back are due again at the next probe, and never sooner than this.
MIN_GIVE_BACK_DELAY = 1.0


@dataclass(frozen=True)
class StorageSettings:
    stall_timeouts: int
    stall_window_seconds: float
    probe_seconds: float
    overrides: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> StorageSettings:
        return cls(
            config.daemon.mount_stall_timeouts,
            config.daemon.mount_stall_window_seconds,
            config.daemon.mount_probe_seconds,
            config.mount_overrides(),
        )


@dataclass
class Held:
    """A timeout on a network mount, not written until the mount's window decides."""

    completion: Completion
    mount: str
    decide_at: float


@dataclass
class TickResult:
    write: list[Completion] = field(default_factory=list)  # held timeouts, now charged
    give_back: list[Job] = field(default_factory=list)  # to pending, uncharged
    # Paused rows (mediad/daemon/pauses.py) a give-back failed to return: again, due at once.
    give_back_paused: list[Job] = field(default_factory=list)
    resumed: bool = False  # a mount answers again: its rows are claimable


class Storage:
    def __init__(
        self,
        settings: StorageSettings,
        *,
        read_table: Callable[[], MountTable] = read_mount_table,
        start_probe: ProbeStarter = Probe.start,
    ) -> None:
        self.settings = settings
        self._read_table = read_table
        self.table = self._read()
        self._next_refresh = 0.0
        self._forced_refresh_at = float("-inf")
        self._mounts: dict[int, Mount] = {}  # by row id: every row this daemon holds
        self._seen: dict[str, Mount] = {}  # every mount a row was on: reported
        self._plain = True  # no capped mount seen yet
        self.states: dict[str, MountState] = {}
        self._held: list[Held] = []
        self._give_back: list[Job] = []
        self._give_back_paused: list[Job] = []  # paused rows whose give-back failed
        self.probes = Probes(start_probe)
        self._given_back: Counter[str] = Counter()  # during the current stall

    # --- the mount table --------------------------------------------------------------

    def _read(self) -> MountTable:
        try:
            return self._read_table()
        except OSError as exc:
            log.warning("cannot read the mount table: every file counts as local", error=str(exc))
            return MountTable([])

    def reconfigure(self, settings: StorageSettings) -> None:
        """A reload: new caps apply to the next dispatch; mounts already stalled keep
        their state (the new stall settings apply to mounts seen from now on)."""
        self.settings = settings
        self._plain = not any(
            m.network or m.point in settings.overrides for m in self._seen.values()
        )

    def refresh(self, now: float) -> None:
        self.table = self._read()
        self._next_refresh = now + REFRESH_EVERY

    def assign(self, job: Job) -> Mount:
        """The mount of a claimed row, by its path alone."""
        mount = self.table.for_path(job.path)
        self._mounts[job.id] = mount
        self._see(mount)
        return mount

    def _see(self, mount: Mount) -> None:
        if mount.point not in self._seen:
            self._seen[mount.point] = mount
            if mount.network or mount.point in self.settings.overrides:
                self._plain = False

    def mount_of(self, job: Job) -> Mount:
        return self._mounts.get(job.id) or self.assign(job)

    def correct(self, job: Job, device: int, now: float) -> Mount:
        """The worker opened the file and names its device: trust it over the path."""
        guess = self.mount_of(job)
        if guess.device == device:
            return guess
        if self.table.for_device(device) is None and now >= self._forced_refresh_at + 1.0:
            # A share mounted since the table was read; at most once a second.
            self._forced_refresh_at = now
            self.refresh(now)
        mount = self.table.correct(guess, device)
        if mount != guess:
            self._mounts[job.id] = mount
            self._see(mount)
        return mount

    def label(self, path: str | None, device: int | None) -> str | None:
        """What logs call the mount of a path (pool.mount_of)."""
        if path is None:
            return None
        mount = self.table.for_path(path)
        if device is not None:
            mount = self.table.correct(mount, device)
        return mount.point

    def forget(self, jobs: Iterable[Job]) -> None:
        """Rows this daemon no longer holds (written, released, given back)."""
        for job in jobs:
            self._mounts.pop(job.id, None)

    # --- what may be dispatched ---------------------------------------------------------

    def plain(self) -> bool:
        """No row so far on a capped mount (network, or named in [mounts]): dispatch
        needs no plan. Once one has been seen, every dispatch weighs mounts."""
        return self._plain

    def stalled(self) -> set[str]:
        return {point for point, state in self.states.items() if state.stalled}

    def is_stalled(self, job: Job) -> bool:
        state = self.states.get(self.mount_of(job).point)
        return state is not None and state.stalled

    def skip_prefixes(self) -> list[str]:
        """For the claim: the paths of stalled mounts."""
        return sorted(point.rstrip("/") + "/" for point in self.stalled())

    def has_network(self, jobs: Iterable[Job]) -> bool:
        return any(self.mount_of(job).network for job in jobs)

    def one_network_mount(self, buffer: Iterable[Job]) -> bool:
        """Every buffered row is on the same network mount (and there is one)."""
        point = None
        for job in buffer:
            mount = self.mount_of(job)
            if not mount.network or (point is not None and mount.point != point):
                return False
            point = mount.point
        return point is not None

    def counted_toward_full(self, buffer: Sequence[Job], per_mount_limit: int) -> int:
        """Buffered rows that count toward "buffer full": rows of a stalled mount count
        not at all, and a network mount's rows only up to what its share of the workers
        takes (`per_mount_limit`), so that the claim goes on to reach other mounts' rows."""
        if self._plain:
            return len(buffer)
        stalled = self.stalled()
        counts: Counter[str] = Counter()
        local = 0
        for job in buffer:
            mount = self.mount_of(job)
            if not mount.network:
                local += 1
            elif mount.point not in stalled:
                counts[mount.point] += 1
        return local + sum(min(c, per_mount_limit) for c in counts.values())

    # --- timeouts and stalls ------------------------------------------------------------

    def timed_out(self, completion: Completion, device: int | None, now: float) -> bool:
        """A file ran past the timeout. True: taken (held back or given back), not to be
        written now; False: a local file, written as the timeout it is."""
        job = completion.job
        mount = self.correct(job, device, now) if device is not None else self.mount_of(job)
        if not mount.network:
            return False
        state = self._state(mount)
        if state.stalled:
            self._give_back.append(job)  # the mount had stopped answering: not its fault
            self._given_back[mount.point] += 1
            return True
        state.record_timeout(now, job.path)
        self._held.append(Held(completion, mount.point, now + self.settings.stall_window_seconds))
        if state.should_stall(now):
            self._stall(mount, state, now)
        return True

    def _state(self, mount: Mount) -> MountState:
        state = self.states.get(mount.point)
        if state is None:
            state = MountState(
                mount.point,
                self.settings.stall_timeouts,
                self.settings.stall_window_seconds,
                self.settings.probe_seconds,
            )
            self.states[mount.point] = state
            self._see(mount)
        return state

    def _stall(
        self, mount: Mount, state: MountState, now: float, why: str = "timeouts in the window"
    ) -> None:
        timeouts = state.timeouts_recent(now)
        state.stall(now)
        mine = [h for h in self._held if h.mount == mount.point]
        self._held = [h for h in self._held if h.mount != mount.point]
        self._give_back.extend(h.completion.job for h in mine)
        self._given_back[mount.point] = len(mine)
        log.warning(
            "mount stalled",
            mount=mount.point,
            fstype=mount.fstype,
            why=why,
            timeouts=timeouts,
            window_s=self.settings.stall_window_seconds,
            given_back=len(mine),
            probe_every_s=self.settings.probe_seconds,
        )

    def stall_stuck(self, stuck_on: Iterable[str | None], now: float) -> None:
        """A process that outlived SIGKILL is blocked in the kernel by its mount: proof
        enough that the mount stopped answering, without waiting for
        mount_stall_timeouts timeouts (each holding a worker for timeout_seconds, and
        leaving one more stuck process: at the limit, none could come at all)."""
        for point in {p for p in stuck_on if p is not None}:
            state = self.states.get(point)
            if state is not None and not state.stalled and state.timeouts_recent(now):
                self._stall(self._seen[point], state, now, why="a killed worker is stuck in it")

    def give_back_delay(self, now: float) -> float:
        """Rows given back are due again about when their mount is probed next."""
        due = [s.next_probe_at for s in self.states.values() if s.stalled and s.next_probe_at]
        later = max(due) - now if due else self.settings.probe_seconds
        return max(MIN_GIVE_BACK_DELAY, later)

    def give_back(self, jobs: Iterable[Job]) -> None:
        """Rows of a stalled mount found in the buffer or handed back by a dead worker."""
        for job in jobs:
            self._give_back.append(job)
            self._given_back[self.mount_of(job).point] += 1

    def retry_give_back(self, jobs: Iterable[Job], paused: bool = False) -> None:
        """A give-back the database did not take: again at a later tick. `paused`: rows
        given back for a pause, not a mount, go back as such (due at once, said so)."""
        (self._give_back_paused if paused else self._give_back).extend(jobs)

    def holding(self) -> bool:
        """Rows whose fate waits on a mount: timeouts held back, rows still to give back."""
        return bool(self._held or self._give_back or self._give_back_paused)

    def take_held(self) -> list[Job]:
        """Stopping: held results are not decided, and rows not given back yet (the
        database was away) would otherwise wait for their leases: all go back (released,
        uncharged)."""
        held, self._held = self._held, []
        waiting, self._give_back = self._give_back, []
        paused, self._give_back_paused = self._give_back_paused, []
        return [h.completion.job for h in held] + waiting + paused

    def tick(self, now: float, may_probe: Callable[[], bool], give_back: bool = True) -> TickResult:
        """Held results now due, rows to give back, probes. `may_probe`: whether another
        process that may get stuck is allowed now (the stuck limit); `give_back`: whether
        the rows to give back can be taken now (not while the database is unreachable:
        they wait here, their leases renewed, instead of failing again at every turn)."""
        result = TickResult()
        if now >= self._next_refresh:
            self.refresh(now)
        if self._held:
            due = [h for h in self._held if h.decide_at <= now]
            if due:
                self._held = [h for h in self._held if h.decide_at > now]
                # The window passed without a stall: it was the file, not the mount.
                result.write = [h.completion for h in due]
        self.probes.reap()
        for point, state in self.states.items():
            if state.stalled:
                deadline = max(1.0, self.settings.probe_seconds)
                answered = self.probes.step(point, state, now, may_probe, deadline)
                if answered is not None:
                    log.info(
                        "mount resumed",
                        mount=point,
                        stalled_s=round(answered, 1),
                        rows_waiting=self._given_back.pop(point, 0),
                    )
                    result.resumed = True
        if self._give_back and give_back:
            result.give_back, self._give_back = self._give_back, []
        if self._give_back_paused and give_back:
            result.give_back_paused, self._give_back_paused = self._give_back_paused, []
        return result

    def probes_unexited(self) -> int:
        """Probes running or killed and not gone: each may be (or become) stuck."""
        return self.probes.unexited()

    def probes_killed(self) -> tuple[int, int]:
        """Probes killed and not gone, and how many of them are stuck (for the pool)."""
        return self.probes.killed()

    def probes_stuck(self) -> list[str]:
        return self.probes.stuck()

    def quiet(self, now: float) -> bool:
        """Nothing for tick to do: no mount ever timed out, nothing held, given back or
        probed, and the mount table is not due to be read again (the common case)."""
        return not (
            self.states
            or self._held
            or self._give_back
            or self._give_back_paused
            or self.probes
            or now >= self._next_refresh
        )

    def next_due_in(self, now: float) -> float | None:
        """When tick has something to do: a held result's window ends, a probe is due or
        running (polled twice a second)."""
        if not (self._held or self.states or self.probes.killed()[0]):
            return None
        found = [h.decide_at - now for h in self._held]
        for point, state in self.states.items():
            if self.probes.running(point):
                found.append(0.5)
            elif state.stalled and state.next_probe_at is not None:
                found.append(state.next_probe_at - now)
        if self.probes.killed()[0]:
            found.append(1.0)
        return max(0.0, min(found)) if found else None

    def close(self) -> None:
        """Kill probes, never waiting: one held by a dead mount stays behind."""
        self.probes.close()

    # --- reporting ----------------------------------------------------------------------

    def report(
        self, in_flight: Iterable[Job], stuck_mounts: Iterable[str | None], now: float
    ) -> tuple[MountReport, ...]:
        """Every mount this daemon has had a file on, with its state now."""
        files = Counter(self.mount_of(job).point for job in in_flight)
        stuck = Counter(point for point in stuck_mounts if point is not None)
        stuck.update(self.probes_stuck())
        reports = []
        for point, mount in sorted(self._seen.items()):
            state = self.states.get(point)
            reports.append(
                MountReport(
                    mount=point,
                    fstype=mount.fstype,
                    state="stalled" if state is not None and state.stalled else "ok",
                    in_flight=files[point],
                    stuck=stuck[point],
                    timeouts_recent=state.timeouts_recent(now) if state is not None else 0,
                )
            )
        return tuple(reports)
