"""mediad end to end: the daemon timed until every row is finished."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import CORES, mib, rate
from bench.daemon import (
    DaemonSpec,
    Watch,
    daemon,
    log_tail,
    outcome_counts,
    wait_all_finished,
    wait_ready,
)
from bench.db import Sql
from bench.procstat import TreeSampler
from bench.results import DaemonRun, Latency
from mediad.config import load as load_config


def daemon_result(
    sql: Sql, schema: str, watch: Watch, started_wall: float, workers: int, files: int
) -> DaemonRun:
    counts = outcome_counts(sql, schema)
    elapsed = max(1e-9, (counts["last_at"] or started_wall) - started_wall)
    steady = max(1e-9, (counts["last_at"] or 0) - (counts["first_at"] or 0))
    sampler = watch.sampler
    supervisor_cpu, worker_cpu, backend_cpu = watch.cpu()
    cpu = supervisor_cpu + worker_cpu
    return DaemonRun(
        files=files,
        workers=workers,
        done=counts["done"],
        failed=counts["failed"],
        max_attempts=counts["max_attempts"],
        seconds=round(elapsed, 3),
        files_per_s=rate(counts["done"] + counts["failed"], elapsed),
        steady_files_per_s=rate(counts["done"] + counts["failed"] - 1, steady),
        cpu_seconds_supervisor=round(supervisor_cpu, 2),
        cpu_seconds_workers=round(worker_cpu, 2),
        cpu_seconds_db_backends=round(backend_cpu, 2),
        cpu_utilisation=round(cpu / (elapsed * CORES), 3),
        load=watch.clock.measure(cpu + backend_cpu),
        supervisor_rss_peak_mib=mib(sampler.supervisor_peak_kib()),
        worker_rss_peak_mib=mib(sampler.worker_rss_max_kib),
        worker_processes_seen=len(sampler.worker_pids),
        db_connections_max=watch.max_connections,
        db_backends_distinct=len(watch.distinct_backends),
    )


def run_mediad(
    sql: Sql,
    spec: DaemonSpec,
    files: int,
    log_path: Path,
    latency_samples: int = 0,
    latency_paths: list[str] | None = None,
    enqueue: Callable[[], float] | None = None,
) -> DaemonRun:
    """Time `mediad run` until every row is finished.

    Without `enqueue`, the rows are queued before the launch and the clock starts with
    it: the daemon's start counts. With `enqueue`, the daemon starts on an empty queue,
    and the clock starts when `enqueue` is called, once the daemon is ready: a daemon
    runs for weeks, and this is the path of a file, from its enqueue to its row written
    back. `ready_seconds` says what the start costs, `enqueue_seconds` what `enqueue`
    took (it returns that).
    """
    timeout = max(120.0, files / 20)
    # The enqueuer's connections, open already, are not the daemon's.
    exclude = set(sql.daemon_backends(set()))
    launched = time.monotonic()
    started_wall = time.time()
    with daemon(spec, log_path) as process:
        watch = Watch(TreeSampler(process.pid))
        ready_seconds: float | None = None
        enqueue_seconds: float | None = None
        if enqueue is not None:
            listens = load_config(None, environ=spec.env()).database.listen
            wait_ready(sql, process, log_path, exclude, timeout, listens)
            ready_seconds = round(time.monotonic() - launched, 3)
            watch.start_clock(sql, exclude)
            started_wall = time.time()
            enqueue_seconds = enqueue()
        wait_all_finished(sql, spec.schema, process, watch, timeout, log_path, exclude)
        result = daemon_result(sql, spec.schema, watch, started_wall, spec.workers, files)
        result.clock_from = "launch" if enqueue is None else "enqueue into a ready daemon"
        result.ready_seconds, result.enqueue_seconds = ready_seconds, enqueue_seconds
        if latency_samples and latency_paths:
            result.insert_to_done = insert_to_done(
                sql, spec.schema, latency_paths[:latency_samples], process, log_path
            )
            watch.sample(sql, exclude)
            result.db_connections_max = watch.max_connections
            result.db_backends_distinct = len(watch.distinct_backends)
    return result


def insert_to_done(
    sql: Sql, schema: str, paths: list[str], process: subprocess.Popen[bytes], log_path: Path
) -> Latency:
    """One plain-SQL insert at a time into an idle daemon's queue; time until `done`."""
    seconds: list[float] = []
    states: dict[str, int] = {}
    time.sleep(1.0)  # let the daemon go idle (its last flush, its wait)
    for path in paths:
        time.sleep(random.uniform(0.05, 0.15))
        started = time.perf_counter()
        row_id = sql.one(f'INSERT INTO "{schema}".files (path) VALUES (%s) RETURNING id', (path,))
        deadline = started + 10.0
        state = "pending"
        while time.perf_counter() < deadline:
            state = str(sql.one(f'SELECT state FROM "{schema}".files WHERE id = %s', row_id)[0])
            if state in ("done", "failed"):
                break
            time.sleep(0.002)
        seconds.append(time.perf_counter() - started)
        states[state] = states.get(state, 0) + 1
        if process.poll() is not None:
            raise RuntimeError(f"mediad run exited:\n{log_tail(log_path)}")
    latency = Latency.of(seconds)
    latency.outcomes = states
    return latency
