"""What the benchmark measures, one dataclass per kind of measurement.

`as_dict` writes a record as bench/results/*.json has always held it: the fields in
their order, a `flat` field's keys among the record's own, and an optional figure (one
that defaults to None) left out when it was not measured.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Protocol

from bench.common import percentile

# MachineClock.measure(): how busy the host was, and how much of that was not ours.
Load = dict[str, float]


FLAT = {"flat": True}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Record:
    """A measurement that writes itself as the JSON of bench/results/."""

    def as_dict(self) -> dict[str, Any]:
        assert is_dataclass(self)
        found: dict[str, Any] = {}
        for f in fields(self):
            value = _plain(getattr(self, f.name))
            if f.metadata.get("flat"):
                found.update(value)
            elif value is not None or f.default is not None:
                found[f.name] = value
        return found


@dataclass
class Latency(Record):
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


@dataclass
class TableStats(Record):
    """Updates that stayed HOT (no new index entries) and dead rows left for autovacuum."""

    updates: int
    hot_updates: int
    dead_rows: int
    table_total_mib: float


@dataclass
class RoundFigures(Record):
    """One round of a contender, kept beside the least disturbed one that is reported."""

    files_per_s: float
    seconds: float
    cpu_utilisation: float
    other_load_cores: float | None


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
class DaemonRun(Record):
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
    load: Load = field(metadata=FLAT)
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


@dataclass
class IdealRun(Record):
    """The same extraction in a plain multiprocessing.Pool (bench/ideal_pool.py)."""

    files: int
    workers: int
    done: int
    failed: int
    seconds: float
    files_per_s: float
    cpu_seconds_workers: float
    cpu_utilisation: float
    load: Load = field(metadata=FLAT)
    chunksize: int
    rounds: list[RoundFigures] | None = None


@dataclass
class CliRun(Record):
    """The mediainfo command line over the corpus (bench/cli_baseline.py)."""

    files: int
    workers: int
    files_per_call: int
    recognised: int
    seconds: float
    files_per_s: float
    cpu_seconds: float
    cpu_utilisation: float
    load: Load = field(metadata=FLAT)
    rounds: list[RoundFigures] | None = None


@dataclass
class ClaimLatency(Record):
    """mediad's claim statement on one table size (bench/claims.py)."""

    rows: int
    pending: int
    scenario: str  # "steady": a modest queue in a big table; "backlog": every row pending
    batch: int
    fill_seconds: float
    table_total_mib: float
    claim_index_mib: float
    latency: Latency = field(metadata=FLAT)
    plan: str
    schema: str
    load: Load = field(default_factory=dict, metadata=FLAT)
    checkpoint_before: bool = False


@dataclass
class BacklogRss(Record):
    """The supervisor's memory while a big backlog waits (bench/claims.py)."""

    pending_at_start: int
    seconds: float
    rows_finished: int
    rss_after_2s_mib: float
    rss_last_mib: float
    rss_peak_mib: float


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
            **(
                {"supervisor_rss_backlog": self.supervisor_rss_backlog.as_dict()}
                if self.supervisor_rss_backlog
                else {}
            ),
            "ratios": self.ratios,
            "targets": self.targets,
        }
