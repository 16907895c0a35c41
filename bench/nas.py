"""mediad against the `mediainfo` CLI on a slow network mount: every read answers late.

    .venv/bin/python -m bench.nas [--files 500] [--workers 2,8] [--lag-ms 2] [--rounds 3]
                                  [--out FILE] [--dsn DSN]
    .venv/bin/python -m bench.nas --dead-mount [--files 2000] [--dead-files N]
                                  [--workers W] [--timeout 5] [--rounds 3] [--out FILE]

With --dead-mount, local files alone against local files beside a mount whose every read
blocks: bench/dead_mount.py says how. Without it:

The corpus (bench.run's, hard-linked to --files paths) is read through a FUSE mount of
the test suite's harness (tests/support/fusefs.py: a pass-through whose kernel caches nothing,
so every lookup, stat and read reaches its server), which answers every read --lag-ms
late, as a NAS does. For each worker count W, in alternating order, each round runs:

- mediad with W workers, the rows queued into a ready daemon (as bench.run's "mediad end
  to end"), and again with the rows queued before its launch, its start counted;
- with --compare DIR, the mediad of another checkout the same two ways ("compared");
- the batched CLI with W at once: W `mediainfo --Output=JSON` processes, each given an
  equal share of the files (as `xargs -P W -n ⌈files/W⌉`).

Figures are medians over the rounds. Beside files/s, the operations each contender asked
of the mount per file (lookups and stats, opens, reads, bytes read): what a network mount
charges for. See docs/benchmarks.md ("A slow network mount").

Needs FUSE (/dev/fuse, fusermount3 from Debian's fuse3, the mfusepy binding of the
`test` extra); without it the command says why and exits 0 having measured nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli_baseline import mediainfo_version
from bench.common import CORES, say
from bench.corpus import build_corpus
from bench.daemon import compile_bytecode
from bench.db import Sql, bench_database, server
from bench.environment import git_describe
from bench.nas_mount import on_the_mount
from bench.nas_report import report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nas", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--files",
        type=int,
        help="corpus size (hard links); default 500, with --dead-mount 2,000 local files",
    )
    parser.add_argument(
        "--workers",
        help="comma-separated worker counts; the CLI runs as many processes at once "
        "(default 2,8; with --dead-mount one count, default one per core)",
    )
    parser.add_argument(
        "--dead-mount",
        action="store_true",
        help="local files alone, alternated with the same local files beside files of a "
        "mount whose every read blocks (issue 17's 0.9 target)",
    )
    parser.add_argument(
        "--dead-files",
        type=int,
        help="with --dead-mount: files on the dead mount (default: a tenth of --files)",
    )
    parser.add_argument(
        "--no-progress",
        type=float,
        default=60.0,
        help="with --dead-mount: end a round whose local files stop finishing for this "
        "many seconds (default 60)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help="with --dead-mount: keep each daemon's log in this directory",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="with --dead-mount: extract.timeout_seconds (default 5)",
    )
    parser.add_argument("--lag-ms", type=float, default=2.0, help="added to every read")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--dsn",
        help="admin DSN of a PostgreSQL server (a database of its own is created and "
        "dropped); default: a throwaway pgserver",
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
        "--compare",
        type=Path,
        metavar="DIR",
        help="also run the mediad package in DIR (a worktree of another commit: `git "
        "worktree add /tmp/old COMMIT`), alternated with this checkout's",
    )
    parser.add_argument(
        "--mediainfo",
        default=shutil.which("mediainfo") or "",
        help="mediainfo CLI binary (default: from PATH)",
    )
    args = parser.parse_args(argv)
    args.files, args.workers = defaults(args)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers: comma-separated numbers, not {args.workers!r}")
    if args.dead_mount:
        dead_mount_args(parser, args)
    if args.files < 1 or args.rounds < 1 or not args.workers or min(args.workers) < 1:
        parser.error("--files, --rounds and every worker count must be at least 1")
    if args.lag_ms < 0:
        parser.error("--lag-ms must not be negative")
    if args.compare is not None:
        args.compare = args.compare.resolve()
        if not (args.compare / "mediad" / "__init__.py").is_file():
            parser.error(f"--compare: no mediad package in {args.compare}")
    args.settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: expected SECTION_KEY=VALUE")
        args.settings[f"MEDIAD_{name.upper()}"] = value
    return args


def defaults(args: argparse.Namespace) -> tuple[int, str]:
    """--files and --workers as given, or each mode's defaults."""
    files = args.files if args.files is not None else (2000 if args.dead_mount else 500)
    workers = args.workers or (str(CORES) if args.dead_mount else "2,8")
    return files, workers


def dead_mount_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if len(args.workers) != 1:
        parser.error("--dead-mount takes one worker count")
    if args.compare is not None:
        parser.error("--dead-mount does not take --compare")
    args.dead_workers = args.workers[0]
    if args.dead_files is None:
        args.dead_files = max(1, args.files // 10)
    if args.dead_files < 1 or args.timeout <= 0:
        parser.error("--dead-files must be at least 1 and --timeout positive")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import pytest  # the harness says with pytest.skip that mounting is refused here

    from tests.support import fusefs  # the harness: the mount and its counters

    why = fusefs.unavailable()
    if why is not None:
        print(f"bench.nas: skipped, no FUSE mount can be made here: {why}", file=sys.stderr)
        return 0
    if args.dead_mount:
        return dead_mount_main(args)
    if args.mediainfo and not shutil.which(args.mediainfo):
        args.mediainfo = ""
    if not args.mediainfo:
        say("no mediainfo CLI (Debian package mediainfo): mediad alone is measured")
    compile_bytecode(Path(__file__).resolve().parent.parent)
    work = Path(tempfile.mkdtemp(prefix="mediad-nas-"))
    results: dict[str, Any] = {
        "files": args.files,
        "lag_ms": args.lag_ms,
        "rounds": args.rounds,
        "workers": args.workers,
        "settings": args.settings,
        "compared": str(args.compare) if args.compare else None,
    }
    try:
        say(f"corpus: {args.files:,} hard links in {work / 'source'}")
        local, originals = build_corpus(work / "source", args.files, None)
        results["environment"] = {
            "mediad_commit": git_describe(),
            "mediainfo_cli": mediainfo_version(args.mediainfo) if args.mediainfo else None,
            "corpus_originals": originals,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        results["by_workers"] = on_the_mount(args, work, local)
    except pytest.skip.Exception as exc:
        print(f"bench.nas: skipped, no FUSE mount can be made here: {exc}", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"results written to {args.out}")
    return 0


def dead_mount_main(args: argparse.Namespace) -> int:
    import pytest

    from bench import dead_mount
    from tests.support import fusefs

    # Stopped by a signal, it still releases the mount, stops its daemon and drops its
    # database on the way out: a mount left blocked would hold that daemon's workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    compile_bytecode(Path(__file__).resolve().parent.parent)
    work = Path(tempfile.mkdtemp(prefix="mediad-nas-dead-"))
    results: dict[str, Any] = {
        "files": args.files,
        "dead_files": args.dead_files,
        "dead_workers": args.dead_workers,
        "timeout": args.timeout,
        "no_progress": args.no_progress,
        "rounds": args.rounds,
        "settings": args.settings,
    }
    try:
        say(f"corpus: {args.files:,} local links, {args.dead_files:,} on the mount, in {work}")
        local, originals = build_corpus(work / "local", args.files, None)
        share, _ = build_corpus(work / "share", args.dead_files, None)
        dead_rel = [str(Path(p).relative_to(work / "share")) for p in share]
        results["environment"] = {
            "mediad_commit": git_describe(),
            "corpus_originals": originals,
            "cores": CORES,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
            sql = Sql(dsn)
            try:
                bench = dead_mount.DeadMountBench(args, sql, dsn, work, fusefs)
                results["dead_mount"] = dead_mount.measure(bench, local, dead_rel)
            finally:
                sql.close()
    except pytest.skip.Exception as exc:
        print(f"bench.nas: skipped, no FUSE mount can be made here: {exc}", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dead_mount.report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
