"""What a worker's death or hang makes of the file it was reading: the failure charged
to that file, in words a user reads in `show`."""

from __future__ import annotations

import signal

from mediad.errors import FailureClass
from mediad.models import Failure


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is gone"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def death_failure(exitcode: int | None, seconds: float, cpu_seconds: float) -> Failure:
    if exitcode == -signal.SIGXCPU:
        return Failure(
            FailureClass.TIMEOUT,
            f"used more than {cpu_seconds:g} s of CPU (extract.cpu_seconds); "
            "the worker was stopped by the kernel",
            seconds=seconds,
        )
    return Failure(
        FailureClass.WORKER_CRASH,
        f"the worker reading this file {describe_exit(exitcode)}",
        seconds=seconds,
    )


def timeout_failure(timeout_seconds: float, seconds: float) -> Failure:
    return Failure(
        FailureClass.TIMEOUT,
        f"no result after {timeout_seconds:g} s (extract.timeout_seconds); the worker was killed",
        seconds=seconds,
    )
