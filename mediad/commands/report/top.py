"""`mediad top`: the whole fleet, live, from any host that reaches the database. Each
refresh reads the queue and the daemons table (a few small statements); the view
redraws in place through rich, and `q` or Ctrl-C quits. `--once` prints one snapshot as
plain text and exits, for scripts and tests."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import sys
import termios
import tty
from collections.abc import Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from mediad.commands.base import raise_usage
from mediad.commands.report.topview import FAILURES_WINDOW_SECONDS, Line, Snapshot, layout
from mediad.config import Config, database_label
from mediad.db import reads
from mediad.db.connection import Database
from mediad.errors import DatabaseUnavailable
from mediad.runtime import open_database

STYLES = {"title": "bold", "heading": "bold cyan", "warning": "yellow", "gone": "red"}


def read_snapshot(db: Database, label: str) -> Snapshot:
    done, failed = reads.finished_since(db, 60)
    return Snapshot(
        database=label,
        counts=reads.counts(db),
        done_per_s=done / 60,
        failed_per_s=failed / 60,
        oldest_pending_seconds=reads.oldest_pending_seconds(db),
        failures=reads.failures_since(db, FAILURES_WINDOW_SECONDS),
        daemons=reads.daemons(db),
    )


def top(args: argparse.Namespace, config: Config) -> int:
    if args.interval <= 0:
        raise_usage("--interval must be more than 0")
    label = database_label(config)
    with open_database(config) as db:
        if args.once or not sys.stdout.isatty():
            width = shutil.get_terminal_size((80, 24)).columns
            for line in layout(read_snapshot(db, label), width):
                print(line.text)
            return 0
        return _live(db, label, args.interval)


def _live(db: Database, label: str, interval: float) -> int:
    console = Console()
    try:
        with _keys() as pressed, Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                live.update(_view(db, label, console), refresh=True)
                if pressed(interval) in ("q", "Q"):
                    return 0
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how one leaves a live view, not an error


def _view(db: Database, label: str, console: Console) -> Group:
    width, height = console.size
    try:
        lines = layout(read_snapshot(db, label), width, title="mediad top (q quits)")
    except DatabaseUnavailable as exc:  # shown, and tried again at the next refresh
        lines = [Line(f"mediad top: {label}", "title"), Line(f"database unavailable: {exc}")]
    return Group(*(Text(line.text, style=STYLES.get(line.kind, "")) for line in lines[:height]))


@contextlib.contextmanager
def _keys() -> Iterator[_KeyReader]:
    """Keys as they are typed (cbreak: no Enter needed, Ctrl-C still a signal), the
    terminal restored on the way out whatever happens."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    try:
        if fd is not None:
            tty.setcbreak(fd)
        yield _KeyReader(fd)
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _KeyReader:
    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __call__(self, timeout: float) -> str:
        """The key typed within `timeout` seconds, or "" (none, or no terminal to read)."""
        if self.fd is None:
            select.select([], [], [], timeout)
            return ""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 1).decode(errors="replace") if ready else ""
