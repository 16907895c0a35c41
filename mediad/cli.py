"""The `mediad` command line. Exit codes: 0 success or clean drain, 2 usage or config, 1 else
(141: the reader of standard output went away first).

Light on purpose: it reads the arguments and the config, and lets the command start what
must start first (`run`: its workers, mediad/commands/daemon) before it imports the
command's code and with it psycopg, structlog and prometheus-client. A worker's boot (a
Python and libmediainfo) then overlaps those imports instead of following them.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from mediad import __version__
from mediad.commands import all_commands
from mediad.commands.base import Launch
from mediad.commands.options import global_options
from mediad.config import Config
from mediad.errors import MediadError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediad",
        description="Keeps the technical metadata of a media library in PostgreSQL up to date.",
    )
    parser.add_argument("--version", action="version", version=f"mediad {__version__}")
    global_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in all_commands().values():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        global_options(sub, default=argparse.SUPPRESS)
        command.options(sub)
    return parser


# `mediad status | head -1`: the reader left before mediad finished writing. The code a
# shell reports for a tool that SIGPIPE stopped (128 + 13), as `cat` would give.
EXIT_STDOUT_CLOSED = 141


@dataclass
class _Progress:
    """How far a command got, for reporting an unexpected error the right way."""

    config: Config | None = None
    logging_configured: bool = False
    daemon: bool = False


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
    launch = all_commands()[args.command].launch(args)
    progress.daemon = launch.daemon
    try:
        config = launch.config()
    except MediadError as exc:
        print(f"mediad: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    progress.config = config
    try:
        return _run(launch, config, progress)
    except MediadError as exc:
        print(f"mediad: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _run(launch: Launch, config: Config, progress: _Progress) -> int:
    with launch.started(config) as command:
        from mediad import logs  # only now: the command line stays light (see the top)

        logs.configure(config.log.level, config.log.format, libraries=launch.daemon)
        progress.logging_configured = True
        return command()


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
    if progress.daemon and progress.logging_configured:
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
