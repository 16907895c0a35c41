"""The commands that look after mediad itself: `migrate` its schema, `check-config` its
configuration. Flags here; the handlers (handlers.py) are imported only when one of
these commands runs."""

from __future__ import annotations

import argparse

from mediad.commands.base import Command, handled_by, no_options

MIGRATE_HELP = "Create or upgrade mediad's schema (safe to run concurrently)."
CHECK_CONFIG_HELP = "Validate the configuration and print it, secrets masked."


def _check_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


# Imported only when one of these commands runs.
HANDLERS = f"{__name__}.handlers"

COMMANDS = (
    Command("migrate", MIGRATE_HELP, no_options, handled_by(HANDLERS, "migrate")),
    Command(
        "check-config",
        CHECK_CONFIG_HELP,
        _check_config_options,
        handled_by(HANDLERS, "check_config"),
    ),
)
