"""The commands that work from an application's own table: `attach` and `detach` (see
docs/attach.md). Flags here; the handlers (handlers.py) are imported only when one of
these commands runs."""

from __future__ import annotations

import argparse

from mediad.commands.base import Command, handled_by
from mediad.commands.options import utf8

ATTACH_HELP = (
    "Work from an application's own table: queue its rows "
    "(now and whenever one is inserted or its path changes) and write "
    "results back into it. See docs/attach.md."
)
DETACH_HELP = (
    "Stop working from an application's table: drop the "
    "trigger, its function and the queued rows. The table's data "
    "(metadata already written included) stays as it is."
)


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


def _attach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "table", type=utf8, metavar="TABLE", help="the table, e.g. public.media_files"
    )
    parser.add_argument(
        "--id",
        dest="id_column",
        type=utf8,
        required=True,
        metavar="COLUMN",
        help="the row's key (primary key or unique column)",
    )
    parser.add_argument(
        "--path",
        dest="path_column",
        type=utf8,
        required=True,
        metavar="COLUMN",
        help="the column holding the file's path",
    )
    parser.add_argument(
        "--metadata",
        dest="metadata_column",
        type=utf8,
        metavar="COLUMN",
        help="jsonb/json/text column that receives MediaInfo's document",
    )
    parser.add_argument(
        "--summary-prefix",
        type=utf8,
        metavar="P",
        help="also fill the columns named P<key> that exist, for each "
        "summary key (e.g. media_ for media_duration_s)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="queue rows whose metadata column is already filled too "
        "(default: skip them, like the old --skip-existing)",
    )
    parser.add_argument(
        "--path-prefix",
        metavar="DIR",
        help="the library root: prepended to paths that do not start with / "
        "(absolute; without it such rows fail bad_path)",
    )
    _table_change_options(parser)
    parser.add_argument(
        "--backfill-batch",
        type=int,
        default=1000,
        metavar="N",
        help="rows queued per backfill transaction (default 1000)",
    )


def _detach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=utf8, metavar="TABLE")
    _table_change_options(parser)


# Imported only when one of these commands runs.
HANDLERS = f"{__name__}.handlers"

COMMANDS = (
    Command("attach", ATTACH_HELP, _attach_options, handled_by(HANDLERS, "attach")),
    Command("detach", DETACH_HELP, _detach_options, handled_by(HANDLERS, "detach")),
)
