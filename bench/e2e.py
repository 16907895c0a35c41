"""mediad end to end alone, for comparing two versions of mediad on this host.

`python -m bench.run` measures every contender; tuning needs the one figure, repeated and
alternated with another version, since this host's speed varies from run to run. The
daemon is this checkout's `mediad`, or the one in `--mediad DIR` (a worktree of another
commit: `git worktree add /tmp/old <commit>`), so two versions can be run in turn. As in
`bench.run`, the clock starts when the rows are queued into a ready daemon; with
`--from-launch`, when the daemon is started on rows queued before.

Prints one JSON object per run: files/s, the CPU seconds of the supervisor, the workers
and the PostgreSQL backends, and how many write-back statements the rows took. With
`--versus SECTION_KEY=VALUE`, each round runs the daemon as given and again with that
setting, in alternating order (bench/versus.py); each run says its `config`, and a last
line the medians, each round's ratio and the host's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import versus
from bench.common import CORES
from bench.corpus import build_corpus
from bench.daemon import DaemonSpec, compile_bytecode
from bench.db import Sql, bench_database, server
from bench.endtoend import run_mediad
from bench.rows import ENQUEUE_BATCH, drop_schema, enqueuer, fill_noop_rows, table_stats

KEYS = (
    "files_per_s",
    "steady_files_per_s",
    "seconds",
    "ready_seconds",
    "cpu_seconds_supervisor",
    "cpu_seconds_workers",
    "cpu_seconds_db_backends",
    "other_load_cores",
    "supervisor_rss_peak_mib",
    "done",
    "failed",
)


def run_from(mediad: Path) -> tuple[str, ...]:
    """The interpreter's arguments that run `mediad run` from the package in `mediad`."""
    # First on sys.path, ahead of the working directory; spawned workers inherit it.
    code = (
        f"import sys; sys.path.insert(0, {str(mediad)!r}); import mediad; "
        f"sys.exit('mediad is not from ' + {str(mediad)!r}) "
        f"if not mediad.__file__.startswith({str(mediad) + '/'!r}) else None; "
        "from mediad.cli import main; sys.exit(main())"
    )
    return ("-c", code, "run")


def one_run(
    sql: Sql,
    dsn: str,
    work: Path,
    paths: list[str],
    engine: str,
    n: int,
    mediad: Path | None,
    settings: dict[str, str],
    from_launch: bool,
) -> dict[str, Any]:
    schema = f"bench_e2e_{engine}_{n}"
    spec = DaemonSpec(
        dsn, schema, CORES, engine, str(work / "corpus"), work / "state", extra=settings
    )
    if mediad is not None:
        spec.argv = run_from(mediad)
    log_path = work / f"{engine}-{n}.log"
    if engine == "noop":
        fill_noop_rows(dsn, sql, schema, len(paths))
        result = run_mediad(sql, spec, len(paths), log_path)
    else:
        with enqueuer(dsn, schema, paths, 10_000 if from_launch else ENQUEUE_BATCH) as enqueue:
            if from_launch:
                enqueue()
                result = run_mediad(sql, spec, len(paths), log_path)
            else:
                result = run_mediad(sql, spec, len(paths), log_path, enqueue=enqueue)
    time.sleep(1.0)  # the stopped daemon's backends report their statistics
    measured = result.as_dict()
    found = {key: measured.get(key) for key in KEYS}
    found["clock_from"] = result.clock_from
    found["table"] = table_stats(sql, schema).as_dict()
    # Rows written by one statement share its transaction's now().
    found["write_statements"] = sql.one(
        f'SELECT count(DISTINCT finished_at) FROM "{schema}".files'
    )[0]
    drop_schema(sql, schema)
    return found


def _settings(items: list[str], flag: str) -> dict[str, str]:
    """`SECTION_KEY=VALUE` items as the daemon's environment variables."""
    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} {item}: expected SECTION_KEY=VALUE")
        settings[f"MEDIAD_{name.upper()}"] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument(
        "--source",
        type=Path,
        help="hard-link these media files (e.g. the mix of bench.mix) instead of the test corpus",
    )
    parser.add_argument("--engine", choices=("mediainfo", "noop"), default="mediainfo")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dsn", help="admin DSN (default: a throwaway pgserver)")
    parser.add_argument(
        "--mediad", type=Path, help="run the mediad package found in this directory"
    )
    parser.add_argument(
        "--from-launch",
        action="store_true",
        help="queue the rows before starting the daemon and count its start (mediainfo "
        "engine; the noop engine always does)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION_KEY=VALUE",
        help="a setting for the daemon, as its environment variable without MEDIAD_ "
        "(e.g. --set DAEMON_PREFETCH=8); repeatable",
    )
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="SECTION_KEY=VALUE",
        help="also run the daemon with this setting (over --set's), alternated with the "
        "daemon without it in each round (e.g. --versus EXTRACT_SECOND_READER=true)",
    )
    args = parser.parse_args(argv)
    settings = _settings(args.set, "--set")
    compared = _settings(args.versus, "--versus")
    if args.mediad is not None:
        args.mediad = args.mediad.resolve()
        if not (args.mediad / "mediad" / "__init__.py").is_file():
            raise SystemExit(f"--mediad: no mediad package in {args.mediad}")
    compile_bytecode(args.mediad or Path(__file__).resolve().parent.parent)
    work = Path(tempfile.mkdtemp(prefix="mediad-e2e-"))
    try:
        paths, _ = build_corpus(work / "corpus", args.files, args.source)
        with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
            sql = Sql(dsn)
            load_before = versus.load_average()
            runs: list[dict[str, Any]] = []
            try:
                for n in range(args.repeat):
                    configs = versus.order(n) if compared else (None,)
                    for config in configs:
                        extra = {**settings, **compared} if config == versus.VARIANT else settings
                        found = one_run(
                            sql,
                            dsn,
                            work,
                            paths,
                            args.engine,
                            n,
                            args.mediad,
                            extra,
                            args.from_launch,
                        )
                        head: dict[str, Any] = {"engine": args.engine, "round": n + 1}
                        if config is not None:
                            head["config"] = config
                        runs.append({**head, **found})
                        print(json.dumps(runs[-1]), flush=True)
            finally:
                sql.close()
            if compared:
                result = versus.summary(runs, args.versus)
                result["load_average"] = {"before": load_before, "after": versus.load_average()}
                print(json.dumps({"summary": result}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
