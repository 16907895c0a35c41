"""Where a file's CPU goes, stage by stage, without a database: CPU per file of pools
that each do a little more of what a mediad worker does, alternated with the `mediainfo`
CLI (on its own libmediainfo and on mediad's), round after round.

    .venv/bin/python -m bench.stages --files 6000 --rounds 3 [--source DIR]

- read: libmediainfo reads the file by its path; only whether it names tracks goes back
- checks: the gate's checks (extractor.open_checked), then the same read by the path
- view: a plain open, then the read by the descriptor view (extractor.descriptor_view)
- gate: the same through mediad's gate and descriptor view (extractor.open_checked)
- no reader: mediad's whole extract() with extract.second_reader = false, the outcome sent
  back (the ideal pool of bench.run)
- extract: the same with the second reader (mediad's default): camera metadata, sidecars
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cli_lib, stage_steps
from bench.cli_baseline import run_cli
from bench.common import CORES
from bench.corpus import build_corpus
from bench.daemon import compile_bytecode


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pool(step: Callable[[str], Any], paths: list[str], workers: int) -> tuple[float, float]:
    """files/s and worker CPU µs per file of a spawn pool running `step` on every path."""
    ctx = multiprocessing.get_context("spawn")
    cpu, started = _children_cpu(), time.perf_counter()
    unread = 0
    with ctx.Pool(workers) as pool:
        for answer in pool.imap_unordered(step, paths, chunksize=16):
            read = answer[0] if isinstance(answer, tuple) else answer
            unread += not read
    elapsed = time.perf_counter() - started
    if unread:
        raise SystemExit(f"{step.__name__}: {unread} of {len(paths)} files were not read")
    return len(paths) / elapsed, (_children_cpu() - cpu) / len(paths) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=CORES)
    parser.add_argument("--mediainfo", default=shutil.which("mediainfo") or "")
    parser.add_argument(
        "--source", type=Path, help="these media files instead of the 8 of the test corpus"
    )
    args = parser.parse_args(argv)
    compile_bytecode(Path(__file__).resolve().parent.parent)
    work = Path(tempfile.mkdtemp(prefix="mediad-stages-"))
    try:
        paths, _ = build_corpus(work / "corpus", args.files, args.source)
        same = None
        if args.mediainfo:
            same = cli_lib.prepare(args.mediainfo, None, work / "cli-lib")
            if same.env is None:
                print(f"no CLI on mediad's libmediainfo: {same.why}", file=sys.stderr)
        found: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            if args.mediainfo:
                same_env = same.env if same is not None else None
                for name, env in (("cli", None), ("cli, mediad's lib", same_env)):
                    if name != "cli" and env is None:
                        continue
                    run = run_cli(args.mediainfo, paths, args.workers, 1000, env)
                    found.setdefault(name, []).append(
                        (run.files_per_s, run.cpu_seconds / len(paths) * 1e6)
                    )
            for name, step in (
                ("read", stage_steps.read),
                ("checks", stage_steps.checks),
                ("view", stage_steps.view),
                ("gate", stage_steps.gate),
                ("no reader", stage_steps.extract_alone),
                ("extract", stage_steps.extract),
            ):
                found.setdefault(name, []).append(run_pool(step, paths, args.workers))
        print(f"{len(paths):,} files, {args.workers} processes, {args.rounds} alternated rounds")
        print(f"{'stage':<20} {'files/s per round':<36} CPU µs per file per round")
        for name, runs in found.items():
            rates = " ".join(f"{r:7,.0f}" for r, _ in runs)
            costs = " ".join(f"{c:6,.0f}" for _, c in runs)
            print(f"{name:<20} {rates:<36} {costs}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
