"""The test engine: mediad's own extractor, and the faults a file's name asks for.

Injected through mediad's one injection point (mediad/extract/engine.py): a daemon or
a pool started with

    MEDIAD_TEST_HOOKS=1 MEDIAD_TEST_ENGINE=tests.support.engine:ENGINE

reads every file through `ENGINE.extract`, which does what a marker in the file's name
says and otherwise what mediad does. The `mediad_env` fixture (tests/conftest.py) sets
MEDIAD_TEST_ENGINE and a PYTHONPATH that finds this module; a test turns the faults on
with MEDIAD_TEST_HOOKS=1.

Markers (in the file's name, e.g. `__mediad_sleep_20ms__f00001.mp4`):
- `__mediad_sleep_<N>ms__`: a slow file, N ms before it is read;
- `__mediad_hang__`: hangs for ever, as a read in native code can;
- `__mediad_hang_once__`: hangs on its first attempt only;
- `__mediad_hang_opened__`: hangs once the gate has opened the file (its device is known);
- `__mediad_spin__`: burns CPU for ever, as a parser in a loop would;
- `__mediad_crash__`: the worker dies of SIGSEGV before reading;
- `__mediad_crash_after__`: the worker dies once the file is read, before answering;
- `__mediad_raise__`: reading it raises an exception nothing expects, as a bug would.

In the daemon, `install_daemon_hooks` makes SIGUSR2 wedge the main loop, as a deadlock
would (tests/e2e/test_systemd.py: the watchdog must then stop).
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import NoReturn

from mediad.extract.engine import MediaEngine, OnOpened
from mediad.extract.options import ExtractOptions
from mediad.models import Job, Outcome

HANG_MARKER = "__mediad_hang__"
HANG_ONCE_MARKER = "__mediad_hang_once__"
HANG_OPENED_MARKER = "__mediad_hang_opened__"
CRASH_MARKER = "__mediad_crash__"
CRASH_AFTER_MARKER = "__mediad_crash_after__"
SPIN_MARKER = "__mediad_spin__"
RAISE_MARKER = "__mediad_raise__"
SLEEP_MARKER = re.compile(r"__mediad_sleep_(\d+)ms__")

WEDGED = b'{"event": "test hook: wedging the main loop", "level": "warning"}\n'


def _hang() -> NoReturn:
    while True:
        time.sleep(3600)


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _before_reading(job: Job) -> None:
    path = job.path
    slow = SLEEP_MARKER.search(path)
    if slow:
        time.sleep(int(slow.group(1)) / 1000)
    if HANG_MARKER in path or (HANG_ONCE_MARKER in path and job.attempts == 1):
        _hang()
    if SPIN_MARKER in path:
        while True:
            pass
    if CRASH_MARKER in path:
        _crash()
    if RAISE_MARKER in path:
        raise KeyError("test hook: an error nothing expects")


def _wedge(_signum: int, _frame: object) -> None:
    """Block the main thread for ever, from inside the signal handler: wherever the loop
    was, it never comes round again. Written with os.write, not the logger: the loop may
    have been stopped holding the logger's lock."""
    os.write(2, WEDGED)
    _hang()


class FaultEngine:
    """mediad's engine, with the faults the markers ask for around it."""

    def __init__(self) -> None:
        self._real = MediaEngine()

    def extract(self, job: Job, options: ExtractOptions, on_opened: OnOpened) -> Outcome:
        _before_reading(job)

        def opened(st: os.stat_result) -> None:
            on_opened(st)
            if HANG_OPENED_MARKER in job.path:
                _hang()

        outcome = self._real.extract(job, options, opened)
        if CRASH_AFTER_MARKER in job.path:
            _crash()
        return outcome

    def install_daemon_hooks(self) -> None:
        signal.signal(signal.SIGUSR2, _wedge)


ENGINE = FaultEngine()
