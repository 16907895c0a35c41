"""Which of issue 19's typed fields mediad fills, for which formats, and how often they
agree with exiftool: the coverage table of docs/coverage.md.

    .venv/bin/python -m bench.coverage --mix --source ../shared/corpus/public \\
        --update docs/coverage.md
    .venv/bin/python -m bench.coverage --source DIR [--source DIR2 ...] [--out FILE]

Every file is read by mediad's own extractor in this process, as a worker reads it
(mediad's default settings: the real MediaInfo, the second reader on), and the typed
summary is compared with exiftool's reading of the same file (bench/exiftool.py), field
by field, per format (MediaInfo's container; the extension of a file MediaInfo did not read).
A cell is "agree/oracle": agreement is counted only where exiftool finds a value, since
NULL matching NULL proves nothing; "+N" counts the files where mediad has a value and
exiftool none. `taken_at` is compared by its wall-clock time, its offset apart
(`taken_at_offset_min`). Size, duration and frame count are compared for images only: for
audio and video they are MediaInfo's (bench/exiftool.py). `--mix` adds bench.mix's corpus,
made in a temporary directory; `--update FILE` rewrites the part of FILE between the
`<!-- coverage:begin -->` and `<!-- coverage:end -->` lines.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import exiftool
from bench.corpus import corpus_originals
from bench.environment import git_describe
from bench.mix import make_mix
from bench.mix_images import ROTATION
from bench.reader_fields import COMPARED, IMAGE_ONLY, agree
from bench.readers import is_image
from mediad.config.schema import Config
from mediad.extract.camera_values import Fields
from mediad.extract.extractor import extract
from mediad.models import Extracted
from mediad.pool.settings import extract_options

# Issue 19's fields, with the two that EXIF orientation implies.
_AFTER = COMPARED.index("orientation") + 1
FIELDS = (*COMPARED[:_AFTER], "rotation_deg", "mirrored", *COMPARED[_AFTER:])
BEGIN, END = "<!-- coverage:begin -->", "<!-- coverage:end -->"


@dataclass
class Coverage:
    """One source's counts, per (format, field)."""

    label: str
    files: Counter[str] = field(default_factory=Counter)
    oracle: Counter[tuple[str, str]] = field(default_factory=Counter)
    agree: Counter[tuple[str, str]] = field(default_factory=Counter)
    beyond: Counter[tuple[str, str]] = field(default_factory=Counter)
    differs: list[str] = field(default_factory=list)  # both have a value, not the same
    missing: dict[str, list[str]] = field(default_factory=dict)  # file: exiftool's alone
    errors: list[str] = field(default_factory=list)


def ours_of(summary: dict[str, Any]) -> Fields:
    """The compared fields of mediad's summary; taken_at as its wall-clock time alone."""
    fields = {key: summary[key] for key in FIELDS if summary.get(key) is not None}
    if isinstance(fields.get("taken_at"), str):
        fields["taken_at"] = fields["taken_at"][:19]
    return fields


def oracle_of(tags: dict[str, Any], image: bool) -> Fields:
    fields = exiftool.fields_of(tags, image)
    orientation = fields.get("orientation")
    if image and orientation in ROTATION:  # exiftool's words: mirror, then rotate clockwise
        fields["rotation_deg"], fields["mirrored"] = ROTATION[orientation]
    return {key: value for key, value in fields.items() if key in FIELDS}


def tally(
    coverage: Coverage, name: str, kind: str, image: bool, ours: Fields, oracle: Fields
) -> None:
    coverage.files[kind] += 1
    for key in FIELDS:
        if key in IMAGE_ONLY and not image:
            continue  # MediaInfo's, for audio and video: not what this table measures
        if key in oracle:
            coverage.oracle[kind, key] += 1
            if agree(key, ours.get(key), oracle[key]):
                coverage.agree[kind, key] += 1
            elif key not in ours:
                coverage.missing.setdefault(name, []).append(key)
            else:
                coverage.differs.append(
                    f"{name} ({kind}) {key}: {ours[key]!r}, exiftool {oracle[key]!r}"
                )
        elif key in ours:
            coverage.beyond[kind, key] += 1


@dataclass
class Versions:
    mediainfo: set[str] = field(default_factory=set)
    reader: set[str] = field(default_factory=set)
    read_by_reader: int = 0


def measure(label: str, source: Path, versions: Versions) -> Coverage:
    coverage = Coverage(label)
    files = corpus_originals(source, source)
    tags = exiftool.read_tags(files)
    options = extract_options(Config())  # mediad's defaults, as the pool gives a worker
    for path in files:
        name = str(path.relative_to(source))
        try:
            outcome = extract(str(path), options)
        except Exception as exc:  # a crash is a finding, reported, not the end of the run
            coverage.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            outcome = None
        if isinstance(outcome, Extracted):
            kind, ours = str(outcome.summary.get("container")), ours_of(outcome.summary)
            versions.mediainfo.add(outcome.mediainfo_version or "unknown")
            if outcome.reader_version is not None:
                versions.reader.add(outcome.reader_version)
                versions.read_by_reader += 1
        else:
            kind, ours = f"{path.suffix.lower() or 'no extension'}, not read", {}
        image = is_image(path)
        tally(coverage, name, kind, image, ours, oracle_of(tags.get(path, {}), image))
    return coverage


def _cell(coverage: Coverage, kinds: list[str], key: str) -> str:
    agreed = sum(coverage.agree[k, key] for k in kinds)
    oracle = sum(coverage.oracle[k, key] for k in kinds)
    beyond = sum(coverage.beyond[k, key] for k in kinds)
    cell = f"{agreed}/{oracle}" if oracle else "-"
    return f"{cell} +{beyond}" if beyond else cell


def table(coverage: Coverage) -> list[str]:
    """Field by format, for the formats where either side has one of the fields."""
    shown = sorted(
        kind
        for kind in coverage.files
        if any(coverage.oracle[kind, k] or coverage.beyond[kind, k] for k in FIELDS)
    )
    rest = sorted(set(coverage.files) - set(shown))
    files = sum(coverage.files.values())
    lines = [
        f"**{coverage.label}**: {files} files, "
        f"{sum(coverage.files[k] for k in shown)} in the formats below.",
        "",
        "| field | " + " | ".join(f"{k} ({coverage.files[k]})" for k in shown) + " | all |",
        "|---|" + "---|" * (len(shown) + 1),
    ]
    for key in FIELDS:
        cells = [_cell(coverage, [k], key) for k in shown] + [_cell(coverage, shown, key)]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    if rest:
        others = ", ".join(f"{k} ({coverage.files[k]})" for k in rest)
        lines += ["", f"No value on either side in: {others}."]
    return lines


def report(coverages: list[Coverage], versions: Versions, missing: bool = True) -> list[str]:
    """The tables and the disagreements; with `missing`, also the fields each file lacks
    (the tables count them; the list is long until the second reader fills them)."""
    reader = (
        f"second reader {', '.join(sorted(versions.reader))} on {versions.read_by_reader} files"
        if versions.reader
        else "second reader: read no file"
    )
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        f"Measured on mediad {git_describe()}, {today}: MediaInfo "
        f"{', '.join(sorted(versions.mediainfo)) or '-'}; {reader}; "
        f"exiftool {exiftool.version()} (the oracle).",
        "",
        'A cell is "agree/oracle" (files where mediad agrees with exiftool / files where '
        'exiftool finds a value); "+N": files where mediad has a value and exiftool none; '
        '"-": exiftool found none.',
    ]
    for coverage in coverages:
        lines += ["", *table(coverage)]
    for coverage in coverages:
        absent = sum(len(keys) for keys in coverage.missing.values())
        lines += [
            "",
            f"{coverage.label}: {len(coverage.differs)} values that differ from exiftool's, "
            f"{absent} that mediad lacks, {len(coverage.errors)} errors.",
        ]
        lines += [f"- {d}" for d in coverage.differs] + [f"- error {e}" for e in coverage.errors]
        if missing:
            lines += [f"- lacks {n}: {', '.join(k)}" for n, k in sorted(coverage.missing.items())]
    return lines


def update(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, begin, rest = text.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"bench.coverage: {path} has no {BEGIN} ... {END} lines")
    path.write_text(head + begin + block + end + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coverage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", type=Path, action="append", default=[], help="a directory")
    parser.add_argument("--mix", action="store_true", help="also bench.mix's corpus")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--update", type=Path, help="rewrite the marked part of this file")
    args = parser.parse_args(argv)
    if not args.source and not args.mix:
        parser.error("give --source DIR or --mix")
    if (why := exiftool.missing()) is not None:
        print(f"bench.coverage: {why}; exiftool is the oracle", file=sys.stderr)
        return 2
    versions = Versions()
    with tempfile.TemporaryDirectory(prefix="coverage-mix-") as scratch:
        sources = [(str(s), s.resolve()) for s in args.source]
        if args.mix:
            make_mix(Path(scratch))
            sources.insert(0, ("bench.mix", Path(scratch)))
        coverages = [measure(label, path, versions) for label, path in sources]
    full = "\n".join(report(coverages, versions)) + "\n"
    print(full, end="")
    if args.out is not None:
        args.out.write_text(full, encoding="utf-8")
    if args.update is not None:
        update(args.update, "\n".join(report(coverages, versions, missing=False)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
