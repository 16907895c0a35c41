"""Signals and wake-ups: handlers only record the signal and wake the loop, which acts on
it at its next turn (nothing logs or allocates inside a handler).

The wake pipe is also how the database threads and the LISTEN thread wake the loop from
its wait on the workers' pipes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from queue import Empty, SimpleQueue

from mediad.extract import engine

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


class SignalInbox:
    def __init__(self) -> None:
        self._signals: SimpleQueue[int] = SimpleQueue()
        self.wake_fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def install(self) -> None:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)
        engine.install_daemon_hooks()  # the tests' faults (MEDIAD_TEST_HOOKS=1), else none

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.put(signum)
        self.wake()

    def wake(self) -> None:
        # A full pipe means the loop is awake anyway.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def received(self) -> list[int]:
        found: list[int] = []
        while True:
            try:
                found.append(self._signals.get_nowait())
            except Empty:
                return found

    def close(self) -> None:
        os.close(self.wake_fd)
        os.close(self._wake_w)
