"""What one file costs each libmediainfo: mediad's (pymediainfo's wheel) and another one,
by default the one the system's `mediainfo` CLI links. Same process, same options, files
read in turn by both libraries, best of several passes, in CPU time per file.

    .venv/bin/python -m bench.libcost [--other /usr/lib/x86_64-linux-gnu/libmediainfo.so.0]

It says how much of a gap between mediad and the CLI is the two MediaInfo releases rather
than mediad (docs/benchmarks.md). Each library is loaded through mediad.extract.mediainfo, which
sets the options mediad's workers set.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from bench import cli_lib
from bench.corpus import corpus_originals
from mediad.extract.mediainfo import Reader, _apply, _load


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cost(reader: Reader, path: str, passes: int, reads: int) -> float:
    best = float("inf")
    for _ in range(passes):
        started = cpu()
        for _ in range(reads):
            reader.read(path)
        best = min(best, (cpu() - started) / reads)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.libcost", description=__doc__)
    parser.add_argument("--other", help="the other libmediainfo (default: the CLI's)")
    parser.add_argument(
        "--source", type=Path, help="files to read (default: tests/support/media.py)"
    )
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)
    binary = shutil.which("mediainfo")
    other = args.other or (cli_lib.linked_library(binary) if binary else None)
    if other is None:
        raise SystemExit("no other libmediainfo: give --other PATH")
    with tempfile.TemporaryDirectory(prefix="mediad-libcost-") as work:
        files = corpus_originals(Path(work), args.source)
        readers = {"mediad": _load(None), "other": _load(other)}
        for reader in readers.values():
            _apply(reader, 0.5, False)
        versions = {n: ".".join(map(str, r.version)) for n, r in readers.items()}
        print(f"mediad's libmediainfo {versions['mediad']}; other {versions['other']} ({other})")
        print(
            f"{'file':<28} {'bytes':>9} {'mediad us':>10} {'other us':>9} {'ratio':>6}  "
            "fields only mediad's has"
        )
        totals = {"mediad": 0.0, "other": 0.0}
        for path in files:
            costs = {n: cost(r, str(path), args.passes, args.reads) for n, r in readers.items()}
            for name, value in costs.items():
                totals[name] += value
            documents = {n: json.loads(r.read(str(path))) for n, r in readers.items()}
            extra = sorted(
                {
                    f"{track.get('@type')}.{key}"
                    for track, theirs in zip(
                        documents["mediad"]["media"]["track"],
                        documents["other"]["media"]["track"],
                        strict=False,
                    )
                    for key in set(track) - set(theirs)
                }
            )
            print(
                f"{path.name:<28} {path.stat().st_size:>9,} {costs['mediad'] * 1e6:>10.0f} "
                f"{costs['other'] * 1e6:>9.0f} {costs['mediad'] / costs['other']:>6.2f}  "
                f"{', '.join(extra) or '-'}"
            )
        print(
            f"{'all (sum)':<28} {'':>9} {totals['mediad'] * 1e6:>10.0f} "
            f"{totals['other'] * 1e6:>9.0f} {totals['mediad'] / totals['other']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
