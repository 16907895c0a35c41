"""The commands that read: `status`, the queue as a whole and the live daemons, and
`show`, what mediad knows of given paths. Flags here; the handlers (handlers.py) and their
output (output.py) are imported only when one of these commands runs."""

from __future__ import annotations

import argparse

from mediad.commands.base import Command, handled_by
from mediad.commands.options import STDIN_HELP, path_options

STATUS_HELP = (
    "Queue counts by state, rates, failures by class; live daemons' mounts and stuck workers."
)
SHOW_HELP = "What mediad knows of these paths, in the order given. " + STDIN_HELP


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _show_options(parser: argparse.ArgumentParser) -> None:
    path_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per path, per line")


# Imported only when one of these commands runs.
HANDLERS = f"{__name__}.handlers"

COMMANDS = (
    Command("status", STATUS_HELP, _status_options, handled_by(HANDLERS, "status")),
    Command("show", SHOW_HELP, _show_options, handled_by(HANDLERS, "show")),
)
