"""The `mediad` command line. Exit codes: 0 success or clean drain, 2 usage or config, 1 else
(141: the reader of standard output went away first).

Light on purpose: it reads the arguments and the config, and for `run` starts the workers,
before it imports the commands (mediad/commands.py) and with them psycopg, structlog and
prometheus-client. A worker's boot (a Python and libmediainfo) then overlaps those imports
instead of following them.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mediad import __version__, notify
from mediad.config import Config, load
from mediad.errors import FailureClass, MediadError
from mediad.paths import escaped, is_utf8
from mediad.pool import WorkerBootError, WorkerPool, make_pool
from mediad.walker import MIN_STALL_SECONDS, STALL_SECONDS

# --- parser ---------------------------------------------------------------------------

# The classes a failed row can carry: any other `retry --class` would match no row.
FAILURE_CLASSES = tuple(str(c) for c in FailureClass)


def _global_options(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
    """The options every command takes. The top-level parser holds them with None
    defaults; each command's copy defaults to SUPPRESS, so that a command whose own copy
    is not given leaves the value given before the command in place (argparse copies
    every attribute of the command's namespace over the top-level one), and one given
    after the command wins."""
    group = parser.add_argument_group("global options (before or after the command; after it wins)")
    group.add_argument(
        "--config", metavar="FILE", default=default, help="TOML config file (or MEDIAD_CONFIG)"
    )
    group.add_argument("--dsn", default=default, help="PostgreSQL DSN; empty: the embedded server")
    group.add_argument("--schema", default=default, help="mediad's schema (default mediad)")
    group.add_argument(
        "--state-dir", metavar="DIR", default=default, help="where the embedded server lives"
    )
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default,
        help="debug also prints the traceback of an unexpected error",
    )
    group.add_argument(
        "--log-format", choices=("auto", "console", "json", "journald"), default=default
    )


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        "--threads",
        dest="workers",
        type=int,
        metavar="N",
        help="worker processes (--threads is the old script's name for it)",
    )
    parser.add_argument("--batch-size", type=int, metavar="N", help="rows claimed per statement")


def _table_change_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print every SQL statement it would run, change nothing",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="longest wait for the brief lock the trigger change needs "
        "(writers queue behind it meanwhile); retried 5 times",
    )


STDIN_HELP = (
    "'-' as the only PATH reads the paths from standard input, one per line (blank lines "
    "skipped), or NUL-terminated with --null; a file named - is ./-. Names that are not "
    "UTF-8 are shown with \\x escapes, as they are recorded."
)


def _path_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--null",
        "-0",
        action="store_true",
        help="with '-': the paths on standard input end with NUL, as find -print0 "
        "writes them, so any name passes (newlines included)",
    )


def _utf8(value: str) -> str:
    """A name PostgreSQL receives as text (a table, a column, a failure class)."""
    if not is_utf8(value):
        raise argparse.ArgumentTypeError(f"{escaped(value)} is not valid UTF-8")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediad",
        description="Keeps the technical metadata of a media library in PostgreSQL up to date.",
    )
    parser.add_argument("--version", action="version", version=f"mediad {__version__}")
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, default=argparse.SUPPRESS)
        return sub

    run = command(
        "run",
        "Run the daemon: claim pending rows, extract, write back, until "
        "SIGTERM/SIGINT (which drain). SIGHUP reloads the config.",
    )
    _worker_options(run)
    run.add_argument(
        "--scan",
        nargs="+",
        metavar="DIR",
        default=[],
        help="scan these trees before starting (the quick start uses it)",
    )
    run.add_argument(
        "--no-listen",
        action="store_true",
        help="poll only (no LISTEN/NOTIFY), e.g. behind PgBouncer",
    )
    run.add_argument("--metrics-listen", metavar="HOST:PORT", help="metrics address; '' for none")

    extract = command(
        "extract",
        "One-shot run of the old extract-media-from-db script: "
        "process pending rows and exit with a summary. SIGINT/SIGTERM drain, then exit "
        "130/143 with the counts done and still pending.",
    )
    _worker_options(extract)
    extract.add_argument(
        "--limit", type=int, default=0, metavar="N", help="process at most N files (0: all)"
    )
    extract.add_argument(
        "--skip-existing",
        action="store_true",
        help="pending rows that already hold metadata from an earlier extraction are not "
        "extracted: they go back to done, metadata untouched",
    )
    extract.add_argument(
        "--all",
        action="store_true",
        help="first queue again every finished row (re-extract everything); with --limit N, "
        "only as many as the run processes, those extracted longest ago first",
    )
    extract.add_argument("--json", action="store_true", help="print the summary as JSON")

    scan = command(
        "scan",
        "Walk trees and enqueue new files and files whose size or mtime "
        "changed; unchanged files are skipped.",
    )
    scan.add_argument("dirs", nargs="+", metavar="DIR")
    scan.add_argument("--priority", type=int, default=0, help="higher is claimed first")
    scan.add_argument(
        "--stall-seconds",
        type=float,
        default=STALL_SECONDS,
        metavar="N",
        help="a directory that gives no answer for N seconds (a dead network or FUSE "
        "mount) is reported unreachable: the scan stops there, keeps what it found and "
        f"exits 1 (default {STALL_SECONDS:g}, at least {MIN_STALL_SECONDS:g})",
    )

    enqueue = command(
        "enqueue",
        "Queue paths for extraction (again, if already finished). " + STDIN_HELP,
    )
    _path_options(enqueue)
    enqueue.add_argument("--priority", type=int, default=0, help="higher is claimed first")

    status = command(
        "status",
        "Queue counts by state, rates, failures by class; live daemons' mounts and stuck workers.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")

    show = command("show", "What mediad knows of these paths, in the order given. " + STDIN_HELP)
    _path_options(show)
    show.add_argument("--json", action="store_true", help="one JSON object per path, per line")

    retry = command("retry", "Queue failed rows again, all or of one failure class.")
    retry.add_argument(
        "--class",
        dest="error_class",
        type=_utf8,
        metavar="CLASS",
        choices=FAILURE_CLASSES,
        help="only rows that failed with this class, one of: " + ", ".join(FAILURE_CLASSES),
    )

    attach_cmd = command(
        "attach",
        "Work from an application's own table: queue its rows "
        "(now and whenever one is inserted or its path changes) and write "
        "results back into it. See docs/attach.md.",
    )
    attach_cmd.add_argument(
        "table", type=_utf8, metavar="TABLE", help="the table, e.g. public.media_files"
    )
    attach_cmd.add_argument(
        "--id",
        dest="id_column",
        type=_utf8,
        required=True,
        metavar="COLUMN",
        help="the row's key (primary key or unique column)",
    )
    attach_cmd.add_argument(
        "--path",
        dest="path_column",
        type=_utf8,
        required=True,
        metavar="COLUMN",
        help="the column holding the file's path",
    )
    attach_cmd.add_argument(
        "--metadata",
        dest="metadata_column",
        type=_utf8,
        metavar="COLUMN",
        help="jsonb/json/text column that receives MediaInfo's document",
    )
    attach_cmd.add_argument(
        "--summary-prefix",
        type=_utf8,
        metavar="P",
        help="also fill the columns named P<key> that exist, for each "
        "summary key (e.g. media_ for media_duration_s)",
    )
    attach_cmd.add_argument(
        "--all",
        action="store_true",
        help="queue rows whose metadata column is already filled too "
        "(default: skip them, like the old --skip-existing)",
    )
    attach_cmd.add_argument(
        "--path-prefix",
        metavar="DIR",
        help="the library root: prepended to paths that do not start with / "
        "(absolute; without it such rows fail bad_path)",
    )
    _table_change_options(attach_cmd)
    attach_cmd.add_argument(
        "--backfill-batch",
        type=int,
        default=1000,
        metavar="N",
        help="rows queued per backfill transaction (default 1000)",
    )

    detach_cmd = command(
        "detach",
        "Stop working from an application's table: drop the "
        "trigger, its function and the queued rows. The table's data "
        "(metadata already written included) stays as it is.",
    )
    detach_cmd.add_argument("table", type=_utf8, metavar="TABLE")
    _table_change_options(detach_cmd)

    command("migrate", "Create or upgrade mediad's schema (safe to run concurrently).")
    check = command("check-config", "Validate the configuration and print it, secrets masked.")
    check.add_argument("--json", action="store_true")
    return parser


# --- config from file, environment and flags ------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    mapping = {
        "dsn": ("database", "dsn"),
        "schema": ("database", "schema"),
        "state_dir": ("daemon", "state_dir"),
        "log_level": ("log", "level"),
        "log_format": ("log", "format"),
        "workers": ("daemon", "workers"),
        "batch_size": ("daemon", "batch_size"),
        "metrics_listen": ("metrics", "listen"),
    }
    found = {
        key: getattr(args, name)
        for name, key in mapping.items()
        if getattr(args, name, None) is not None
    }
    if getattr(args, "no_listen", False):
        found[("database", "listen")] = False
    return found


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    return load(args.config, environ=environ, overrides=_overrides(args))


def _run_config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    """The daemon's config; the embedded quick start confines itself to the scanned trees."""
    config = load_config(args, environ)
    if config.embedded and not config.extract.roots and args.scan:
        roots = [os.path.abspath(d) for d in args.scan]
        config = load(
            args.config,
            environ=environ,
            overrides={**_overrides(args), ("extract", "roots"): roots},
        )
    return config


# Variables that may carry the database password: read once at start, then removed from
# the environment so that worker processes (which inherit it) never see them.
SECRET_VARIABLES = ("MEDIAD_DATABASE_DSN", "PGPASSWORD")


def _scrub_secret_environment() -> dict[str, str]:
    """The environment as it was (for reloads), after removing secrets from the live one."""
    startup = dict(os.environ)
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    return startup


def _start_run(config: Config) -> tuple[notify.Notifier, WorkerPool]:
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


# `mediad status | head -1`: the reader left before mediad finished writing. The code a
# shell reports for a tool that SIGPIPE stopped (128 + 13), as `cat` would give.
EXIT_STDOUT_CLOSED = 141


@dataclass
class _Progress:
    """How far a command got, for reporting an unexpected error the right way."""

    config: Config | None = None
    logging_configured: bool = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = _Progress()
    try:
        code = _dispatch(args, progress)
        sys.stdout.flush()  # a reader gone shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError as exc:
        if _stdout_closed():
            return _leave_quietly()
        return _report_unexpected(exc, args, progress)
    except Exception as exc:
        return _report_unexpected(exc, args, progress)


def _dispatch(args: argparse.Namespace, progress: _Progress) -> int:
    # `run`: the secrets leave the environment before a worker can inherit it; the config
    # (and every reload) is read from the copy taken first.
    environ = _scrub_secret_environment() if args.command == "run" else None
    try:
        config = load_config(args) if environ is None else _run_config(args, environ)
    except MediadError as exc:
        print(f"mediad: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    progress.config = config
    pool: WorkerPool | None = None
    try:
        if environ is not None:
            notifier, pool = _start_run(config)
        from mediad import commands, logs

        logs.configure(config.log.level, config.log.format, libraries=args.command == "run")
        progress.logging_configured = True
        if environ is None or pool is None:
            return commands.COMMANDS[args.command](args, config)
        return commands.cmd_run(
            args,
            config,
            reload_config=lambda: _run_config(args, environ),
            notifier=notifier,
            pool=pool,
        )
    except WorkerBootError as exc:
        print(f"mediad: workers cannot start: {exc}", file=sys.stderr)
        return 1
    except MediadError as exc:
        print(f"mediad: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if pool is not None:
            pool.close()


def _stdout_closed() -> bool:
    """Whether standard output is a pipe or socket whose reader has gone: poll reports an
    error on it (Linux). A broken pipe elsewhere (a worker's) is not the user's doing."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


def _leave_quietly() -> int:
    """The reader of our output left (`| head`): nothing to say. Standard output now points
    at /dev/null, so that the interpreter's own flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_STDOUT_CLOSED


def _report_unexpected(exc: BaseException, args: argparse.Namespace, progress: _Progress) -> int:
    """One line for the user; the traceback only at log level debug. The daemon also logs
    it at error level, so that the journal keeps the crash."""
    from mediad import logs  # only now: the command line stays light (see the top)

    level = progress.config.log.level if progress.config is not None else args.log_level
    logged = args.command == "run" and progress.logging_configured
    if logged:
        import structlog

        structlog.get_logger("mediad").exception("mediad stopped on an unexpected error")
    elif level == "debug":
        sys.stderr.write(logs.mask_text("".join(traceback.format_exception(exc))))
    print(f"mediad: error: {logs.mask_text(error_line(exc))}", file=sys.stderr)
    return 1


def error_line(exc: BaseException) -> str:
    """`Type: first line of the message`: the rest (a server's LINE/caret lines, a DETAIL)
    is in the traceback that --log-level debug prints."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    name = type(exc).__name__
    return f"{name}: {lines[0]}" if lines else name


if __name__ == "__main__":
    sys.exit(main())
