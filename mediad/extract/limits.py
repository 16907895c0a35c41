"""A worker process's own limits and signals, set once at its start: it dies with the
supervisor, ignores the signals meant for the supervisor, and is bounded in memory and,
file by file, in CPU time."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal

_PR_SET_PDEATHSIG = 1

_cpu_limit_set: list[tuple[int, int]] = []  # (soft, hard) as last set by this process


def limit_cpu_for_next_file(seconds: float) -> None:
    """RLIMIT_CPU counts the whole process: allow `seconds` more than used so far. The
    kernel sends SIGXCPU past it, which the supervisor reports as a timeout."""
    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    if _cpu_limit_set and _cpu_limit_set[0][0] == soft:
        return  # whole seconds: unchanged over a run of fast files, one syscall saved
    hard = _cpu_limit_set[0][1] if _cpu_limit_set else resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    _cpu_limit_set[:] = [(soft, hard)]


def die_with_parent(supervisor_pid: int) -> None:
    """Ask the kernel to SIGKILL this worker when the supervisor dies, even by kill -9."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's EOF still ends the worker
    if os.getppid() != supervisor_pid:
        os._exit(0)  # the supervisor died before prctl took effect


def limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def init_signals() -> None:
    # Ctrl-C reaches the whole process group: the supervisor decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for name in ("SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
