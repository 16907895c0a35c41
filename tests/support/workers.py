"""One real worker process, as the daemon runs them (spawned, memory-limited), and a file
read through it: for the tests that feed hostile input to the extractor without risking
the test process (a crash there is the worker's, classed by the pool)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mediad.extract.options import ExtractOptions
from mediad.extract.worker import WorkerSettings
from mediad.models import Failure, Job, Record
from mediad.pool import WorkerPool


@contextmanager
def one_worker(options: ExtractOptions) -> Iterator[WorkerPool]:
    settings = WorkerSettings(
        options, memory_limit_mb=1024, supervisor_pid=os.getpid(), cpu_seconds=30
    )
    pool = WorkerPool(settings, 1, timeout_seconds=30, max_files_per_worker=0)
    pool.maintain()
    try:
        yield pool
    finally:
        pool.kill_all()
        pool.close()


def extract_in_worker(pool: WorkerPool, path: Path, job_id: int) -> Record | Failure:
    """What the worker answers for `path`: a record, or a failure (the pool's own for a
    worker that died or hung)."""
    job = Job(job_id, str(path), 1, job_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pool.maintain()
        idle = pool.idle()
        if idle and not pool.in_flight():
            assert pool.dispatch(idle[0], [job])
        ready, _ = pool.wait(0.5)
        for completion in pool.collect(ready) + pool.enforce_timeouts():
            assert completion.job == job
            return completion.outcome
    raise AssertionError("no outcome from the worker within 60 s")
