"""The commands that run the daemon's loop: `run`, the daemon, and `extract`, its one-shot
form. Flags and launch here; the handlers (run.py, extract.py) are imported once the
workers boot, so that they boot while psycopg, structlog and prometheus-client load."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator

from mediad import notify, startup
from mediad.commands.base import Command, Handled, Launch
from mediad.commands.options import load_config, overrides, worker_options
from mediad.config import Config, load
from mediad.errors import MediadError
from mediad.pool import WorkerBootError, WorkerPool, make_pool

RUN_HELP = (
    "Run the daemon: claim pending rows, extract, write back, until "
    "SIGTERM/SIGINT (which drain). SIGHUP reloads the config."
)
EXTRACT_HELP = (
    "One-shot run of the old extract-media-from-db script: "
    "process pending rows and exit with a summary. SIGINT/SIGTERM drain, then exit "
    "130/143 with the counts done and still pending."
)

# Variables that may carry the database password: read once at start, then removed from
# the environment so that worker processes (which inherit it) never see them.
SECRET_VARIABLES = ("MEDIAD_DATABASE_DSN", "PGPASSWORD")


def _run_options(parser: argparse.ArgumentParser) -> None:
    worker_options(parser)
    parser.add_argument(
        "--scan",
        nargs="+",
        metavar="DIR",
        default=[],
        help="scan these trees before starting (the quick start uses it)",
    )
    parser.add_argument(
        "--no-listen",
        action="store_true",
        help="poll only (no LISTEN/NOTIFY), e.g. behind PgBouncer",
    )
    parser.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="metrics address; '' for none"
    )


def _extract_options(parser: argparse.ArgumentParser) -> None:
    worker_options(parser)
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="process at most N files (0: all)"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="pending rows that already hold metadata from an earlier extraction are not "
        "extracted: they go back to done, metadata untouched (not the rows `reextract` "
        "queued: their metadata is to be made again)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="first queue again every finished row (re-extract everything); with --limit N, "
        "only as many as the run processes, those extracted longest ago first",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def scrub_secret_environment() -> dict[str, str]:
    """The environment as it was (for reloads), after removing secrets from the live one."""
    startup.keep(os.environ)
    environ = dict(os.environ)
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    return environ


def _run_config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    """The daemon's config; the embedded quick start confines itself to the scanned trees."""
    config = load_config(args, environ)
    if config.embedded and not config.extract.roots and args.scan:
        roots = [os.path.abspath(d) for d in args.scan]
        config = load(
            args.config,
            environ=environ,
            overrides={**overrides(args), ("extract", "roots"): roots},
        )
    return config


def _start_workers(config: Config) -> tuple[notify.Notifier, WorkerPool]:
    """What `run` does before anything slow: systemd's notifier (a missing extra fails
    now), and the workers, which boot while the rest of mediad is imported and the
    database reached."""
    notifier = notify.from_environment()
    pool = make_pool(config)
    try:
        pool.maintain()
    except BaseException:
        pool.close()  # a worker already started must not outlive a failed start
        raise
    return notifier, pool


@contextlib.contextmanager
def _boot_failure_reported() -> Iterator[None]:
    """Workers that cannot start at all, at first or later: said in one line."""
    try:
        yield
    except WorkerBootError as exc:
        raise MediadError(f"workers cannot start: {exc}") from None


class DaemonLaunch(Launch):
    """`run`: the secrets leave the environment before a worker can inherit it, and the
    config (and every reload) is read from the copy taken first; the workers start before
    the daemon's code is imported, and stop when the command ends, however it ends."""

    daemon = True

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.environ: dict[str, str] = {}

    def config(self) -> Config:
        self.environ = scrub_secret_environment()
        return _run_config(self.args, self.environ)

    @contextlib.contextmanager
    def started(self, config: Config) -> Iterator[Callable[[], int]]:
        with _boot_failure_reported():
            notifier, pool = _start_workers(config)
            try:
                yield lambda: self._run(config, notifier, pool)
            finally:
                pool.close()

    def _run(self, config: Config, notifier: notify.Notifier, pool: WorkerPool) -> int:
        from mediad.commands.daemon import run

        return run.run(
            self.args,
            config,
            reload_config=lambda: _run_config(self.args, self.environ),
            notifier=notifier,
            pool=pool,
        )


class ExtractLaunch(Handled):
    """`extract`: its handler starts the workers (mediad/commands/daemon/extract.py)."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, f"{__name__}.extract", "extract")

    @contextlib.contextmanager
    def started(self, config: Config) -> Iterator[Callable[[], int]]:
        with _boot_failure_reported(), super().started(config) as command:
            yield command


COMMANDS = (
    Command("run", RUN_HELP, _run_options, DaemonLaunch),
    Command("extract", EXTRACT_HELP, _extract_options, ExtractLaunch),
)
