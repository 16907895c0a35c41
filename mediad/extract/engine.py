"""What reads a file in a worker: mediad's extractor, or the one the tests inject.

The tests' one injection point. Only with MEDIAD_TEST_HOOKS=1 in the environment,
MEDIAD_TEST_ENGINE="module:attr" names an object that replaces `MediaEngine`: every
worker reads its files through its `extract`, and the daemon calls its
`install_daemon_hooks` once, beside its own signal handlers. The tests use it to inject
faults (tests/support/engine.py: files that hang, crash or spin, a loop that wedges)
without production code knowing any of them. Without MEDIAD_TEST_HOOKS=1 the variable is
ignored; neither is a setting (mediad/config/environment.py skips every MEDIAD_TEST_* variable).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Protocol

from mediad.extract.extractor import extract
from mediad.extract.options import ExtractOptions
from mediad.models import Job, Outcome

HOOKS_VARIABLE = "MEDIAD_TEST_HOOKS"
ENGINE_VARIABLE = "MEDIAD_TEST_ENGINE"

# Told what the gate's fstat found, before MediaInfo reads a byte (mediad/extract/worker.py).
OnOpened = Callable[[os.stat_result], None]


class Engine(Protocol):
    def extract(self, job: Job, options: ExtractOptions, on_opened: OnOpened) -> Outcome: ...

    def install_daemon_hooks(self) -> None: ...


class MediaEngine:
    """mediad's own: the gate and MediaInfo (or the benchmark's no-op, `extract.engine`)."""

    def extract(self, job: Job, options: ExtractOptions, on_opened: OnOpened) -> Outcome:
        return extract(job.path, options, on_opened)

    def install_daemon_hooks(self) -> None:
        """None: the daemon handles its own signals."""


def injected() -> str | None:
    """The "module:attr" the tests injected, if any and if test hooks are on."""
    if os.environ.get(HOOKS_VARIABLE) != "1":
        return None
    return os.environ.get(ENGINE_VARIABLE) or None


def load() -> Engine:
    """The engine of this process. Raises what importing an injected one raises."""
    spec = injected()
    if spec is None:
        return MediaEngine()
    module, _, attr = spec.partition(":")
    found: Engine = getattr(importlib.import_module(module), attr)
    return found


def install_daemon_hooks() -> None:
    """The daemon's call, as it installs its signal handlers: nothing unless injected."""
    if injected() is not None:
        load().install_daemon_hooks()
