"""Every contender, `--repeat` times, in alternating order; the least disturbed is kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bench.cli_baseline import CLI_BATCH
from bench.common import say
from bench.contenders import cli_step, mediad_round, noop_round
from bench.context import Context
from bench.ideal_pool import run_ideal
from bench.libraries import cli_on_mediads_library, mediad_on_the_clis_library
from bench.results import DaemonRun, IdealRun, Results, Run, Throughput, figures
from mediad.config import load as load_config
from mediad.pool import extract_options

T = TypeVar("T", bound=Throughput)


def least_disturbed(runs: list[T]) -> T:
    """The round with the least other load on the host (then the faster one), with the
    figures of every round beside it."""
    best = min(runs, key=lambda r: (round(r.load.get("other_load_cores", 0), 1), -r.files_per_s))
    best.rounds = [figures(r) for r in runs]
    return best


def throughput(ctx: Context, results: Results) -> None:
    """Every contender, `--repeat` times, in alternating order; keeps the least disturbed.

    mediad runs between the two contenders its main targets compare it with, the ideal
    pool and the batched CLI: this host's speed drifts over minutes, and a ratio of two
    runs a minute apart carried that drift (docs/benchmarks.md, "Noise").
    """
    args, paths = ctx.args, ctx.paths
    options = extract_options(load_config(None, environ=ctx.spec("x", "mediainfo").env()))
    same_library = cli_on_mediads_library(ctx, options, results.environment)
    cli_library = mediad_on_the_clis_library(ctx, options, results.environment)

    def ideal_step(n: int) -> IdealRun:
        say(f"ideal multiprocessing.Pool over {len(paths):,} files, {args.workers} processes")
        return run_ideal(paths, args.workers, options)

    steps: list[tuple[str, Callable[[int], Run]]] = [
        ("ideal", ideal_step),
        ("mediad", lambda n: mediad_round(ctx, n, latency=n == 0)),
    ]
    if args.mediainfo:
        title = f"mediainfo CLI batched ({CLI_BATCH} files per call, {args.workers} at once)"
        steps.append(("mediainfo_batched", cli_step(ctx, title, paths, CLI_BATCH)))
        if same_library is not None:
            title = f"mediainfo CLI batched on mediad's libmediainfo {same_library.version}"
            step = cli_step(ctx, title, paths, CLI_BATCH, same_library.env)
            steps.append(("mediainfo_same_library", step))
    if cli_library is not None:
        steps.append(
            (
                "mediad_cli_library",
                lambda n: mediad_round(ctx, n, latency=False, library_file=cli_library),
            )
        )
    # The daemon's start counted (see run_mediad): not a target, beside mediad's.
    steps.append(
        ("mediad_from_launch", lambda n: mediad_round(ctx, n, latency=False, from_launch=True))
    )
    if args.mediainfo:
        subset = paths[: max(1, min(len(paths), args.single_files))]
        title = f"mediainfo CLI once per file ({len(subset):,} files)"
        steps.append(("mediainfo_single", cli_step(ctx, title, subset, 1)))
    steps.append(("noop", lambda n: noop_round(ctx, n)))
    runs: dict[str, list[Run]] = {}
    for n in range(args.repeat):
        for name, contender in steps if n % 2 == 0 else steps[::-1]:
            runs.setdefault(name, []).append(contender(n))
    for name, found in runs.items():
        results.runs[name] = least_disturbed(found)
    # Measured once, in the first round: keep it whichever round is reported.
    first = runs["mediad"][0]
    assert isinstance(first, DaemonRun)
    results.mediad.insert_to_done = first.insert_to_done
