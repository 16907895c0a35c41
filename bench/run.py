"""mediad's benchmark: one command, one corpus, one database, every figure side by side.

    .venv/bin/python -m bench.run --files 10000 [--workers W] [--out FILE] [--dsn DSN] [--big]

Measures, on the same hard-linked corpus and the same (own, dropped) database:
mediad end to end, the ideal multiprocessing.Pool, the mediainfo CLI (batched and once
per file), the no-op engine through the whole pipeline, claim-statement latency at
several table sizes (with its plan), insert -> done latency on an idle daemon, the
supervisor's RSS with 1M pending rows, and database connections per daemon.
See docs/benchmarks.md.

This module is the command alone: the measurements live in the bench package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.claims import claims
from bench.common import CORES, say
from bench.contenders import connections
from bench.context import Context
from bench.corpus import build_corpus
from bench.daemon import compile_bytecode
from bench.db import Sql, bench_database, server
from bench.environment import environment
from bench.ratios import ratios, targets
from bench.report import report
from bench.results import Results
from bench.throughput import throughput


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="corpus size (hard links)")
    parser.add_argument("--workers", type=int, default=CORES, help="default: one per core")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--dsn",
        help="admin DSN of a PostgreSQL server to use (a database "
        "of its own is created and dropped); default: a throwaway pgserver",
    )
    parser.add_argument("--big", action="store_true", help="also 10M rows for the claim")
    parser.add_argument(
        "--claim-sizes",
        default="10000,1000000",
        help="comma-separated table sizes for the claim latency",
    )
    parser.add_argument(
        "--backlog-rows",
        type=int,
        default=1_000_000,
        help="pending rows for the supervisor-RSS check (0: skip)",
    )
    parser.add_argument("--backlog-seconds", type=float, default=15.0)
    parser.add_argument(
        "--noop-files",
        type=int,
        default=0,
        help="rows for the no-op pipeline (default: max(--files, 100000): the daemon's "
        "start, about half a second, is not the queue's cost, and weighs 5 %% there)",
    )
    parser.add_argument(
        "--single-files",
        type=int,
        default=1000,
        help="files for mediainfo once per file (a subset)",
    )
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="throughput rounds (alternating order); the least disturbed one is reported",
    )
    parser.add_argument(
        "--corpus",
        choices=("mix", "test"),
        default="mix",
        help="the distinct files, made for the run: mix, the mixed corpus of bench.mix (73 "
        "video, audio and image files, a third of them with EXIF; the default), or test, "
        "the 8 files of tests/support/media.py (the corpus before issue 19)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="use these media files instead of "
        "a made corpus (e.g. /work/shared/corpus/public, or a mix made by bench.mix)",
    )
    parser.add_argument(
        "--mediainfo",
        default=shutil.which("mediainfo") or "",
        help="mediainfo CLI binary (default: from PATH)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.files < 1 or args.workers < 1:
        raise SystemExit("--files and --workers must be at least 1")
    if args.mediainfo and not shutil.which(args.mediainfo):
        args.mediainfo = ""
    compile_bytecode(Path(__file__).resolve().parent.parent)
    work = Path(tempfile.mkdtemp(prefix="mediad-bench-"))
    results = Results(files=args.files, workers=args.workers)
    try:
        source = args.source
        if source is None and args.corpus == "mix":
            source = work / "mix"
            # In a process of its own: its encoders (PyAV, Pillow, pillow-heif) stay out of
            # the process that measures and starts every contender.
            subprocess.run(
                [sys.executable, "-m", "bench.mix", "--out", str(source)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        say(f"corpus: {args.files:,} hard links in {work} ({source or 'the test corpus'})")
        paths, originals = build_corpus(work, args.files + args.latency_samples, source)
        paths, extra_paths = paths[: args.files], paths[args.files :]
        with server(args.dsn) as (admin_dsn, server_kind), bench_database(admin_dsn) as dsn:
            sql = Sql(dsn)
            try:
                ctx = Context(args, dsn, sql, work, paths, extra_paths, str(work))
                results.environment = environment(
                    args, sql, server_kind, ctx.spec("x", "mediainfo").env(), originals
                )
                throughput(ctx, results)
                connections(ctx, results)
                claims(ctx, results)
            finally:
                sql.close()
        results.ratios = ratios(results)
        results.targets = targets(results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results.as_dict(), indent=2, default=str) + "\n")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
