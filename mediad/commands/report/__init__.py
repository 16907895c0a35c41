"""The commands that read: `status`, the queue as a whole and the daemons, `top`, the
same live for a person, and `show`, what mediad knows of given paths. Flags here; the
handlers (handlers.py, top.py) and their output (output.py, topview.py) are imported only
when one of these commands runs: `top` alone loads rich."""

from __future__ import annotations

import argparse

from mediad.commands.base import Command, handled_by
from mediad.commands.options import STDIN_HELP, path_options

STATUS_HELP = (
    "Queue counts by state, rates, failures by class; live daemons' mounts and stuck workers."
)
TOP_HELP = (
    "A live view of every daemon and worker: the file each one reads and for how long, "
    "queue counts and rates, recent failures, stalled mounts. q or Ctrl-C quits."
)
SHOW_HELP = "What mediad knows of these paths, in the order given. " + STDIN_HELP


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _top_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="print one snapshot as plain text and exit"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )


def _show_options(parser: argparse.ArgumentParser) -> None:
    path_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per path, per line")


# Imported only when one of these commands runs.
HANDLERS = f"{__name__}.handlers"
TOP = f"{__name__}.top"

COMMANDS = (
    Command("status", STATUS_HELP, _status_options, handled_by(HANDLERS, "status")),
    Command("top", TOP_HELP, _top_options, handled_by(TOP, "top")),
    Command("show", SHOW_HELP, _show_options, handled_by(HANDLERS, "show")),
)
