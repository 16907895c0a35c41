"""The commands of `mediad`, one package per family:

- daemon: `run`, and `extract`, its one-shot form;
- queue: `scan`, `enqueue`, `retry`, `reextract`, `pause`, `resume`;
- report: `status`, `show`;
- tables: `attach`, `detach`;
- admin: `migrate`, `check-config`.

A family's `__init__` declares its commands (help, flags, launch) and stays light: the
command line imports every one of them before `run` starts its workers (mediad/cli.py).
The rest of a family's package (handlers, their output) is imported only when one of its
commands runs, and with it psycopg, structlog and prometheus-client.
"""

from __future__ import annotations

from mediad.commands import admin, daemon, queue, report, tables
from mediad.commands.base import Command

FAMILIES = (daemon, queue, report, tables, admin)

# The order `mediad --help` has always listed the commands in.
ORDER = (
    "run",
    "extract",
    "scan",
    "enqueue",
    "status",
    "top",
    "show",
    "retry",
    "reextract",
    "pause",
    "resume",
    "attach",
    "detach",
    "migrate",
    "check-config",
)


def all_commands() -> dict[str, Command]:
    """Every command by name, in the order of `mediad --help` (a command left out of
    ORDER fails here, at the first use of the command line)."""
    commands = [command for family in FAMILIES for command in family.COMMANDS]
    return {c.name: c for c in sorted(commands, key=lambda c: ORDER.index(c.name))}
