"""Progress for `mediad extract`: a bar with rate and ETA on a terminal, lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mediad.supervisor import Tally


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self._last = 0.0

    def line(self, tally: Tally) -> str:
        elapsed = max(1e-9, time.monotonic() - tally.started_at)
        finished = tally.finished
        rate = finished / elapsed
        failed = sum(tally.failed.values())
        if self.total:
            left = max(0, self.total - finished)
            eta = _clock(left / rate) if rate > 0 else "?"
            share = min(1.0, finished / self.total)
            return (
                f"{finished}/{self.total} ({share:4.0%}) done {tally.done} failed {failed} "
                f"{rate:.1f} files/s ETA {eta}"
            )
        return f"{finished} done {tally.done} failed {failed} {rate:.1f} files/s"

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1:
                return
            self._last = now
            width = 30
            share = min(1.0, tally.finished / self.total) if self.total else 0.0
            bar = "#" * int(share * width) + "-" * (width - int(share * width))
            self.stream.write(f"\r[{bar}] {self.line(tally)}\033[K")
            self.stream.flush()
        elif now - self._last >= self.every:
            self._last = now
            self.stream.write(self.line(tally) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
