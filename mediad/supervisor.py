"""The supervisor: claims rows, feeds workers, writes results back, handles signals.

One thread runs the loop below; it owns the pool and decides everything. Statements run
on a second thread (`DatabaseThread`) so workers are fed while the database answers: the
loop submits a claim or a write-back and takes the answer on a later turn. Data flows one
way: database -> buffer -> workers -> results -> database. Signal handlers only record
the signal and wake the loop; the loop acts on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

import structlog

from mediad import __version__, logs, metrics
from mediad.config import Config, mask_dsn
from mediad.db.listener import Listener
from mediad.db.queue import FailureWrite, Queue, WriteResult
from mediad.dbthread import Answer, DatabaseThreads
from mediad.errors import DatabaseUnavailable, MediadError
from mediad.extract import engine
from mediad.models import Completion, DaemonReport, Failure, Job
from mediad.notify import Notifier
from mediad.pace import ClaimSizer
from mediad.pool import Slot, WorkerPool, make_pool, worker_settings
from mediad.retry import RetryPolicy
from mediad.storage import Storage, StorageSettings, plan_dispatch

log = structlog.get_logger("mediad")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
STATUS_EVERY = 5.0
DB_BACKOFF_MAX = 10.0
SUMMARY_EVERY = 30.0
QUEUE_MEASURE_EVERY = 15.0
GAUGES_EVERY = 0.5  # the gauges are scraped every few seconds: not every loop turn
PRUNE_EVERY = 3600.0  # rows of daemons gone for a day: looked for at start, then hourly
# The buffer never holds more than this many claims' worth, however many of its rows wait
# for a capped or stalled mount (those do not make it "full").
MAX_BUFFER_CLAIMS = 4
# Workers' devices are compared with the mounts guessed by path this often: a file is
# read for milliseconds to seconds, and a late correction only moves one file's count.
CORRECT_EVERY = 0.2


@dataclass
class Tally:
    """What this run did, for the extract summary and the periodic log line."""

    done: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    stale: int = 0
    claimed: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + sum(self.failed.values())


@dataclass(frozen=True)
class RunMode:
    """`run` keeps going; `extract` stops when nothing is left (or after `limit` files)."""

    one_shot: bool = False
    limit: int = 0
    skip_existing: bool = False


class ReloadRefused(MediadError):
    """A valid config that cannot be applied live; the running one is kept."""


def owner_name(instance: str) -> str:
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{instance}" if instance else name


def retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(
        config.retry.max_attempts,
        config.retry.backoff_base_seconds,
        config.retry.backoff_max_seconds,
    )


class Supervisor:
    def __init__(
        self,
        config: Config,
        store: Queue,
        mode: RunMode | None = None,
        *,
        reload_config: Callable[[], Config] | None = None,
        on_progress: Callable[[Tally], None] | None = None,
        notifier: Notifier | None = None,
        store_factory: Callable[[Config], Queue] | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.config = config
        self._store_factory = store_factory
        self.notifier = notifier or Notifier(None)
        self._announced_ready = False
        self._next_status = 0.0
        self._backlog: int | None = None
        self.store = store
        self.mode = mode or RunMode()
        self.policy = retry_policy(config)
        self.tally = Tally()
        self._reload_config = reload_config
        self._on_progress = on_progress
        self._buffer: deque[Job] = deque()
        self._results: list[Completion] = []  # waiting to be written
        self._writing: list[Completion] = []  # submitted to the database thread
        self._held: dict[int, Job] = {}  # every row we hold a lease on
        self._signals: SimpleQueue[int] = SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping: str | None = None  # None, "drain" or "now"
        # The SIGTERM or SIGINT that started the drain: `extract` exits 128 + it.
        self.stopped_by: signal.Signals | None = None
        self._drain_deadline = 0.0
        self._more_work = True  # the last claim was full, or a notification came
        self._exhausted = False  # one-shot: a claim found nothing due
        self._next_poll = 0.0
        self._first_result_at = 0.0
        self._next_renew = 0.0
        self._next_rescue = 0.0
        self._next_summary = time.monotonic() + SUMMARY_EVERY
        self._next_queue_measure = 0.0
        self._db_retry_at = 0.0
        self._db_failures = 0
        self._claiming = 0
        self._claim_sizer = ClaimSizer()
        self._received = 0  # results received from workers, written or not
        self._connections_counted = 0
        self._next_gauges = 0.0
        self._next_heartbeat = 0.0
        self._next_prune = 0.0
        self._started_at = time.monotonic()
        self._listener: Listener | None = None
        self._metrics_server: Any = None
        # `pool`: one started early, so its workers booted while the database was reached.
        self.pool = pool if pool is not None else make_pool(config)
        self.pool.on_event = self._pool_event
        self.pool.register_wakeup(self._wake_r)
        # Mounts, caps and stalls (mediad/storage.py); logs of the pool name mounts.
        self.storage = Storage(StorageSettings.from_config(config))
        self.pool.mount_of = self.storage.label
        self.pool.stuck_elsewhere = self.storage.probes_killed
        self._timed_out: dict[int, int | None] = {}  # row id -> device, from the pool
        self._stuck_limit_said = False
        # The last claim got all it asked for: more due rows may wait in the database.
        self._claim_was_full = True
        self._next_correction = 0.0
        self._db = DatabaseThreads(self._wake)

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        metrics.RELOAD_OK_TIME.set(time.time())
        if not self.mode.one_shot and self.config.metrics.listen:
            self._metrics_server = metrics.serve(self.config.metrics.listen)
        if self.config.database.listen and not self.mode.one_shot:
            self._listener = self.store.db.listener(self._wake)
            self._listener.start()
        self._db.start()
        self.pool.maintain()
        log.info(
            "started",
            workers=self.pool.target_size,
            batch_size=self.config.daemon.batch_size,
            owner=self.store.owner,
            database=self.store.db.label,
            listen=self.config.database.listen,
            metrics=self.config.metrics.listen or None,
        )
        try:
            while not self._finished():
                self._step()
        finally:
            self._shutdown()
        return 0

    def _finished(self) -> bool:
        if self._stopping is not None:
            return not self.pool.in_flight() and not self._unsettled()
        if self.mode.one_shot:
            idle = (
                not self._buffer
                and not self.pool.in_flight()
                and not self._results
                and not self._writing
                and not self._db.busy("claim")
                and not self._db.busy("give_back")
                and not self.storage.holding()
            )
            limit_hit = bool(self.mode.limit) and self.tally.claimed >= self.mode.limit
            return idle and (self._exhausted or limit_hit)
        return False

    def _unsettled(self) -> bool:
        """While draining: results or releases not yet written keep the loop alive, until
        the grace period runs out (then `_shutdown` makes a last attempt)."""
        pending = bool(self._results or self._writing) or self._db.busy("release")
        return pending and time.monotonic() < self._drain_deadline

    def _step(self) -> None:
        self._handle_signals()
        now = time.monotonic()
        # Only a loop that comes round pings the watchdog: a wedged one gets restarted.
        self.notifier.watchdog()
        metrics.LOOP_TIME.set(time.time())
        self._maybe_announce(now)
        # Renew before dispatching: after a pause (SIGSTOP, a stalled VM) the buffered rows
        # may belong to another daemon by now, and must not be read again for nothing.
        self._maybe_renew(now)
        if self._stopping is None:
            self._maybe_claim(now)
        self._dispatch()
        ready, woken = self.pool.wait(self._wait_timeout(now))
        if woken:
            self._drain_wake_pipe()
        self._handle_answers(self._db.answers())
        completions = self.pool.collect(ready) + self.pool.enforce_timeouts()
        self._record(completions)
        # Files queued at a worker that died were never started: they go out again first
        # (or back to the database, uncharged, if their mount has stopped answering).
        returned = self.pool.take_returned()
        self.storage.give_back(j for j in returned if self.storage.is_stalled(j))
        self._buffer.extendleft(reversed([j for j in returned if not self.storage.is_stalled(j)]))
        self._storage_tick(time.monotonic())
        if self._stopping is None:
            self.pool.maintain()
        now = time.monotonic()
        self._maybe_flush(now)
        self._maybe_rescue(now)
        self._maybe_summarise(now)
        self._maybe_measure_queue(now)
        self._maybe_heartbeat(now)
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGES_EVERY
            self._update_gauges()
        if self._stopping == "drain" and now >= self._drain_deadline:
            log.warning("grace period over: stopping workers", in_flight=len(self.pool.in_flight()))
            self._stop_now()

    def _wait_timeout(self, now: float) -> float:
        candidates = [
            self.config.daemon.poll_seconds if not self._stopping else 0.5,
            max(0.0, self._next_renew - now),
            max(0.0, self._next_heartbeat - now),
            1.0,  # rescue, summaries and signals are checked at least once a second
        ]
        if self.notifier.watchdog_interval:
            candidates.append(self.notifier.watchdog_interval / 2)
        if self._results and not self._db.busy("write"):
            flush_at = self._first_result_at + self.config.daemon.flush_seconds
            if not self.pool.busy_count():
                flush_at = now
            candidates.append(max(0.0, flush_at - now))
        claim_wanted = self._more_work and self._stopping is None and self._can_claim_more()
        if claim_wanted and not self._db.busy("claim"):
            # (A claim in flight wakes the loop when it answers: waiting 0 s here spun.)
            candidates.append(max(0.0, self._db_retry_at - now))
        if self._stopping is None and not self._more_work:
            candidates.append(max(0.0, self._next_poll - now))
        next_storage = self.storage.next_due_in(now)
        for value in (self.pool.next_deadline_in(), self.pool.next_start_in(), next_storage):
            if value is not None:
                candidates.append(value)
        if self._stopping == "drain":
            candidates.append(max(0.0, self._drain_deadline - now))
        return max(0.0, min(candidates))

    # --- signals ----------------------------------------------------------------------

    def _install_signals(self) -> None:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)
        engine.install_daemon_hooks()  # the tests' faults (MEDIAD_TEST_HOOKS=1), else none

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.put(signum)
        self._wake()

    def _wake(self) -> None:
        # A full pipe means the loop is awake anyway.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        if self._stopping is None:
            self._more_work = True  # a notification (or a signal) came: look for work

    def _handle_signals(self) -> None:
        while True:
            try:
                signum = self._signals.get_nowait()
            except Empty:
                return
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self._stopping is None:
                    self.stopped_by = signal.Signals(signum)
                    self._start_drain(self.stopped_by.name)
                else:
                    log.warning("second signal: stopping now", signal=signal.Signals(signum).name)
                    self._stop_now()
            elif signum == signal.SIGHUP:
                self._reload()
            elif signum == signal.SIGTTIN and self._stopping is None:
                self._resize(self.pool.target_size + 1)
            elif signum == signal.SIGTTOU and self._stopping is None:
                self._resize(max(1, self.pool.target_size - 1))

    def _resize(self, size: int) -> None:
        log.info("workers resized", workers=size, was=self.pool.target_size)
        self.pool.resize(size)
        self.pool.maintain()

    def _reload(self) -> None:
        if self._reload_config is None:
            return
        self.notifier.reloading()
        try:
            new = self._reload_config()
            self.apply_config(new)
        except Exception as exc:  # an invalid file never kills the daemon
            metrics.RELOADS.labels("failed").inc()
            metrics.RELOAD_OK.set(0)
            log.error("reload refused: keeping the running configuration", error=str(exc))
        else:
            metrics.RELOADS.labels("applied").inc()
            metrics.RELOAD_OK.set(1)
            metrics.RELOAD_OK_TIME.set(time.time())
            log.info("configuration reloaded", source=new.source or None)
        self.notifier.ready(self._status_text())

    def apply_config(self, new: Config) -> None:
        """Apply a validated config live. Refuses (raises) only what needs a restart."""
        old = self.config
        if new.database.schema != old.database.schema:
            raise ReloadRefused("database.schema cannot change while running: restart mediad")
        logs.configure(new.log.level, new.log.format)
        if new.database.dsn != old.database.dsn or new.database.listen != old.database.listen:
            self._switch_database(new)
        if new.metrics.listen != old.metrics.listen and not self.mode.one_shot:
            self._rebind_metrics(new.metrics.listen)
        self.config = new
        self.policy = retry_policy(new)
        self.pool.timeout_seconds = new.extract.timeout_seconds
        self.pool.max_files_per_worker = new.daemon.max_files_per_worker
        self.pool.prefetch = max(1, new.daemon.prefetch)
        self.pool.max_stuck = new.daemon.max_stuck_workers
        self.storage.reconfigure(StorageSettings.from_config(new))
        settings = worker_settings(new)
        if self._stopping is None:
            self._resize(new.effective_workers())
            if settings != self.pool.settings:
                # Roots, timeouts of MediaInfo, memory limit: only new workers get them.
                self.pool.settings = settings
                self.pool.replace_all()
                log.info("workers replaced to apply the new extraction settings")

    def _switch_database(self, new: Config) -> None:
        if self._store_factory is None:
            raise ReloadRefused("database.dsn cannot change in this mode")
        store = self._store_factory(new)  # raises if unreachable: the old one stays
        old_store, self.store = self.store, store
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if new.database.listen and not self.mode.one_shot:
            self._listener = self.store.db.listener(self._wake)
            self._listener.start()
        old_store.db.close()
        log.info("database switched", dsn=mask_dsn(new.database.dsn) or "embedded")

    def _rebind_metrics(self, address: str) -> None:
        server = metrics.serve(address)  # raises if it cannot bind: the old one stays
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self._metrics_server = server
        log.info("metrics endpoint moved", listen=address or None)

    # --- claiming and dispatching -----------------------------------------------------

    def _claim_size(self) -> int:
        capacity = self.pool.target_size * self.pool.depth()
        return self._claim_sizer.size(capacity, self.config.daemon.batch_size)

    def _can_claim_more(self) -> bool:
        if self.mode.limit and self.tally.claimed >= self.mode.limit:
            return False
        # Claim again when half the last claim's worth is left: the next one arrives
        # before the workers run dry. Rows that wait for a capped or stalled mount do not
        # count, or a buffer full of them would keep other mounts' rows from being claimed.
        claim_size = self._claim_size()
        wanted = max(self.pool.target_size, claim_size // 2)
        if self.storage.plain():
            return len(self._buffer) < wanted
        if len(self._buffer) >= self._buffer_bound():
            return False
        share = max(1, self.pool.target_size // 2) * self.pool.depth()
        if self.storage.counted_toward_full(self._buffer, share) < wanted:
            return True
        # Only one network mount's rows so far, and the database may hold more: claim on,
        # up to the bound, to learn whether rows on other mounts wait. Until then that
        # mount keeps to its share (more_unclaimed in _dispatch); after, it may use every
        # worker, so a library that lives entirely on a NAS is not slowed.
        return self._claim_was_full and self.storage.one_network_mount(self._buffer)

    def _buffer_bound(self) -> int:
        return MAX_BUFFER_CLAIMS * max(self._claim_size(), self.pool.target_size)

    def _maybe_claim(self, now: float) -> None:
        if now >= self._next_poll:
            self._more_work = True
        if self._db.busy("claim") or now < self._db_retry_at:
            return
        if not self._more_work or not self._can_claim_more():
            return
        # A sample per claim (about two a second), not per loop turn.
        self._claim_sizer.observe(now, self._received)
        want = self._claim_size()
        if self.mode.limit:
            want = min(want, self.mode.limit - self.tally.claimed - self._claiming)
        if want <= 0:
            return
        lease, skip = self.config.daemon.lease_seconds, self.mode.skip_existing
        prefixes = self.storage.skip_prefixes()  # stalled mounts: their rows wait
        self._claiming = want
        self._db.submit(
            "claim", lambda: self.store.claim(want, lease, skip, prefixes), context=want
        )

    def _claimed(self, answer: Answer) -> None:
        self._claiming = 0
        if answer.error is not None:
            self._db_error("claim", answer.error)
            return
        self._db_ok()
        jobs: list[Job] = answer.value
        want: int = answer.context
        metrics.DB_SECONDS.labels("claim").observe(answer.seconds)
        metrics.BATCH_ROWS.labels("claim").observe(len(jobs))
        self._next_poll = time.monotonic() + self.config.daemon.poll_seconds
        self._more_work = len(jobs) == want
        self._claim_was_full = len(jobs) == want
        if self.mode.one_shot and len(jobs) < want:
            self._exhausted = True
        self.tally.claimed += len(jobs)
        for job in jobs:
            self._held[job.id] = job
            self.storage.assign(job)
        if self._stopping is not None:
            self._release(jobs)  # claimed just before the drain began: give them back
            return
        self._buffer.extend(jobs)

    def _dispatch(self) -> None:
        """Share the buffer out one file at a time, the least loaded worker first (so a
        short buffer is spread, not handed to one worker), within each mount's cap
        (mediad/storage.py), then send each worker its share in one message."""
        slots = self.pool.accepting()
        if not self._buffer or not slots:
            return
        if self.storage.plain():
            self._dispatch_plain(slots)
            return
        if any(j.id not in self._held for j in self._buffer):
            # Leases lost at renewal: those rows are another daemon's now.
            self._buffer = deque(j for j in self._buffer if j.id in self._held)
        accepting = {id(slot) for slot in slots}
        plan = plan_dispatch(
            self._buffer,
            [self.pool.room(slot) for slot in slots],
            [slot.queue for slot in slots],
            [slot.queue for slot in self.pool.slots if id(slot) not in accepting],
            self.storage.mount_of,
            pool_size=self.pool.target_size,
            # A worker killed there and not gone yet may be stuck: a file sent to that
            # mount before it is known would likely leave one more stuck process.
            stalled=self.storage.stalled() | self.pool.unexited_mounts(),
            network_budget=self._network_budget(),
            overrides=self.storage.settings.overrides,
            # Half the bound: once the buffer has been filled that far with one mount's
            # rows, a few dispatched do not put the mount back to its share.
            more_unclaimed=self._claim_was_full and len(self._buffer) < self._buffer_bound() // 2,
        )
        self._buffer = deque(plan.left)
        for slot, share in zip(slots, plan.shares, strict=True):
            if share and not self.pool.dispatch(slot, share):
                self._buffer.extendleft(reversed(share))  # its worker is dying: resend

    def _dispatch_plain(self, slots: list[Slot]) -> None:
        """Every file so far on local disks with no cap: no mount to weigh (the common
        case, and the fast one: only the files sent are looked at)."""
        rooms = [self.pool.room(slot) for slot in slots]
        shares: list[list[Job]] = [[] for _ in slots]
        n = 0
        while self._buffer and any(rooms):
            if rooms[n]:
                job = self._buffer.popleft()
                if job.id in self._held:  # else its lease was lost at renewal
                    shares[n].append(job)
                    rooms[n] -= 1
            n = (n + 1) % len(slots)
        for slot, share in zip(slots, shares, strict=True):
            if share and not self.pool.dispatch(slot, share):
                self._buffer.extendleft(reversed(share))  # its worker is dying: resend

    def _network_budget(self) -> int:
        """How many workers may hold files of network mounts: each may become a stuck
        process, and stuck processes (workers and probes) never pass the limit."""
        limit = self.pool.stuck_limit()
        budget = limit - self.pool.unexited_count() - self.storage.probes_unexited()
        return max(0, budget)

    def _say_stuck_limit(self, at_limit: bool, stuck: int, limit: int) -> None:
        """Once per episode, in the log (the gauges and STATUS= say it all along)."""
        if at_limit == self._stuck_limit_said:
            return
        self._stuck_limit_said = at_limit
        if at_limit:
            log.warning(
                "stuck processes at the limit: files on network mounts wait",
                stuck=stuck,
                limit=limit,
            )
        else:
            log.info("stuck processes below the limit: network mounts get files again")

    def _stuck_now(self) -> int:
        return self.pool.stuck_count() + len(self.storage.probes_stuck())

    def _network_workers(self) -> int:
        return sum(1 for slot in self.pool.slots if self.storage.has_network(slot.queue))

    # --- mounts -----------------------------------------------------------------------

    def _storage_tick(self, now: float) -> None:
        if now >= self._next_correction:
            self._next_correction = now + CORRECT_EVERY
            self._correct_mounts(now)
        if not self.pool.unexited_count() and self.storage.quiet(now):
            self._say_stuck_limit(False, 0, self.pool.stuck_limit())
            return  # no mount has timed out, nothing is stuck: nothing to decide
        stuck, limit = self._stuck_now(), self.pool.stuck_limit()
        self._say_stuck_limit(stuck >= limit, stuck, limit)
        if stuck:
            stuck_on = [k.mount for k in self.pool.stuck()] + self.storage.probes_stuck()
            self.storage.stall_stuck(stuck_on, now)
        if self.storage.stalled() and self._buffer:
            # A mount stalled, or rows of it came in a claim made before it did.
            stalled = [j for j in self._buffer if self.storage.is_stalled(j)]
            if stalled:
                self.storage.give_back(stalled)
                self._buffer = deque(j for j in self._buffer if not self.storage.is_stalled(j))

        def may_probe() -> bool:
            budget = self._network_budget() - self._network_workers()
            return self._stopping is None and budget > 0

        can_write = now >= self._db_retry_at and not self._db.busy("give_back")
        result = self.storage.tick(now, may_probe, give_back=can_write)
        if result.write:
            self._results_in(result.write)
        if result.resumed:
            self._more_work = True
        if result.give_back:
            self._give_back(result.give_back, self.storage.give_back_delay(now))

    def _correct_mounts(self, now: float) -> None:
        """Workers name the device of the file they read: a symlink into another mount,
        or a share mounted since the table was read, shows there."""
        for slot in self.pool.slots:
            device = slot.reading_device()
            reading = slot.reading_now() if device is not None else None
            if device is not None and reading is not None:
                self.storage.correct(slot.queue[reading[0]], device, now)

    def _give_back(self, jobs: list[Job], delay: float) -> None:
        jobs = [j for j in jobs if j.id in self._held]
        if not jobs:
            return
        if self._stopping is not None:
            self._release(jobs)
            return
        self._db.submit(
            "give_back", lambda: self.store.give_back(jobs, delay), context=(jobs, delay)
        )

    def _given_back(self, answer: Answer) -> None:
        jobs, delay = answer.context
        if answer.error is not None:
            # Retried once the database answers: the rows stay held (leases renewed).
            self.storage.retry_give_back(jobs)
            self._db_error("give_back", answer.error)
            return
        self._db_ok()
        for job in jobs:
            self._held.pop(job.id, None)
        self.storage.forget(jobs)
        metrics.RELEASED.inc(answer.value)
        log.info(
            "rows given back: their mount is not answering",
            rows=answer.value,
            due_in_s=round(delay, 1),
        )

    # --- results ----------------------------------------------------------------------

    def _record(self, completions: list[Completion]) -> None:
        if self._timed_out:
            now = time.monotonic()
            kept = []
            for completion in completions:
                row_id = completion.job.id
                if row_id in self._timed_out:
                    device = self._timed_out.pop(row_id)
                    # On a network mount: held back (or given back) until its window decides.
                    if self.storage.timed_out(completion, device, now):
                        continue  # counted as received when its window lets it out
                kept.append(completion)
            completions = kept
        self._results_in(completions)

    def _results_in(self, completions: list[Completion]) -> None:
        if not completions:
            return
        if not self._results:
            self._first_result_at = time.monotonic()
        self._received += len(completions)
        read_bytes = 0
        for completion in completions:
            outcome = completion.outcome
            metrics.EXTRACT_SECONDS.observe(outcome.seconds)
            if isinstance(outcome, Failure):
                log.warning(
                    "file failed",
                    path=completion.job.path,
                    row_id=completion.job.id,
                    error_class=str(outcome.failure_class),
                    error=outcome.message,
                    attempt=completion.job.attempts,
                    worker_pid=completion.worker_pid,
                )
            else:
                read_bytes += outcome.size_bytes
        metrics.BYTES.inc(read_bytes)  # once per turn: a counter's lock per file shows
        self._results.extend(completions)

    def _maybe_flush(self, now: float, force: bool = False) -> None:
        if not self._results or now < self._db_retry_at or self._db.busy("write"):
            return
        due = now - self._first_result_at >= self.config.daemon.flush_seconds
        full = len(self._results) >= self.config.daemon.batch_size
        # No worker holds a file: nothing can join this batch, so waiting only adds
        # latency. While they are busy, waiting makes fewer, bigger write-backs: each
        # statement costs PostgreSQL about as much as ten rows (docs/benchmarks.md).
        settled = not self.pool.busy_count()
        if not (force or due or full or settled or self._stopping):
            return
        batch, self._results = self._results, []
        self._writing = batch
        done = [(c.job, c.outcome) for c in batch if not isinstance(c.outcome, Failure)]
        failures = [self._decide(c.job, c.outcome) for c in batch if isinstance(c.outcome, Failure)]

        def write() -> tuple[WriteResult, WriteResult | DatabaseUnavailable]:
            written_done = self.store.complete(done)
            try:
                return written_done, self.store.fail(failures)
            except DatabaseUnavailable as exc:
                # The results are committed: only the failures must be written again (a
                # second complete would be refused by the fence and counted as stale).
                return written_done, exc

        self._db.submit("write", write, context=failures)

    def _written(self, answer: Answer) -> None:
        batch, self._writing = self._writing, []
        if answer.error is not None:
            # Keep them, in order, for the next attempt: nothing is dropped.
            self._results = batch + self._results
            self._first_result_at = time.monotonic()
            self._db_error("write", answer.error)
            return
        written_done, written_failed = answer.value
        if isinstance(written_failed, DatabaseUnavailable):
            unwritten = [c for c in batch if isinstance(c.outcome, Failure)]
            batch = [c for c in batch if not isinstance(c.outcome, Failure)]
            self._results = unwritten + self._results
            self._first_result_at = time.monotonic()
            self._count_written((written_done, WriteResult(frozenset(), 0)), [])
            self._db_error("write", written_failed)
            for completion in batch:
                self._held.pop(completion.job.id, None)
            return
        self._db_ok()
        for completion in batch:
            self._held.pop(completion.job.id, None)
        self.storage.forget(c.job for c in batch)
        metrics.DB_SECONDS.labels("write").observe(answer.seconds)
        metrics.BATCH_ROWS.labels("write").observe(len(batch))
        self._count_written(answer.value, answer.context)
        if self._on_progress:
            self._on_progress(self.tally)

    def _count_written(
        self, written: tuple[WriteResult, WriteResult], failures: list[FailureWrite]
    ) -> None:
        written_done, written_failed = written
        stale = written_done.stale + written_failed.stale
        if stale:
            metrics.STALE.inc(stale)
            self.tally.stale += stale
            log.warning(
                "results refused by the fence: another daemon owns these rows now", stale=stale
            )
        self.tally.done += written_done.written
        metrics.FILES.labels("done", "").inc(written_done.written)
        for write in failures:
            if write.job.id not in written_failed.written_ids:
                continue  # fenced off: not ours to count
            cls = str(write.failure.failure_class)
            if write.final:
                self.tally.failed[cls] = self.tally.failed.get(cls, 0) + 1
                metrics.FILES.labels("failed", cls).inc()
            else:
                self.tally.retried += 1
                metrics.FILES.labels("retry", cls).inc()
                self._exhausted = False  # the retry is due at once in a one-shot run
                self._more_work = True

    def _decide(self, job: Job, failure: Failure) -> FailureWrite:
        final = self.policy.is_final(failure.failure_class, job.attempts)
        # A one-shot run retries at once: it ends when nothing due is left.
        delay = 0.0 if self.mode.one_shot else self.policy.delay_seconds(job.attempts)
        return FailureWrite(job, failure, final, delay)

    # --- leases ---------------------------------------------------------------------------

    def _maybe_renew(self, now: float) -> None:
        if now < self._next_renew or now < self._db_retry_at or self._db.busy("renew"):
            return
        self._next_renew = now + self.config.daemon.lease_seconds / 3
        if not self._held:
            return
        held = list(self._held.values())
        lease = self.config.daemon.lease_seconds
        self._db.submit("renew", lambda: self.store.renew(held, lease), context=held)

    def _renewed(self, answer: Answer) -> None:
        if answer.error is not None:
            self._db_error("renew", answer.error)
            return
        self._db_ok()
        renewed: set[int] = answer.value
        held: list[Job] = answer.context
        metrics.DB_SECONDS.labels("renew").observe(answer.seconds)
        metrics.LEASES_RENEWED.inc(len(renewed))
        # Rows written (or being written) since the renewal was sent are no longer running.
        settled = {c.job.id for c in self._results} | {c.job.id for c in self._writing}
        lost = [
            j for j in held if j.id not in renewed and j.id in self._held and j.id not in settled
        ]
        if lost:
            metrics.LEASES_LOST.inc(len(lost))
            log.warning("leases lost: another daemon may have taken these rows", rows=len(lost))
            in_flight = {j.id for j in self.pool.in_flight()}
            gone = [job for job in lost if job.id not in in_flight]
            for job in gone:
                self._held.pop(job.id, None)
            self.storage.forget(gone)  # else its mount bookkeeping would outlive the row

    def _maybe_rescue(self, now: float) -> None:
        if now < self._next_rescue or now < self._db_retry_at or self._stopping:
            return
        if self._db.busy("rescue"):
            return
        self._next_rescue = now + max(1.0, self.config.daemon.lease_seconds / 4)
        max_attempts = self.config.retry.max_attempts
        self._db.submit("rescue", lambda: self.store.rescue_expired(max_attempts))

    def _rescued(self, answer: Answer) -> None:
        if answer.error is not None:
            self._db_error("rescue", answer.error)
            return
        metrics.DB_SECONDS.labels("rescue").observe(answer.seconds)
        requeued, failed = answer.value
        if requeued or failed:
            metrics.RECLAIMED.inc(requeued + failed)
            log.warning("took back rows whose lease expired", requeued=requeued, failed=failed)
            self._more_work = True

    # --- the daemon's row (docs/schema.md, "daemons") ---------------------------------

    def report(self) -> DaemonReport:
        """What this daemon publishes at each heartbeat, and shows in its stuck and mount
        gauges."""
        host, pid = socket.gethostname(), os.getpid()
        prefix = f"{host}:{pid}:"  # owner_name(): the instance follows, if any
        owner = self.store.owner
        return DaemonReport(
            owner=owner,
            host=host,
            pid=pid,
            instance=owner[len(prefix) :] if owner.startswith(prefix) else "",
            mediad_version=__version__,
            uptime_seconds=time.monotonic() - self._started_at,
            heartbeat_seconds=self.config.daemon.heartbeat_seconds,
            workers_target=self.pool.target_size,
            workers_alive=len(self.pool.slots),
            workers_stuck=self._stuck_now(),
            # 0 means the pool's size, as resized by SIGHUP, SIGTTIN and SIGTTOU.
            workers_stuck_limit=self.pool.stuck_limit(),
            mounts=self.storage.report(
                self.pool.in_flight(),
                [k.mount for k in self.pool.stuck()],
                time.monotonic(),
            ),
            draining=self._stopping is not None,
        )

    def _maybe_heartbeat(self, now: float) -> None:
        """One statement per interval, through the database thread; a beat the database
        cannot take now is skipped, not queued (the next one says the same, newer)."""
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.config.daemon.heartbeat_seconds
        report = self.report()
        metrics.show_daemon(report)
        if now < self._db_retry_at or self._db.busy("heartbeat"):
            return
        prune = now >= self._next_prune
        if prune:
            self._next_prune = now + PRUNE_EVERY

        def beat() -> int:
            self.store.heartbeat(report)
            return self.store.prune_daemons() if prune else 0

        self._db.submit("heartbeat", beat, context=prune)

    def _heartbeat_answered(self, answer: Answer) -> None:
        if answer.error is not None:
            if answer.context:
                self._next_prune = 0.0  # the prune may not have run: at the next beat
            self._db_error("heartbeat", answer.error)
            return
        self._db_ok()
        metrics.DB_SECONDS.labels("heartbeat").observe(answer.seconds)
        if answer.value:
            log.info("deleted the rows of daemons gone for a day", rows=answer.value)

    def _forget(self) -> None:
        owner = self.store.owner
        self._db.submit("forget", lambda: self.store.forget_daemon(owner))

    def _forgotten(self, answer: Answer) -> None:
        if answer.error is not None:
            metrics.DB_ERRORS.labels("heartbeat").inc()
            log.warning(
                "could not delete this daemon's row: it shows as gone until deleted",
                error=str(answer.error),
            )

    # --- database trouble -------------------------------------------------------------

    def _db_error(self, operation: str, exc: DatabaseUnavailable) -> None:
        metrics.DB_ERRORS.labels(operation).inc()
        self._db_failures += 1
        delay = min(DB_BACKOFF_MAX, 0.25 * 2 ** min(self._db_failures, 8))
        self._db_retry_at = time.monotonic() + delay
        log.warning(
            "database unavailable: will retry",
            operation=operation,
            error=str(exc),
            retry_in_s=round(delay, 2),
        )

    def _db_ok(self) -> None:
        if self._db_failures:
            log.info("database reachable again")
        self._db_failures = 0
        self._db_retry_at = 0.0

    # --- stopping ---------------------------------------------------------------------

    def _start_drain(self, why: str) -> None:
        self._stopping = "drain"
        self._drain_deadline = time.monotonic() + self.config.daemon.shutdown_grace_seconds
        self.notifier.stopping()
        # Ask systemd for the grace period plus time to flush, beyond its own stop timeout.
        self.notifier.extend_timeout(self.config.daemon.shutdown_grace_seconds + 15)
        log.info(
            "draining", signal=why, in_flight=len(self.pool.in_flight()), buffered=len(self._buffer)
        )
        self._release_buffer()
        self.pool.retire_idle()

    def _stop_now(self) -> None:
        self._stopping = "now"
        self._release_buffer()
        interrupted = self.pool.kill_all()
        self._release(interrupted)

    def _release_buffer(self) -> None:
        # Timeouts held back for their mount's window are not decided: released too.
        jobs = [j for j in [*self._buffer, *self.storage.take_held()] if j.id in self._held]
        self._buffer.clear()
        self._release(jobs)

    def _release(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        self._db.submit("release", lambda: self.store.release(jobs), context=jobs)

    def _released(self, answer: Answer) -> None:
        jobs: list[Job] = answer.context
        if answer.error is not None:
            metrics.DB_ERRORS.labels("release").inc()
            # The leases expire and another daemon takes the rows: late, never lost.
            log.warning(
                "could not release rows; their leases will expire",
                rows=len(jobs),
                error=str(answer.error),
            )
            return
        for job in jobs:
            self._held.pop(job.id, None)
        self.storage.forget(jobs)
        metrics.RELEASED.inc(answer.value)

    def _handle_answers(self, answers: list[Answer]) -> None:
        handlers = {
            "claim": self._claimed,
            "write": self._written,
            "renew": self._renewed,
            "rescue": self._rescued,
            "release": self._released,
            "measure": self._measured,
            "heartbeat": self._heartbeat_answered,
            "forget": self._forgotten,
            "give_back": self._given_back,
        }
        for answer in answers:
            handlers[answer.kind](answer)

    def _shutdown(self) -> None:
        if self._stopping is None:
            self._stopping = "drain"
        self._release_buffer()
        self._release(self.pool.kill_all())
        self._flush_before_exit()
        self._db.stop()
        self.storage.close()
        self.pool.close()
        if self._listener is not None:
            self._listener.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        log.info(
            "stopped",
            done=self.tally.done,
            failed=sum(self.tally.failed.values()),
            retried=self.tally.retried,
            stale=self.tally.stale,
        )

    def _flush_before_exit(self) -> None:
        """Last writes and releases, and this daemon's row deleted, through the database
        thread, for a bounded time."""
        self._forget()
        deadline = time.monotonic() + max(5.0, self.config.daemon.shutdown_grace_seconds)
        while time.monotonic() < deadline:
            self._db_retry_at = 0.0
            self._maybe_flush(time.monotonic(), force=True)
            if self._db.idle() and not self._results:
                break
            answer = self._db.wait_answer(timeout=max(0.0, deadline - time.monotonic()))
            if answer is not None:
                self._handle_answers([answer])
                if answer.error is not None:
                    time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        self._results += self._writing
        if self._results:
            log.error(
                "could not write results before exiting; those rows will run again "
                "when their leases expire",
                rows=len(self._results),
            )

    # --- reporting --------------------------------------------------------------------

    def _maybe_announce(self, now: float) -> None:
        """READY once the workers are up; then a STATUS line every few seconds."""
        if not self._announced_ready:
            slots = self.pool.slots
            if slots and all(slot.ready for slot in slots):
                self._announced_ready = True
                self.notifier.ready(self._status_text())
                log.info("ready", workers=len(slots))
            return
        if now >= self._next_status and self._stopping is None:
            self._next_status = now + STATUS_EVERY
            self.notifier.status(self._status_text())

    def _status_text(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.tally.started_at)
        backlog = "?" if self._backlog is None else str(self._backlog)
        text = (
            f"{self.tally.finished / elapsed:.1f} files/s, backlog {backlog}, "
            f"{self.pool.busy_count()}/{len(self.pool.slots)} workers busy, "
            f"{self.tally.done} done, {sum(self.tally.failed.values())} failed"
        )
        stalled = sorted(self.storage.stalled())
        if stalled:
            text += f"; mount stalled: {', '.join(stalled)}"
        stuck, limit = self._stuck_now(), self.pool.stuck_limit()
        if stuck:
            text += f"; {stuck} stuck processes (limit {limit})"
            if stuck >= limit:
                text += ": network mounts get no files"
        return text

    def _pool_event(self, name: str, fields: dict[str, Any]) -> None:
        if name == "worker_died":
            metrics.WORKER_RESTARTS.labels("crash").inc()
            log.warning("worker died", **fields)
        elif name == "worker_timeout":
            metrics.WORKER_RESTARTS.labels("timeout").inc()
            if fields.get("row_id") is not None:
                self._timed_out[fields["row_id"]] = fields.get("device")
            log.warning("worker killed: file ran past the timeout", **fields)
        elif name == "worker_recycled":
            metrics.WORKER_RESTARTS.labels("recycled").inc()
            log.debug("worker recycled", **fields)
        elif name == "worker_stuck":
            log.warning("worker stuck", **fields)
        elif name == "stuck_exited":
            log.info("stuck worker exited", **fields)
        elif name == "stuck_limit":
            log.warning("stuck workers at the limit: not replacing workers", **fields)
        elif name == "stuck_limit_cleared":
            log.info("stuck workers below the limit: replacing workers again", **fields)
        elif name == "left_behind":
            log.warning("left behind stuck processes", **fields)

    def _maybe_summarise(self, now: float) -> None:
        if now < self._next_summary:
            return
        self._next_summary = now + SUMMARY_EVERY
        elapsed = max(1e-9, now - self.tally.started_at)
        log.info(
            "progress",
            done=self.tally.done,
            failed=sum(self.tally.failed.values()),
            retried=self.tally.retried,
            files_per_s=round(self.tally.finished / elapsed, 1),
            busy=self.pool.busy_count(),
            buffered=len(self._buffer),
        )

    def _maybe_measure_queue(self, now: float) -> None:
        """Queue depth and the oldest due row, for the gauges; not on every loop turn."""
        if self.mode.one_shot or now < self._next_queue_measure or now < self._db_retry_at:
            return
        if self._db.busy("measure"):
            return
        self._next_queue_measure = now + QUEUE_MEASURE_EVERY

        def measure() -> tuple[dict[str, int], float | None]:
            return self.store.counts(), self.store.oldest_pending_seconds()

        self._db.submit("measure", measure)

    def _measured(self, answer: Answer) -> None:
        if answer.error is not None:
            self._db_error("measure", answer.error)
            return
        counts, oldest = answer.value
        metrics.DB_SECONDS.labels("measure").observe(answer.seconds)
        metrics.QUEUE_MEASURED_TIME.set(time.time())
        for state, value in counts.items():
            metrics.QUEUE_ROWS.labels(state).set(value)
        self._backlog = counts["pending"]
        metrics.OLDEST_PENDING.set(oldest or 0.0)

    def _count_connections(self) -> None:
        opened = self.store.db.connections_opened() + (
            self._listener.connections_opened if self._listener is not None else 0
        )
        if opened > self._connections_counted:
            metrics.DB_CONNECTIONS_OPENED.inc(opened - self._connections_counted)
        # A new store (reload) or listener starts from zero again.
        self._connections_counted = opened

    def _update_gauges(self) -> None:
        self._count_connections()
        metrics.WORKERS_TARGET.set(self.pool.target_size)
        busy = self.pool.busy_count()
        metrics.WORKERS.labels("busy").set(busy)
        metrics.WORKERS.labels("idle").set(max(0, len(self.pool.slots) - busy))
        metrics.BUFFERED.set(len(self._buffer))
