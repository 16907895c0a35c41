"""mediad against the `mediainfo` CLI on a slow network mount: every read answers late.

    .venv/bin/python -m bench.nas [--files 500] [--workers 2,8] [--lag-ms 2] [--rounds 3]
                                  [--out FILE] [--dsn DSN]
    .venv/bin/python -m bench.nas --dead-mount [--files 2000] [--dead-files N]
                                  [--workers W] [--timeout 5] [--rounds 3] [--out FILE]

With --dead-mount, local files alone against local files beside a mount whose every read
blocks: bench/dead_mount.py says how. Without it:

The corpus (bench.run's, hard-linked to --files paths) is read through a FUSE mount of
the test suite's harness (tests/fusefs.py: a pass-through whose kernel caches nothing,
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
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.cli_baseline import mediainfo_version, run_cli
from bench.common import CORES, say
from bench.corpus import build_corpus
from bench.daemon import DaemonSpec, compile_bytecode
from bench.db import Sql, bench_database, server
from bench.e2e import run_from
from bench.endtoend import run_mediad
from bench.environment import git_describe
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


def report(results: dict[str, Any]) -> None:
    env = results["environment"]
    print(
        f"\nmediad on a FUSE mount answering every read {results['lag_ms']:g} ms late: "
        f"{results['files']} files, median of {results['rounds']} alternating rounds; "
        f"mediad {env['mediad_commit']}, mediainfo CLI {env['mediainfo_cli'] or 'not installed'}\n"
    )
    headers = (
        "W",
        "contender",
        "files/s",
        "rounds",
        "1st result s",
        "lookups+stats",
        "opens",
        "reads",
        "KiB read",
        "server ms",
    )
    rows = []
    for workers, row in results["by_workers"].items():
        for name in CONTENDERS:
            run = row.get(name)
            if run is None:
                continue
            ops, first = run["ops_per_file"], run["first_result_seconds"]
            rows.append(
                (
                    workers,
                    name.replace("_", " "),
                    f"{run['files_per_s']:.1f}",
                    " ".join(f"{r:.0f}" for r in run["files_per_s_by_round"]),
                    "-" if first is None else f"{first:.2f}",
                    f"{ops['getattr']:.1f}",
                    f"{ops['open']:.1f}",
                    f"{ops['read']:.1f}",
                    f"{ops['read_bytes'] / 1024:.0f}",
                    f"{run['fuse_server_cpu_ms_per_file']:.2f}",
                )
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "1st result: when the first row was written, from the enqueue (from the launch);"
        " per file: operations asked of the mount, and the CPU its server spent on them\n"
    )
    for workers, row in results["by_workers"].items():
        for name in ("mediad", "mediad_from_launch", "compared", "compared_from_launch"):
            key = f"{name}_over_cli_median"
            if key in row:
                print(
                    f"  W={workers}: {name.replace('_', ' ')} / CLI = {row[key]} "
                    f"(rounds {row[f'{name}_over_cli_by_round']})"
                )
    loaded = [
        f"W={w} {name}"
        for w, row in results["by_workers"].items()
        for name in CONTENDERS
        if (row.get(name) or {}).get("other_load_cores_max", 0) > 0.2
    ]
    if loaded:
        print(f"WARNING: other load on this machine during {', '.join(loaded)}: not clean figures")


def on_the_mount(args: argparse.Namespace, work: Path, local: list[str]) -> dict[str, Any]:
    from tests import fusefs

    with fusefs.mounted(work / "source") as fs:
        fs.lag(args.lag_ms)
        paths = [str(fs.path / Path(p).relative_to(work / "source")) for p in local]
        with server(args.dsn) as (admin_dsn, _kind), bench_database(admin_dsn) as dsn:
            sql = Sql(dsn)
            try:
                return measure(Bench(args, sql, dsn, work, fs), paths)
            finally:
                sql.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import pytest  # the harness says with pytest.skip that mounting is refused here

    from tests import fusefs  # the harness: the mount and its counters

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
    from tests import fusefs

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
