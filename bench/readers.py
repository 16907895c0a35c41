"""Which library should be mediad's second reader (issue 19)? Each candidate reads every
file through an open descriptor, and is compared field by field with exiftool, the oracle.

    .venv/bin/python -m bench.mix --out /tmp/mix
    .venv/bin/python -m bench.readers --source /tmp/mix [--also PHOTO ...] [--out FILE]

Agreement is counted only where exiftool finds a value (NULL matching NULL proves
nothing); a value exiftool does not have is counted apart ("beyond"). Where the source
has bench/mix.py's manifest, each candidate is also checked against the values written.
Cost: CPU per file in this one process, every file read `--reads` times per pass, the
best of `--passes`. Import: CPU and resident memory a worker pays at boot to import the
library, measured in a fresh interpreter, best of 5. Candidates not installed are named
and skipped (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import exiftool
from bench.mix import MANIFEST, SIDECAR_SUFFIX
from bench.reader_candidates import CANDIDATES, Candidate
from bench.reader_fields import COMPARED, IMAGE_ONLY, agree
from mediad.extract.camera_values import Fields

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".avif", ".heic",
    ".heif", ".jxl", ".jp2", ".dng",
}  # fmt: skip


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    """One candidate's agreement with the oracle, field by field."""

    agree: Counter[str] = field(default_factory=Counter)
    oracle: Counter[str] = field(default_factory=Counter)
    beyond: Counter[str] = field(default_factory=Counter)
    truth_agree: Counter[str] = field(default_factory=Counter)
    truth: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def files_of(source: Path | None, also: list[Path]) -> list[Path]:
    found = [] if source is None else sorted(p for p in source.rglob("*") if p.is_file())
    files = [p for p in found if p.name != MANIFEST and not p.name.endswith(SIDECAR_SUFFIX)]
    return files + [p for p in also if p.is_file()]


def manifest_of(source: Path | None) -> dict[str, Any]:
    path = None if source is None else source / MANIFEST
    if path is None or not path.is_file():
        return {}
    files: dict[str, Any] = json.loads(path.read_text())["files"]
    return files


def read_all(candidate: Candidate, path: Path) -> Fields:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return candidate.read(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def compare(
    tally: Tally, path: Path, ours: Fields, oracle: Fields, truth: dict[str, Any] | None
) -> None:
    name, image = path.name, is_image(path)
    for key in COMPARED:
        if key in oracle:
            tally.oracle[key] += 1
            if agree(key, ours.get(key), oracle[key]):
                tally.agree[key] += 1
            else:
                tally.misses.append(f"{name} {key}: {ours.get(key)!r} (exiftool {oracle[key]!r})")
        elif ours.get(key) is not None:
            tally.beyond[key] += 1
        if truth is not None and key in truth and (key not in IMAGE_ONLY or image):
            tally.truth[key] += 1
            tally.truth_agree[key] += agree(key, ours.get(key), truth[key])


def cost(candidate: Candidate, files: list[Path], passes: int, reads: int) -> dict[Path, float]:
    """CPU seconds per read of each file, the best of `passes`; the descriptor is opened
    once per file, as the gate opens it, and only the library's reading is timed."""
    best = dict.fromkeys(files, float("inf"))
    for _ in range(passes):
        for path in files:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                started = cpu()
                for _ in range(reads):
                    with contextlib.suppress(Exception):  # a failure costs what it cost
                        candidate.read(fd, size)
                best[path] = min(best[path], (cpu() - started) / reads)
            finally:
                os.close(fd)
    return best


IMPORT_PROBE = """
import importlib, resource, sys
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
before, started = rss(), cpu()
for name in sys.argv[1:]:
    importlib.import_module(name)
print(cpu() - started, rss() - before)
"""
# ru_maxrss would not do: a child starts with its parent's peak, kept across exec.


def import_cost(modules: tuple[str, ...], runs: int = 5) -> tuple[float, float]:
    """CPU milliseconds and resident MiB that importing `modules` adds to a fresh
    interpreter, the best of `runs`."""
    best_cpu, best_rss = float("inf"), float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE, *modules],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        best_cpu, best_rss = min(best_cpu, float(out[0])), min(best_rss, float(out[1]))
    return best_cpu * 1000, best_rss / 1024


def installed(candidate: Candidate) -> bool:
    return all(importlib.util.find_spec(m.split(".")[0]) is not None for m in candidate.modules)


def _percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "-"


def agreement_table(tallies: dict[str, Tally]) -> list[str]:
    names = list(tallies)
    lines = [f"{'field':<20}" + "".join(f"{n:>22}" for n in names) + "   (agreement with exiftool)"]
    for key in COMPARED:
        row = [_percent(t.agree[key], t.oracle[key]) for t in tallies.values()]
        lines.append(f"{key:<20}" + "".join(f"{cell:>22}" for cell in row))
    for label, agreed, whole in (
        ("all fields", "agree", "oracle"),
        ("vs values written", "truth_agree", "truth"),
    ):
        cells = [
            _percent(sum(getattr(t, agreed).values()), sum(getattr(t, whole).values()))
            for t in tallies.values()
        ]
        lines.append(f"{label:<20}" + "".join(f"{cell:>22}" for cell in cells))
    beyond = [
        ", ".join(f"{k} {v}" for k, v in sorted(t.beyond.items())) or "-" for t in tallies.values()
    ]
    lines += [f"beyond exiftool: {n}: {b}" for n, b in zip(names, beyond, strict=True)]
    return lines


def cost_lines(
    costs: dict[str, dict[Path, float]], imports: dict[str, tuple[float, float]]
) -> list[str]:
    lines = [
        f"{'candidate':<10} {'images us/file':>15} {'others us/file':>15} "
        f"{'import ms CPU':>14} {'import MiB':>11}"
    ]
    for name, per_file in costs.items():
        images = [c for p, c in per_file.items() if is_image(p)]
        others = [c for p, c in per_file.items() if not is_image(p)]
        mean_images = 1e6 * sum(images) / len(images) if images else 0.0
        mean_others = 1e6 * sum(others) / len(others) if others else 0.0
        ms, mib = imports[name]
        lines.append(
            f"{name:<10} {mean_images:>15.0f} {mean_others:>15.0f} {ms:>14.1f} {mib:>11.1f}"
        )
    return lines


def per_file_lines(costs: dict[str, dict[Path, float]]) -> list[str]:
    names = list(costs)
    files = list(next(iter(costs.values()))) if costs else []
    lines = [f"{'file':<32} {'bytes':>9}" + "".join(f"{n + ' us':>12}" for n in names)]
    for path in files:
        cells = "".join(f"{1e6 * costs[n][path]:>12.0f}" for n in names)
        lines.append(f"{path.name[:32]:<32} {path.stat().st_size:>9,}{cells}")
    return lines


def measure(args: argparse.Namespace) -> list[str]:
    files = files_of(args.source, args.also)
    manifest = manifest_of(args.source)
    oracle_tags = exiftool.read_tags(files)
    oracle = {p: exiftool.fields_of(oracle_tags.get(p, {}), is_image(p)) for p in files}
    with_values = sum(1 for f in oracle.values() if f)
    out = [
        f"exiftool {exiftool.version()} (oracle); {len(files)} files, {with_values} where "
        f"exiftool finds a field; passes {args.passes}, reads {args.reads}",
    ]
    tallies: dict[str, Tally] = {}
    costs: dict[str, dict[Path, float]] = {}
    imports: dict[str, tuple[float, float]] = {}
    for candidate in CANDIDATES:
        if not installed(candidate):
            out.append(f"{candidate.name}: not installed, skipped ({', '.join(candidate.modules)})")
            continue
        out.append(f"{candidate.name}: {candidate.version()}; reads from: {candidate.source}")
        tally = tallies[candidate.name] = Tally()
        for path in files:
            try:
                ours = read_all(candidate, path)
            except Exception as exc:  # a candidate's failure is a finding, not a crash
                tally.errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
                ours = {}
            truth = (
                manifest.get(path.name, {}).get("fields") if path.parent == args.source else None
            )
            compare(tally, path, ours, oracle[path], truth)
        costs[candidate.name] = cost(candidate, files, args.passes, args.reads)
        imports[candidate.name] = import_cost(candidate.modules)
    out += ["", *agreement_table(tallies), "", *cost_lines(costs, imports)]
    for name, tally in tallies.items():
        out += ["", f"{name}: {len(tally.errors)} errors, {len(tally.misses)} disagreements"]
        out += [f"  error {e}" for e in tally.errors] + [f"  differs {m}" for m in tally.misses]
    out += ["", "CPU per read, best of the passes:", *per_file_lines(costs)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.readers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", type=Path, help="a directory of files (bench.mix --out)")
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="more files to read")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.source is None and not args.also:
        parser.error("give --source DIR or --also FILE ...")
    if (why := exiftool.missing()) is not None:
        print(f"bench.readers: {why}; exiftool is the oracle", file=sys.stderr)
        return 2
    if args.source is not None:
        args.source = args.source.resolve()
    report = "\n".join(measure(args)) + "\n"
    print(report, end="")
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
