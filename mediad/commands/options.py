"""The flags several commands share, and how flags override the configuration.

Light on purpose, like all the command line reads before a command runs (mediad/cli.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mediad.config import Config, load
from mediad.errors import UsageError
from mediad.paths import escaped, is_utf8, split_names


def global_options(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
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


def worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        "--threads",
        dest="workers",
        type=int,
        metavar="N",
        help="worker processes (--threads is the old script's name for it)",
    )
    parser.add_argument("--batch-size", type=int, metavar="N", help="rows claimed per statement")


PRIORITY_RANGE = (-(2**31), 2**31 - 1)  # the priority column is integer


def priority(value: str) -> int:
    """A priority the column holds (a larger one would be the database's error)."""
    low, high = PRIORITY_RANGE
    try:
        number = int(value)
    except ValueError:
        number = high + 1
    if not low <= number <= high:
        raise argparse.ArgumentTypeError(f"{value!r} is not a priority from {low} to {high}")
    return number


def utf8(value: str) -> str:
    """A name PostgreSQL receives as text (a table, a column, a failure class)."""
    if not is_utf8(value):
        raise argparse.ArgumentTypeError(f"{escaped(value)} is not valid UTF-8")
    return value


# --- paths on the command line or on standard input -------------------------------------

STDIN_HELP = (
    "'-' as the only PATH reads the paths from standard input, one per line (blank lines "
    "skipped), or NUL-terminated with --null; a file named - is ./-. Names that are not "
    "UTF-8 are shown with \\x escapes, as they are recorded."
)


def path_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--null",
        "-0",
        action="store_true",
        help="with '-': the paths on standard input end with NUL, as find -print0 "
        "writes them, so any name passes (newlines included)",
    )


def path_arguments(args: argparse.Namespace) -> list[str]:
    """The PATH arguments of `enqueue` and `show`, or with `-` alone the names on standard
    input; made absolute, never resolved (the gate decides later what a name designates)."""
    paths = list(args.paths)
    if "-" in paths:
        if len(paths) > 1:
            raise UsageError(
                "'-' (paths from standard input) must be the only PATH; name a file called - as ./-"
            )
        paths = split_names(sys.stdin.buffer.read(), null=args.null)
    elif args.null:
        raise UsageError(
            "--null applies to paths read from standard input: give '-' as the only PATH"
        )
    return [os.path.abspath(p) if not os.path.isabs(p) else p for p in paths]


# --- config from file, environment and flags ------------------------------------------


def overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
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
    return load(args.config, environ=environ, overrides=overrides(args))
