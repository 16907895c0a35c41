"""The slow-mount comparison itself: each contender's rounds through the lagging FUSE
mount, the operations each asked of it, and their medians (`python -m bench.nas`)."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.cli_baseline import run_cli
from bench.common import say
from bench.daemon import DaemonSpec
from bench.db import Sql, bench_database, server
from bench.e2e import run_from
from bench.endtoend import run_mediad
from bench.procstat import cpu_seconds
from bench.rows import ENQUEUE_BATCH, drop_schema, enqueuer

CONTENDERS = (
    "mediad",
    "mediad_from_launch",
    "compared",
    "compared_from_launch",
    "mediainfo_cli",
)
OPS = ("getattr", "open", "read", "read_bytes")


class Bench:
    def __init__(self, args: argparse.Namespace, sql: Sql, dsn: str, work: Path, fs: Any):
        self.args, self.sql, self.dsn, self.work, self.fs = args, sql, dsn, work, fs

    def mark(self) -> tuple[dict[str, int], float]:
        return self.fs.counts(), cpu_seconds(self.fs.pid) or 0.0

    def account(self, run: dict[str, Any], before: tuple[dict[str, int], float]) -> None:
        """What the run asked of the mount per file, and the CPU its server spent: the
        server is not one of the contender's processes, so the host's "other load" counts
        it; taken out of it here."""
        counts, cpu = before
        after = self.fs.counts()
        files = run["files"]
        run["ops_per_file"] = {op: round((after[op] - counts[op]) / files, 2) for op in OPS}
        server_cpu = (cpu_seconds(self.fs.pid) or cpu) - cpu
        run["fuse_server_cpu_ms_per_file"] = round(server_cpu * 1000 / files, 2)
        server_cores = server_cpu / max(1e-9, run["seconds"])
        run["other_load_cores"] = round(max(0.0, run["other_load_cores"] - server_cores), 2)
        steady = run.get("steady_files_per_s")
        if steady:  # when the first result was written, from the clock's start
            run["first_result_seconds"] = round(run["seconds"] - (files - 1) / steady, 3)

    def mediad(
        self,
        paths: list[str],
        workers: int,
        n: int,
        *,
        from_launch: bool,
        other: Path | None = None,
    ) -> dict[str, Any]:
        name = f"nas_w{workers}_{n}{'_launch' if from_launch else ''}{'_other' if other else ''}"
        spec = DaemonSpec(
            self.dsn,
            f"bench_{name}",
            workers,
            "mediainfo",
            str(self.fs.path),
            self.work / "state",
            extra=dict(self.args.settings),
        )
        if other is not None:
            spec.argv = run_from(other)
        log_path = self.work / f"{name}.log"
        how = "rows queued, then launched" if from_launch else "queued into a ready daemon"
        which = f" from {other}" if other else ""
        say(f"mediad{which}, {workers} workers, {how} (round {n + 1})")
        with enqueuer(self.dsn, spec.schema, paths, ENQUEUE_BATCH) as enqueue:
            if from_launch:
                enqueue()
                before = self.mark()
                run = run_mediad(self.sql, spec, len(paths), log_path).as_dict()
            else:
                before = self.mark()
                run = run_mediad(self.sql, spec, len(paths), log_path, enqueue=enqueue).as_dict()
        self.account(run, before)
        drop_schema(self.sql, spec.schema)
        return run

    def cli(self, paths: list[str], workers: int, n: int) -> dict[str, Any]:
        per_call = math.ceil(len(paths) / workers)
        say(f"mediainfo CLI, {workers} processes of {per_call} files (round {n + 1})")
        before = self.mark()
        run = run_cli(self.args.mediainfo, paths, workers, per_call).as_dict()
        self.account(run, before)
        return run


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median files/s over the rounds, and each round's figures."""
    rates = [r["files_per_s"] for r in runs]
    ops = {op: statistics.median(r["ops_per_file"][op] for r in runs) for op in OPS}
    firsts = [r["first_result_seconds"] for r in runs if "first_result_seconds" in r]
    return {
        "files_per_s": round(statistics.median(rates), 1),
        "first_result_seconds": round(statistics.median(firsts), 3) if firsts else None,
        "fuse_server_cpu_ms_per_file": statistics.median(
            r["fuse_server_cpu_ms_per_file"] for r in runs
        ),
        "files_per_s_by_round": rates,
        "ops_per_file": ops,
        "failed": max(r.get("failed", 0) for r in runs),
        "other_load_cores_max": max(r.get("other_load_cores", 0.0) for r in runs),
        "rounds": runs,
    }


Step = Callable[[int], dict[str, Any]]


def measure(bench: Bench, paths: list[str]) -> dict[str, Any]:
    args = bench.args
    steps: list[tuple[int, str, Step]] = []
    for workers in args.workers:
        steps.append((workers, "mediad", partial(bench.mediad, paths, workers, from_launch=False)))
        if args.mediainfo:
            steps.append((workers, "mediainfo_cli", partial(bench.cli, paths, workers)))
        steps.append(
            (workers, "mediad_from_launch", partial(bench.mediad, paths, workers, from_launch=True))
        )
        if args.compare is not None:
            for name, launch in (("compared", False), ("compared_from_launch", True)):
                compared = partial(
                    bench.mediad, paths, workers, from_launch=launch, other=args.compare
                )
                steps.append((workers, name, compared))
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {w: {} for w in args.workers}
    for n in range(args.rounds):
        for workers, name, step in steps if n % 2 == 0 else steps[::-1]:
            runs[workers].setdefault(name, []).append(step(n))
    found: dict[str, Any] = {}
    for workers, by_name in runs.items():
        row: dict[str, Any] = {name: median_run(r) for name, r in by_name.items()}
        cli = by_name.get("mediainfo_cli")
        if cli:
            for name in ("mediad", "mediad_from_launch", "compared", "compared_from_launch"):
                if name not in by_name:
                    continue
                ratios = [
                    round(m["files_per_s"] / c["files_per_s"], 3)
                    for m, c in zip(by_name[name], cli, strict=True)
                ]
                row[f"{name}_over_cli_by_round"] = ratios
                row[f"{name}_over_cli_median"] = round(statistics.median(ratios), 3)
        found[str(workers)] = row
    return found


def on_the_mount(args: argparse.Namespace, work: Path, local: list[str]) -> dict[str, Any]:
    from tests.support import fusefs

    with fusefs.mounted(work / "source") as fs:
        fs.lag(args.lag_ms)
        paths = [str(fs.path / Path(p).relative_to(work / "source")) for p in local]
        with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
            sql = Sql(dsn)
            try:
                return measure(Bench(args, sql, dsn, work, fs), paths)
            finally:
                sql.close()
