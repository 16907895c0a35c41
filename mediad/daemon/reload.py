"""Live reconfiguration (SIGHUP): the new config is read and validated in full; on any
error the running one is kept and the reason logged. What can change live does at once;
extraction settings reach workers by replacing them; what needs a restart is refused."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from mediad import logs, metrics
from mediad.config import Config, mask_dsn
from mediad.daemon.mode import Phase, retry_policy
from mediad.daemon.storage import StorageSettings
from mediad.errors import MediadError
from mediad.pool import worker_settings

if TYPE_CHECKING:
    from mediad.daemon.loop import Supervisor

log = structlog.get_logger("mediad")


class ReloadRefused(MediadError):
    """A valid config that cannot be applied live; the running one is kept."""


class Reloader:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor

    def reload(self) -> None:
        sup = self.sup
        if sup.reload_config is None:
            return
        sup.notifier.reloading()
        try:
            new = sup.reload_config()
            self.apply(new)
        except Exception as exc:  # an invalid file never kills the daemon
            metrics.RELOADS.labels("failed").inc()
            metrics.RELOAD_OK.set(0)
            log.error("reload refused: keeping the running configuration", error=str(exc))
        else:
            metrics.RELOADS.labels("applied").inc()
            metrics.RELOAD_OK.set(1)
            metrics.RELOAD_OK_TIME.set(time.time())
            log.info("configuration reloaded", source=new.source or None)
        sup.notifier.ready(sup.reporter.status_text())

    def apply(self, new: Config) -> None:
        """Apply a validated config live. Refuses (raises) only what needs a restart."""
        sup = self.sup
        old = sup.config
        if new.database.schema != old.database.schema:
            raise ReloadRefused("database.schema cannot change while running: restart mediad")
        logs.configure(new.log.level, new.log.format)
        if new.database.dsn != old.database.dsn or new.database.listen != old.database.listen:
            self._switch_database(new)
        if new.metrics.listen != old.metrics.listen and not sup.mode.one_shot:
            self._rebind_metrics(new.metrics.listen)
        sup.config = new
        sup.policy = retry_policy(new)
        sup.results.reconfigure(new.daemon.flush_seconds, new.daemon.batch_size)
        pool = sup.pool
        pool.timeout_seconds = new.extract.timeout_seconds
        pool.max_files_per_worker = new.daemon.max_files_per_worker
        pool.prefetch = max(1, new.daemon.prefetch)
        pool.max_stuck = new.daemon.max_stuck_workers
        sup.storage.reconfigure(StorageSettings.from_config(new))
        settings = worker_settings(new)
        if sup.phase is Phase.RUNNING:
            sup.resize(new.effective_workers())
            if settings != pool.settings:
                # Roots, timeouts of MediaInfo, memory limit: only new workers get them.
                pool.settings = settings
                pool.replace_all()
                log.info("workers replaced to apply the new extraction settings")

    def _switch_database(self, new: Config) -> None:
        sup = self.sup
        if sup.store_factory is None:
            raise ReloadRefused("database.dsn cannot change in this mode")
        store = sup.store_factory(new)  # raises if unreachable: the old one stays
        old_store, sup.db.store = sup.db.store, store
        sup.stop_listening()
        if new.database.listen:
            sup.listen()
        old_store.db.close()
        log.info("database switched", dsn=mask_dsn(new.database.dsn) or "embedded")

    def _rebind_metrics(self, address: str) -> None:
        server = metrics.serve(address)  # raises if it cannot bind: the old one stays
        self.sup.close_metrics()
        self.sup.metrics_server = server
        log.info("metrics endpoint moved", listen=address or None)
