"""The commands that fill and steer the queue: `scan` walks trees, `enqueue` names paths,
`retry` queues failed rows again, `reextract` queues finished rows again behind new work,
`pause` and `resume` hold rows back from every daemon and let them go again. Flags
here; the handlers (handlers.py, reextracting.py, pausing.py) are imported only when one
of these commands runs."""

from __future__ import annotations

import argparse

from mediad.commands.base import Command, handled_by
from mediad.commands.options import STDIN_HELP, path_options, priority, utf8
from mediad.errors import FailureClass
from mediad.reextract import REEXTRACT_PRIORITY
from mediad.walker import MIN_STALL_SECONDS, STALL_SECONDS

# The classes a failed row can carry: any other `retry --class` would match no row.
FAILURE_CLASSES = tuple(str(c) for c in FailureClass)

SCAN_HELP = (
    "Walk trees and enqueue new files and files whose size or mtime "
    "changed; unchanged files are skipped."
)
ENQUEUE_HELP = "Queue paths for extraction (again, if already finished). " + STDIN_HELP
RETRY_HELP = "Queue failed rows again, all or of one failure class."
REEXTRACT_HELP = (
    "Queue finished rows again to extract them anew (after an upgrade of mediad's mapping "
    "or of a reader), behind new work. Filters combine: a row must match each. Without "
    "--class the rows done; with it the rows failed with that class. A filter or --all "
    "is required."
)
PAUSE_HELP = (
    "Pause extraction on every daemon, of every row or of the paths under a directory: "
    "paused rows stay pending, uncharged; files being read finish."
)
RESUME_HELP = "Lift the pause of a directory, or every pause."


def _scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR")
    parser.add_argument("--priority", type=priority, default=0, help="higher is claimed first")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=STALL_SECONDS,
        metavar="N",
        help="a directory that gives no answer for N seconds (a dead network or FUSE "
        "mount) is reported unreachable: the scan stops there, keeps what it found and "
        f"exits 1 (default {STALL_SECONDS:g}, at least {MIN_STALL_SECONDS:g})",
    )


def _enqueue_options(parser: argparse.ArgumentParser) -> None:
    path_options(parser)
    parser.add_argument("--priority", type=priority, default=0, help="higher is claimed first")


def _retry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class",
        dest="error_class",
        type=utf8,
        metavar="CLASS",
        choices=FAILURE_CLASSES,
        help="only rows that failed with this class, one of: " + ", ".join(FAILURE_CLASSES),
    )


def _mapping_version(value: str) -> int | str:
    if value == "current":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a version number or 'current'"
        ) from None


def _reextract_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping-below",
        type=_mapping_version,
        metavar="N",
        help="rows whose mapping_version is below N, or NULL (written before versions were "
        "recorded); 'current' is this mediad's version: the rows `status` counts as on an "
        "older mapping",
    )
    parser.add_argument(
        "--container",
        dest="containers",
        action="append",
        type=utf8,
        metavar="X",
        help="rows whose container is X exactly, as `show` prints it (e.g. MPEG-4, JPEG); "
        "repeat for several",
    )
    parser.add_argument(
        "--ext",
        dest="extensions",
        action="append",
        type=utf8,
        metavar="EXT",
        help="rows whose path ends in .EXT, any case (.jpg and jpg alike); repeat for several",
    )
    parser.add_argument(
        "--class",
        dest="classes",
        action="append",
        type=utf8,
        metavar="CLASS",
        choices=FAILURE_CLASSES,
        help="failed rows of this class instead of done rows (repeat for several), one of: "
        + ", ".join(FAILURE_CLASSES),
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every done row, with no filter (as extract --all, but behind new work)",
    )
    parser.add_argument(
        "--priority",
        type=priority,
        default=REEXTRACT_PRIORITY,
        help=f"the priority they are queued at (default {REEXTRACT_PRIORITY}: after every "
        "row queued at the default 0)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print how many rows match; change nothing"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _prefix_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--prefix", type=utf8, metavar="DIR", help=help_text)


def _pause_options(parser: argparse.ArgumentParser) -> None:
    _prefix_option(
        parser, "only the paths under DIR (as mediad reads them: attached rows included)"
    )
    parser.add_argument(
        "--until",
        type=utf8,
        metavar="TIME",
        help="lift the pause by itself at TIME, ISO 8601 (e.g. 2026-12-03T18:00+01:00; "
        "the local time zone without an offset)",
    )


def _resume_options(parser: argparse.ArgumentParser) -> None:
    _prefix_option(parser, "lift the pause of DIR only (default: lift every pause)")


# Imported only when one of these commands runs.
HANDLERS = f"{__name__}.handlers"
PAUSING = f"{__name__}.pausing"
REEXTRACTING = f"{__name__}.reextracting"

COMMANDS = (
    Command("scan", SCAN_HELP, _scan_options, handled_by(HANDLERS, "scan")),
    Command("enqueue", ENQUEUE_HELP, _enqueue_options, handled_by(HANDLERS, "enqueue")),
    Command("retry", RETRY_HELP, _retry_options, handled_by(HANDLERS, "retry")),
    Command("reextract", REEXTRACT_HELP, _reextract_options, handled_by(REEXTRACTING, "reextract")),
    Command("pause", PAUSE_HELP, _pause_options, handled_by(PAUSING, "pause")),
    Command("resume", RESUME_HELP, _resume_options, handled_by(PAUSING, "resume")),
)
