"""Progress for `mediad extract`: a bar with rate and ETA on a terminal, drawn by rich (as
`mediad top` is); elsewhere (cron, a pipe, a journal) an `extract progress` log event every
few seconds, so that what reads the log (JSON lines by default off a terminal) gets
nothing but log events."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn
from rich.progress import Progress as Bar

from mediad.daemon.mode import Tally

log = structlog.get_logger("mediad")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def figures(tally: Tally, total: int) -> dict[str, Any]:
    """Where the run stands: what the bar shows and the log event carries."""
    elapsed = max(1e-9, time.monotonic() - tally.started_at)
    finished = tally.finished
    rate = finished / elapsed
    left = max(0, total - finished) if total else None
    return {
        "finished": finished,
        "total": total or None,
        "done": tally.done,
        "failed": sum(tally.failed.values()),
        "files_per_s": round(rate, 1),
        "eta_s": round(left / rate) if left is not None and rate > 0 else None,
    }


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self._last = 0.0
        self._bar: tuple[Bar, TaskID] | None = None

    def line(self, tally: Tally) -> str:
        now = figures(tally, self.total)
        counts = f"done {now['done']} failed {now['failed']} {now['files_per_s']:.1f} files/s"
        if self.total:
            eta = _clock(now["eta_s"]) if now["eta_s"] is not None else "?"
            share = min(1.0, now["finished"] / self.total)
            return f"{now['finished']}/{self.total} ({share:4.0%}) {counts} ETA {eta}"
        return f"{now['finished']} {counts}"

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1:
                return
            self._last = now
            bar, task = self._started()
            bar.update(task, completed=tally.finished, description=self.line(tally))
            bar.refresh()
        elif now - self._last >= self.every:
            self._last = now
            log.info("extract progress", **figures(tally, self.total))

    def _started(self) -> tuple[Bar, TaskID]:
        """The bar, drawn from the first file on: nothing is drawn for a run with none."""
        if self._bar is None:
            bar = Bar(
                BarColumn(bar_width=30),
                TextColumn("{task.description}"),
                console=Console(file=self.stream),
                auto_refresh=False,  # redrawn at each update, at most ten times a second
            )
            self._bar = bar, bar.add_task("", total=self.total or None)
            bar.start()
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
