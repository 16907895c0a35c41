"""Running `mediad run` under the benchmark: its environment, its start, its watch."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.db import Sql
from bench.procstat import MachineClock, TreeSampler, cpu_seconds


def compile_bytecode(root: Path) -> None:
    """Write the bytecode of the mediad package under `root`, as installing it would: a
    checkout has none, and where PYTHONDONTWRITEBYTECODE is set (this host) the daemon and
    every worker would compile each module again at start, which no deployment pays."""
    import compileall

    compileall.compile_dir(str(root / "mediad"), quiet=1)


@dataclass
class DaemonSpec:
    dsn: str
    schema: str
    workers: int
    engine: str
    roots: str
    state_dir: Path
    extra: dict[str, str] = field(default_factory=dict)
    # How to start it: `python -m mediad run`, or a shim (bench/scaling.py --no-prepare).
    argv: tuple[str, ...] = ("-m", "mediad", "run")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
        env.update(
            MEDIAD_DATABASE_DSN=self.dsn,
            MEDIAD_DATABASE_SCHEMA=self.schema,
            MEDIAD_DATABASE_AUTO_MIGRATE="true",
            MEDIAD_DAEMON_WORKERS=str(self.workers),
            MEDIAD_DAEMON_STATE_DIR=str(self.state_dir),
            MEDIAD_EXTRACT_ENGINE=self.engine,
            MEDIAD_EXTRACT_ROOTS=self.roots,
            # MediaInfo alone, so figures stay comparable across versions (issue 19: the
            # second reader is measured against this, with `extra` switching it on).
            MEDIAD_EXTRACT_SECOND_READER="false",
            MEDIAD_METRICS_LISTEN="",
            MEDIAD_LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra)
        return env


@contextlib.contextmanager
def daemon(spec: DaemonSpec, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`mediad run` as a subprocess in its own session; stopped (drained) on the way out."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, *spec.argv],
            env=spec.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Watch:
    """What the benchmark sees of one daemon while it works."""

    sampler: TreeSampler
    clock: MachineClock = field(default_factory=MachineClock)
    backend_cpu: dict[int, float] = field(default_factory=dict)
    max_connections: int = 0
    distinct_backends: set[int] = field(default_factory=set)
    # CPU already spent when the clock started (a daemon started before its work came).
    _at_start: tuple[float, dict[int, float], dict[int, float]] | None = None

    def sample(self, sql: Sql, exclude: set[int]) -> None:
        self.sampler.sample()
        backends = sql.daemon_backends(exclude)
        self.max_connections = max(self.max_connections, len(backends))
        self.distinct_backends.update(backends)
        for pid in backends:
            cpu = cpu_seconds(pid)
            if cpu is not None:
                self.backend_cpu[pid] = cpu

    def start_clock(self, sql: Sql, exclude: set[int]) -> None:
        """From now on: CPU and the machine's load count from here, not from the launch."""
        self.sample(sql, exclude)
        sampler = self.sampler
        self._at_start = (sampler.supervisor_cpu, dict(sampler.worker_cpu), dict(self.backend_cpu))
        self.clock = MachineClock()

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds since the clock started: (supervisor, workers, database backends)."""
        supervisor, workers, backends = self._at_start or (0.0, {}, {})
        sampler = self.sampler
        return (
            sampler.supervisor_cpu - supervisor,
            sum(cpu - workers.get(pid, 0.0) for pid, cpu in sampler.worker_cpu.items()),
            sum(cpu - backends.get(pid, 0.0) for pid, cpu in self.backend_cpu.items()),
        )


def logged_ready(log_path: Path) -> bool:
    """Has the daemon logged `ready` (every worker booted, libmediainfo loaded)?"""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return False
    for line in lines:
        if '"ready"' in line:
            with contextlib.suppress(ValueError):
                if json.loads(line).get("event") == "ready":
                    return True
    return False


def wait_ready(
    sql: Sql,
    process: subprocess.Popen[bytes],
    log_path: Path,
    exclude: set[int],
    timeout: float,
    listens: bool,
) -> None:
    """Until the daemon is ready and listens for new rows (unless `database.listen` is
    off, as behind PgBouncer: then it polls): work queued from then on is noticed as in
    a daemon that has been running for a while."""
    deadline = time.monotonic() + timeout
    while not (logged_ready(log_path) and (not listens or sql.listening(exclude))):
        if process.poll() is not None:
            raise RuntimeError(
                f"mediad run exited with {process.returncode}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"mediad was not ready within {timeout:.0f} s")
        time.sleep(0.02)


def remaining(sql: Sql, schema: str) -> int:
    # Two counts that each match a partial index: cheap while the daemon works.
    row = sql.one(
        f"SELECT (SELECT count(*) FROM \"{schema}\".files WHERE state = 'pending') "
        f"+ (SELECT count(*) FROM \"{schema}\".files WHERE state = 'running')"
    )
    return int(row[0])


def wait_all_finished(
    sql: Sql,
    schema: str,
    process: subprocess.Popen[bytes],
    watch: Watch,
    timeout: float,
    log_path: Path,
    exclude: set[int],
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"mediad run exited with {process.returncode}:\n{log_tail(log_path)}"
            )
        watch.sample(sql, exclude)
        if remaining(sql, schema) == 0:
            watch.sample(sql, exclude)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"mediad did not finish within {timeout:.0f} s")
        time.sleep(0.25)


def outcome_counts(sql: Sql, schema: str) -> dict[str, Any]:
    row = sql.one(
        "SELECT count(*) FILTER (WHERE state = 'done'), "
        "count(*) FILTER (WHERE state = 'failed'), "
        "extract(epoch FROM min(finished_at))::float8, "
        "extract(epoch FROM max(finished_at))::float8, "
        f'max(attempts) FROM "{schema}".files'
    )
    return {
        "done": row[0],
        "failed": row[1],
        "first_at": row[2],
        "last_at": row[3],
        "max_attempts": row[4],
    }
