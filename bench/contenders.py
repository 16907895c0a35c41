"""One round of each contender of `python -m bench.run`, on the shared corpus and database."""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.cli_baseline import run_cli
from bench.common import rate, say
from bench.context import Context
from bench.endtoend import run_mediad
from bench.results import CliRun, DaemonRun, Results
from bench.rows import ENQUEUE_BATCH, drop_schema, enqueuer, fill_noop_rows, table_stats

NOOP_ROWS = 100_000  # the no-op pipeline: its start (about 0.5 s) weighs 5 % of the run


def mediad_round(
    ctx: Context,
    n: int,
    latency: bool,
    library_file: str | None = None,
    from_launch: bool = False,
) -> DaemonRun:
    """`library_file`: run the daemon on that libmediainfo (extract.library_file).
    `from_launch`: queue the rows first, and count the daemon's start (see run_mediad)."""
    name = f"e2e_{n}" if library_file is None else f"e2e_cli_library_{n}"
    if from_launch:
        name += "_from_launch"
    spec = ctx.spec(f"bench_{name}", "mediainfo")
    on = ""
    if library_file is not None:
        spec.extra["MEDIAD_EXTRACT_LIBRARY_FILE"] = library_file
        on = f", on the CLI's libmediainfo {library_file}"
    paths = ctx.paths
    samples = ctx.args.latency_samples if latency else 0
    log_path = ctx.work / f"{name}.log"
    batch = 10_000 if from_launch else ENQUEUE_BATCH
    with enqueuer(ctx.dsn, spec.schema, paths, batch) as enqueue:
        if from_launch:
            say(
                f"mediad from its launch{on}: {len(paths):,} paths queued, then `mediad run` "
                f"(round {n + 1})"
            )
            enqueue_seconds = enqueue()
            run = run_mediad(ctx.sql, spec, len(paths), log_path, samples, ctx.extra_paths)
            run.enqueue_seconds = enqueue_seconds
        else:
            say(
                f"mediad end to end{on}: `mediad run`, then enqueue {len(paths):,} paths "
                f"(round {n + 1})"
            )
            run = run_mediad(
                ctx.sql, spec, len(paths), log_path, samples, ctx.extra_paths, enqueue=enqueue
            )
    run.enqueue_seconds = round(run.enqueue_seconds or 0.0, 3)
    run.enqueue_paths_per_s = rate(len(paths), run.enqueue_seconds)
    run.enqueue_batch = batch
    time.sleep(1.0)  # the stopped daemon's backends report their statistics
    run.table = table_stats(ctx.sql, spec.schema)
    drop_schema(ctx.sql, spec.schema)
    return run


def noop_round(ctx: Context, n: int) -> DaemonRun:
    count = ctx.args.noop_files or max(ctx.args.files, NOOP_ROWS)
    schema = f"bench_noop_{n}"
    say(f"noop engine through the whole pipeline: {count:,} rows (round {n + 1})")
    fill_noop_rows(ctx.dsn, ctx.sql, schema, count)
    run = run_mediad(ctx.sql, ctx.spec(schema, "noop"), count, ctx.work / f"noop-{n}.log")
    drop_schema(ctx.sql, schema)
    return run


def cli_step(
    ctx: Context, title: str, paths: list[str], per_call: int, env: dict[str, str] | None = None
) -> Callable[[int], CliRun]:
    def step(n: int) -> CliRun:
        say(f"{title} (round {n + 1})")
        return run_cli(ctx.args.mediainfo, paths, ctx.args.workers, per_call, env)

    return step


def connections(ctx: Context, results: Results) -> None:
    args, sql = ctx.args, ctx.sql
    many = max(8, 4 * args.workers)
    count = 2000
    say(f"connections with {many} workers (noop, {count:,} rows)")
    fill_noop_rows(ctx.dsn, sql, "bench_conn", count)
    wide = run_mediad(sql, ctx.spec("bench_conn", "noop", many), count, ctx.work / "conn.log")
    drop_schema(sql, "bench_conn")
    results.connections = {
        f"workers_{args.workers}_mediainfo": results.mediad.db_connections_max,
        f"workers_{args.workers}_noop": results.noop.db_connections_max,
        f"workers_{many}_noop": wide.db_connections_max,
        "distinct_backends_e2e_run": results.mediad.db_backends_distinct,
    }
