"""The supervisor's loop: claims rows, feeds workers, writes results back, acts on signals.

One thread runs the loop below; it owns the pool and decides everything. Statements run
on database threads (mediad/daemon/dbthread.py) so workers are fed while the database
answers: the loop submits a request and takes the answer on a later turn. Data flows one
way: database -> buffer -> workers -> results -> database, and the ledger says where each
held row is (mediad/daemon/ledger.py). Each concern has its own module; this one only
turns the wheel and knows the phase: running, draining, stopping.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import structlog

from mediad import metrics
from mediad.config import Config
from mediad.daemon.claims import Claims
from mediad.daemon.database import Database
from mediad.daemon.leases import Leases
from mediad.daemon.ledger import Ledger, Where
from mediad.daemon.mode import Phase, RunMode, Tally, retry_policy
from mediad.daemon.mountwatch import MountWatch
from mediad.daemon.pauses import Pausing
from mediad.daemon.presence import Presence
from mediad.daemon.reload import Reloader
from mediad.daemon.reporting import Reporter
from mediad.daemon.requests import Claim, GiveBack, Release
from mediad.daemon.results import Results
from mediad.daemon.signals import SignalInbox
from mediad.daemon.spares import Spares
from mediad.daemon.storage import Storage, StorageSettings
from mediad.db.listener import Listener
from mediad.db.queue import Queue
from mediad.models import DaemonReport
from mediad.notify import Notifier
from mediad.pool import WorkerPool, make_pool

log = structlog.get_logger("mediad")


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
        self.mode = mode or RunMode()
        self.policy = retry_policy(config)
        self.tally = Tally()
        self.notifier = notifier or Notifier(None)
        self.reload_config = reload_config
        self.on_progress = on_progress
        self.store_factory = store_factory
        self.phase = Phase.RUNNING
        # The SIGTERM or SIGINT that started the drain: `extract` exits 128 + it.
        self.stopped_by: signal.Signals | None = None
        self._drain_deadline = 0.0
        self.listener: Listener | None = None
        self.metrics_server: Any = None
        self.inbox = SignalInbox()
        self.db = Database(store, self.inbox.wake)
        self.ledger = Ledger()
        # `pool`: one started early, so its workers booted while the database was reached.
        self.pool = pool if pool is not None else make_pool(config)
        # Mounts, caps and stalls (mediad/daemon/storage.py); logs of the pool name mounts.
        self.storage = Storage(StorageSettings.from_config(config))
        self.claims = Claims(self)
        self.results = Results(self)
        self.leases = Leases(self)
        self.mounts = MountWatch(self)
        self.spares = Spares(self)
        self.pausing = Pausing(self)
        self.reporter = Reporter(self)
        self.presence = Presence(self)
        self.reloader = Reloader(self)
        self.pool.on_event = self.reporter.pool_event
        self.pool.register_wakeup(self.inbox.wake_fd)
        self.pool.mount_of = lambda path, device: self.storage.label(path, device)
        self.pool.stuck_elsewhere = lambda: self.storage.probes_killed()

    @property
    def store(self) -> Queue:
        return self.db.store

    def apply_config(self, new: Config) -> None:
        self.reloader.apply(new)

    def report(self) -> DaemonReport:
        return self.presence.report()

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        self.inbox.install()
        metrics.RELOAD_OK_TIME.set(time.time())
        if not self.mode.one_shot and self.config.metrics.listen:
            self.metrics_server = metrics.serve(self.config.metrics.listen)
        if self.config.database.listen:
            self.listen()
        self.db.start()
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
        if self.phase is not Phase.RUNNING:
            return not self._in_flight() and not self._unsettled()
        if self.mode.one_shot:
            idle = (
                not self.ledger.buffer
                and not self._in_flight()
                and not self.results.writeback
                and not self.db.busy(Claim)
                and not self.db.busy(GiveBack)
                and not self.storage.holding()
            )
            limit_hit = bool(self.mode.limit) and self.tally.claimed >= self.mode.limit
            return idle and (self.claims.exhausted or limit_hit)
        return False

    def _in_flight(self) -> bool:
        return bool(self.ledger.count(Where.SENT))

    def _unsettled(self) -> bool:
        """While draining: results or releases not yet written keep the loop alive, until
        the grace period runs out (then `_shutdown` makes a last attempt)."""
        pending = bool(self.results.writeback) or self.db.busy(Release)
        return pending and time.monotonic() < self._drain_deadline

    def _step(self) -> None:
        self._handle_signals()
        now = time.monotonic()
        # Only a loop that comes round pings the watchdog: a wedged one gets restarted.
        self.notifier.watchdog()
        metrics.LOOP_TIME.set(time.time())
        self.reporter.maybe_announce(now)
        # Renew before dispatching: after a pause (SIGSTOP, a stalled VM) the buffered rows
        # may belong to another daemon by now, and must not be read again for nothing.
        self.leases.maybe_renew(now)
        if self.phase is Phase.RUNNING:
            self.pausing.maybe_read(now)
            self.claims.maybe_claim(now, self.results.received)
        self.claims.dispatch()
        ready, woken = self.pool.wait(self._wait_timeout(now))
        if woken:
            self.inbox.drain_wake_pipe()
            if self.phase is Phase.RUNNING:
                self.claims.more_work = True  # a notification (or a signal): look for work
        self.db.handle_answers()
        self.results.record(self.pool.collect(ready) + self.pool.enforce_timeouts())
        self.mounts.take_returned()
        self.mounts.tick(time.monotonic())
        if self.phase is Phase.RUNNING:
            self.spares.update(time.monotonic())
            self.pool.maintain()
        now = time.monotonic()
        self.results.maybe_flush(now)
        self.leases.maybe_rescue(now)
        self.presence.maybe_heartbeat(now)
        self.reporter.tick(now)
        if self.phase is Phase.DRAINING and now >= self._drain_deadline:
            log.warning("grace period over: stopping workers", in_flight=len(self.pool.in_flight()))
            self._stop_now()

    def _wait_timeout(self, now: float) -> float:
        running = self.phase is Phase.RUNNING
        candidates = [
            self.config.daemon.poll_seconds if running else 0.5,
            max(0.0, self.leases.next_renew - now),
            max(0.0, self.presence.next_heartbeat - now),
            max(0.0, self.pausing.next_read - now),
            1.0,  # rescue, summaries and signals are checked at least once a second
        ]
        if self.notifier.watchdog_interval:
            candidates.append(self.notifier.watchdog_interval / 2)
        flush_in = self.results.flush_in(now)
        if flush_in is not None:
            candidates.append(flush_in)
        if self.claims.wanted() and not self.db.busy(Claim):
            # (A claim in flight wakes the loop when it answers: waiting 0 s here spun.)
            candidates.append(max(0.0, self.db.retry_at - now))
        if running and not self.claims.more_work:
            candidates.append(max(0.0, self.claims.next_poll - now))
        next_storage = self.storage.next_due_in(now)
        next_spare = self.spares.next_due_in(now) if running else None
        for value in (
            self.pool.next_deadline_in(),
            self.pool.next_start_in(),
            next_storage,
            next_spare,
        ):
            if value is not None:
                candidates.append(value)
        if self.phase is Phase.DRAINING:
            candidates.append(max(0.0, self._drain_deadline - now))
        return max(0.0, min(candidates))

    # --- signals ---------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        for signum in self.inbox.received():
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self.phase is Phase.RUNNING:
                    self.stopped_by = signal.Signals(signum)
                    self._start_drain(self.stopped_by.name)
                else:
                    log.warning("second signal: stopping now", signal=signal.Signals(signum).name)
                    self._stop_now()
            elif signum == signal.SIGHUP:
                self.reloader.reload()
            elif signum == signal.SIGTTIN and self.phase is Phase.RUNNING:
                self.resize(self.pool.target_size + 1)
            elif signum == signal.SIGTTOU and self.phase is Phase.RUNNING:
                self.resize(max(1, self.pool.target_size - 1))

    def resize(self, size: int) -> None:
        log.info("workers resized", workers=size, was=self.pool.target_size)
        self.pool.resize(size)
        self.pool.maintain()

    # --- the database's notifications and the metrics endpoint ----------------------------

    def listen(self) -> None:
        if not self.mode.one_shot:
            self.listener = self.store.db.listener(self.inbox.wake, self.pausing.changed)
            self.listener.start()

    def stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    def close_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None

    # --- stopping --------------------------------------------------------------------------

    def _start_drain(self, why: str) -> None:
        self.phase = Phase.DRAINING
        self._drain_deadline = time.monotonic() + self.config.daemon.shutdown_grace_seconds
        self.notifier.stopping()
        # Ask systemd for the grace period plus time to flush, beyond its own stop timeout.
        self.notifier.extend_timeout(self.config.daemon.shutdown_grace_seconds + 15)
        log.info(
            "draining",
            signal=why,
            in_flight=len(self.pool.in_flight()),
            buffered=len(self.ledger.buffer),
        )
        self._release_unstarted()
        self.pool.retire_idle()

    def _stop_now(self) -> None:
        self.phase = Phase.STOPPING
        self._release_unstarted()
        self._release_interrupted()

    def _release_unstarted(self) -> None:
        # Timeouts held back for their mount's window are not decided: released too.
        self.storage.take_held()
        self.leases.release(self.ledger.at_stop())

    def _release_interrupted(self) -> None:
        self.leases.release(self.ledger.leaving(self.pool.kill_all()))

    def _shutdown(self) -> None:
        if self.phase is Phase.RUNNING:
            self.phase = Phase.DRAINING
        try:
            self._release_unstarted()
            self._release_interrupted()
            self._flush_before_exit()
        finally:  # a bug re-raised from an answer still leaves nothing running behind
            self.db.stop()
            self.storage.close()
            self.pool.close()
            self.stop_listening()
            self.close_metrics()
            self.inbox.close()
        log.info(
            "stopped",
            done=self.tally.done,
            failed=sum(self.tally.failed.values()),
            retried=self.tally.retried,
            stale=self.tally.stale,
        )

    def _flush_before_exit(self) -> None:
        """Last writes and releases, and this daemon's row deleted, through the database
        threads, for a bounded time."""
        self.presence.forget()
        deadline = time.monotonic() + max(5.0, self.config.daemon.shutdown_grace_seconds)
        while time.monotonic() < deadline:
            self.db.retry_now()
            self.results.maybe_flush(time.monotonic(), force=True)
            if self.db.idle() and not self.results.writeback.pending:
                break
            answer = self.db.wait_and_handle(timeout=max(0.0, deadline - time.monotonic()))
            if answer is not None and answer.error is not None:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        unwritten = self.results.writeback.unwritten()
        if unwritten:
            log.error(
                "could not write results before exiting; those rows will run again "
                "when their leases expire",
                rows=len(unwritten),
            )
