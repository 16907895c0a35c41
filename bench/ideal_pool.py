"""The ideal contender: mediad's extraction in a plain multiprocessing.Pool, no database."""

from __future__ import annotations

import multiprocessing
import queue
import time

from bench import ideal
from bench.common import CORES, children_cpu, rate
from bench.procstat import MachineClock
from bench.results import IdealRun
from mediad.extract.options import ExtractOptions

CHUNKSIZE = 16


def run_ideal(paths: list[str], workers: int, options: ExtractOptions) -> IdealRun:
    """The pool is started and booted (libmediainfo loaded) before the clock starts, as
    mediad's workers are when its work comes (run_mediad)."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    cpu_before = children_cpu()
    done = 0
    with ctx.Pool(workers, initializer=ideal.init, initargs=(options, ready)) as pool:
        # The CPU of the workers' boots: not the files'.
        try:
            boot_cpu = sum(ready.get(timeout=120) for _ in range(workers))
        except queue.Empty:
            raise RuntimeError("the ideal pool's workers did not boot within 120 s") from None
        clock = MachineClock()
        started = time.perf_counter()
        for outcome in pool.imap_unordered(ideal.extract_one, paths, chunksize=CHUNKSIZE):
            done += ideal.is_done(outcome)
        pool.close()
        pool.join()
    elapsed = time.perf_counter() - started
    cpu = children_cpu() - cpu_before - boot_cpu
    return IdealRun(
        files=len(paths),
        workers=workers,
        done=done,
        failed=len(paths) - done,
        seconds=round(elapsed, 3),
        files_per_s=rate(len(paths), elapsed),
        cpu_seconds_workers=round(cpu, 2),
        cpu_utilisation=round(cpu / (elapsed * CORES), 3),
        load=clock.measure(cpu),
        chunksize=CHUNKSIZE,
    )
