"""What the benchmark measures, one dataclass per kind of measurement.

Each `as_dict` writes the record as bench/results/*.json has always held it: the same
keys in the same order, optional figures left out when they were not measured.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.common import percentile

# MachineClock.measure(): how busy the host was, and how much of that was not ours.
Load = dict[str, float]


def _present(**figures: Any) -> dict[str, Any]:
    """The optional figures that were measured."""
    return {key: value for key, value in figures.items() if value is not None}


@dataclass
class Latency:
    """A latency distribution, in milliseconds."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float | None
    mean_ms: float | None
    outcomes: dict[str, int] | None = None  # insert -> done: how each row ended

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(
            samples=len(ms),
            p50_ms=round(percentile(ms, 50), 3),
            p90_ms=round(percentile(ms, 90), 3),
            p99_ms=round(percentile(ms, 99), 3),
            max_ms=round(max(ms), 3) if ms else None,
            mean_ms=round(statistics.fmean(ms), 3) if ms else None,
        )

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "samples": self.samples,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
        }
        return found | _present(outcomes=self.outcomes)


@dataclass
class TableStats:
    """Updates that stayed HOT (no new index entries) and dead rows left for autovacuum."""

    updates: int
    hot_updates: int
    dead_rows: int
    table_total_mib: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RoundFigures:
    """One round of a contender, kept beside the least disturbed one that is reported."""

    files_per_s: float
    seconds: float
    cpu_utilisation: float
    other_load_cores: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Throughput(Protocol):
    """What every contender's run has: DaemonRun, IdealRun and CliRun."""

    files: int
    files_per_s: float
    seconds: float
    cpu_utilisation: float
    load: Load
    rounds: list[RoundFigures] | None


def figures(run: Throughput) -> RoundFigures:
    return RoundFigures(
        run.files_per_s, run.seconds, run.cpu_utilisation, run.load.get("other_load_cores")
    )


@dataclass
class DaemonRun:
    """`mediad run` until every row was finished (bench/daemon.py, bench/endtoend.py)."""

    files: int
    workers: int
    done: int
    failed: int
    max_attempts: int | None
    seconds: float
    files_per_s: float
    steady_files_per_s: float
    cpu_seconds_supervisor: float
    cpu_seconds_workers: float
    cpu_seconds_db_backends: float
    cpu_utilisation: float
    load: Load
    supervisor_rss_peak_mib: float
    worker_rss_peak_mib: float
    worker_processes_seen: int
    db_connections_max: int
    db_backends_distinct: int
    clock_from: str = ""
    ready_seconds: float | None = None
    enqueue_seconds: float | None = None
    insert_to_done: Latency | None = None
    enqueue_paths_per_s: float | None = None
    enqueue_batch: int | None = None
    table: TableStats | None = None
    rounds: list[RoundFigures] | None = None

    @property
    def other_load_cores(self) -> float:
        return self.load.get("other_load_cores", 0.0)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "files": self.files,
            "workers": self.workers,
            "done": self.done,
            "failed": self.failed,
            "max_attempts": self.max_attempts,
            "seconds": self.seconds,
            "files_per_s": self.files_per_s,
            "steady_files_per_s": self.steady_files_per_s,
            "cpu_seconds_supervisor": self.cpu_seconds_supervisor,
            "cpu_seconds_workers": self.cpu_seconds_workers,
            "cpu_seconds_db_backends": self.cpu_seconds_db_backends,
            "cpu_utilisation": self.cpu_utilisation,
            **self.load,
            "supervisor_rss_peak_mib": self.supervisor_rss_peak_mib,
            "worker_rss_peak_mib": self.worker_rss_peak_mib,
            "worker_processes_seen": self.worker_processes_seen,
            "db_connections_max": self.db_connections_max,
            "db_backends_distinct": self.db_backends_distinct,
            "clock_from": self.clock_from,
        }
        return found | _present(
            ready_seconds=self.ready_seconds,
            enqueue_seconds=self.enqueue_seconds,
            insert_to_done=self.insert_to_done and self.insert_to_done.as_dict(),
            enqueue_paths_per_s=self.enqueue_paths_per_s,
            enqueue_batch=self.enqueue_batch,
            table=self.table and self.table.as_dict(),
            rounds=_rounds(self.rounds),
        )


@dataclass
class IdealRun:
    """The same extraction in a plain multiprocessing.Pool (bench/ideal_pool.py)."""

    files: int
    workers: int
    done: int
    failed: int
    seconds: float
    files_per_s: float
    cpu_seconds_workers: float
    cpu_utilisation: float
    load: Load
    chunksize: int
    rounds: list[RoundFigures] | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "files": self.files,
            "workers": self.workers,
            "done": self.done,
            "failed": self.failed,
            "seconds": self.seconds,
            "files_per_s": self.files_per_s,
            "cpu_seconds_workers": self.cpu_seconds_workers,
            "cpu_utilisation": self.cpu_utilisation,
            **self.load,
            "chunksize": self.chunksize,
        }
        return found | _present(rounds=_rounds(self.rounds))


@dataclass
class CliRun:
    """The mediainfo command line over the corpus (bench/cli_baseline.py)."""

    files: int
    workers: int
    files_per_call: int
    recognised: int
    seconds: float
    files_per_s: float
    cpu_seconds: float
    cpu_utilisation: float
    load: Load
    rounds: list[RoundFigures] | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "files": self.files,
            "workers": self.workers,
            "files_per_call": self.files_per_call,
            "recognised": self.recognised,
            "seconds": self.seconds,
            "files_per_s": self.files_per_s,
            "cpu_seconds": self.cpu_seconds,
            "cpu_utilisation": self.cpu_utilisation,
            **self.load,
        }
        return found | _present(rounds=_rounds(self.rounds))


def _rounds(rounds: list[RoundFigures] | None) -> list[dict[str, Any]] | None:
    return None if rounds is None else [r.as_dict() for r in rounds]


@dataclass
class ClaimLatency:
    """mediad's claim statement on one table size (bench/claims.py)."""

    rows: int
    pending: int
    scenario: str  # "steady": a modest queue in a big table; "backlog": every row pending
    batch: int
    fill_seconds: float
    table_total_mib: float
    claim_index_mib: float
    latency: Latency
    plan: str
    schema: str
    load: Load = field(default_factory=dict)
    checkpoint_before: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "pending": self.pending,
            "scenario": self.scenario,
            "batch": self.batch,
            "fill_seconds": self.fill_seconds,
            "table_total_mib": self.table_total_mib,
            "claim_index_mib": self.claim_index_mib,
            **self.latency.as_dict(),
            "plan": self.plan,
            "schema": self.schema,
            **self.load,
            "checkpoint_before": self.checkpoint_before,
        }


@dataclass
class BacklogRss:
    """The supervisor's memory while a big backlog waits (bench/claims.py)."""

    pending_at_start: int
    seconds: float
    rows_finished: int
    rss_after_2s_mib: float
    rss_last_mib: float
    rss_peak_mib: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Run = DaemonRun | IdealRun | CliRun


@dataclass
class Results:
    """Everything `python -m bench.run` measured, as its JSON file holds it."""

    files: int
    workers: int
    # Descriptions, not measurements: versions, the host, which comparisons were possible.
    environment: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)  # by contender, in the order run
    connections: dict[str, int] = field(default_factory=dict)
    claim_latency: list[ClaimLatency] = field(default_factory=list)
    supervisor_rss_backlog: BacklogRss | None = None
    ratios: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def daemon(self, name: str) -> DaemonRun | None:
        run = self.runs.get(name)
        return run if isinstance(run, DaemonRun) else None

    def cli(self, name: str) -> CliRun | None:
        run = self.runs.get(name)
        return run if isinstance(run, CliRun) else None

    @property
    def mediad(self) -> DaemonRun:
        run = self.daemon("mediad")
        assert run is not None, "mediad end to end always runs"
        return run

    @property
    def noop(self) -> DaemonRun:
        run = self.daemon("noop")
        assert run is not None, "the noop pipeline always runs"
        return run

    @property
    def ideal(self) -> IdealRun:
        run = self.runs["ideal"]
        assert isinstance(run, IdealRun)
        return run

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "workers": self.workers,
            "environment": self.environment,
            **{name: run.as_dict() for name, run in self.runs.items()},
            "connections": self.connections,
            "claim_latency": [c.as_dict() for c in self.claim_latency],
            **_present(
                supervisor_rss_backlog=self.supervisor_rss_backlog
                and self.supervisor_rss_backlog.as_dict()
            ),
            "ratios": self.ratios,
            "targets": self.targets,
        }
