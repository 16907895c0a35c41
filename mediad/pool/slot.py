"""One worker as the pool sees it: its process, its pipe, the files it holds in order,
and the shared memory where it names the one it reads."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mediad.extract import wire
from mediad.models import Job


@dataclass
class Slot:
    process: BaseProcess
    conn: Connection
    started_at: float
    retire_after: int
    ready: bool = False
    queue: deque[Job] = field(default_factory=deque)  # head: the file being read
    head_started_at: float = 0.0
    files_done: int = 0
    retiring: bool = False
    told_to_leave: bool = False
    pid: int = 0
    reading: Any = None  # shared with the worker: wire.READING_ID and the rest

    def reading_now(self) -> tuple[int, float] | None:
        """(position in the queue, start) of the file the worker says it is reading.

        Results of fast files come back several at a time, so the oldest unanswered file
        is not always the one being read: the worker publishes it in shared memory, from
        before it opens the file until its answer is made (0 between files)."""
        job_id = self.reading[wire.READING_ID]
        started_ns = self.reading[wire.READING_SINCE]
        for position, job in enumerate(self.queue):
            if job.id == job_id:
                return position, started_ns / 1e9
        return None

    def charged(self) -> tuple[Job | None, float, list[Job]]:
        """For a worker that died or hung: the file it was reading (charged, or None if
        it was between files), when that started, and every other file it held (given
        back uncharged: never started, or finished with a result that died with it)."""
        held = list(self.queue)
        now_reading = self.reading_now()
        if now_reading is None:
            return None, self.head_started_at, held
        position, started = now_reading
        return held[position], started, held[:position] + held[position + 1 :]

    def reading_device(self) -> int | None:
        """The device (st_dev) of the file being read, once the worker has opened it: the
        filesystem it is really on, whatever its path suggests."""
        if self.reading[wire.READING_ID] == 0:
            return None
        device = int(self.reading[wire.READING_DEVICE])
        return None if device == wire.NO_DEVICE else device


def reading_since(slot: Slot) -> float:
    """When the file a worker holds started: the one it says it reads, else the oldest."""
    now_reading = slot.reading_now()
    return now_reading[1] if now_reading is not None else slot.head_started_at


def reading_file(slot: Slot) -> tuple[Job, float] | None:
    """The file a worker is on and since when: the one it says it reads, else the
    oldest it holds (sent, about to start); None when it holds none."""
    now_reading = slot.reading_now()
    if now_reading is not None:
        position, started = now_reading
        return slot.queue[position], started
    return (slot.queue[0], slot.head_started_at) if slot.queue else None
