"""`mediad run`: the daemon, with workers that the command line started already."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import structlog

from mediad import notify
from mediad.commands.tables.attaching import apply_attach_config
from mediad.config import Config
from mediad.daemon.backfill import Backfill
from mediad.daemon.loop import Supervisor
from mediad.daemon.mode import owner_name
from mediad.db import intake
from mediad.db.queue import Queue
from mediad.pool import WorkerPool
from mediad.runtime import connect, open_database
from mediad.scan import scan_into

log = structlog.get_logger("mediad")


def run(
    args: argparse.Namespace,
    config: Config,
    *,
    reload_config: Callable[[], Config],
    notifier: notify.Notifier,
    pool: WorkerPool,
) -> int:
    with open_database(config, owner=owner_name(config.daemon.instance)) as store:
        pending_backfills = apply_attach_config(store, config.attach)
        if args.scan:
            sidecars = config.extract.second_reader
            scan_into(partial(intake.scan_upsert, store, sidecars=sidecars), args.scan, 0)
        if not config.extract.roots:
            log.warning("extract.roots is empty: any file this user can read may be extracted")
        else:
            log.info("reading only files under extract.roots", roots=list(config.extract.roots))
        supervisor = Supervisor(
            config,
            Queue(store),
            reload_config=reload_config,
            notifier=notifier,
            store_factory=lambda new: Queue(connect(new, store.owner)),
            pool=pool,
        )
        backfill = Backfill(store, pending_backfills)
        backfill.start()
        try:
            return supervisor.run()
        finally:
            backfill.stop()
