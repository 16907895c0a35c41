"""The corpus: a few real media files, hard-linked to as many paths as a run needs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _not_media(path: Path) -> bool:
    """bench/mix.py's manifest and XMP sidecars: not files of their own (issue 19)."""
    return path.name == "manifest.json" or path.suffix.lower() == ".xmp"


def corpus_originals(directory: Path, source: Path | None) -> list[Path]:
    """The distinct files of a corpus: tests/support/media.py's, made in `directory`, or every
    regular file under `source` (--source) but a manifest or a sidecar."""
    if source is None:
        from tests.support.media import make_corpus  # PyAV: only needed here

        make_corpus(directory)
        files = sorted(directory.iterdir())
    else:
        files = sorted(
            p for p in source.rglob("*") if p.is_file() and not p.is_symlink() and not _not_media(p)
        )
    if not files:
        raise SystemExit(f"no source files found in {source}")
    return files


def build_corpus(root: Path, count: int, source: Path | None) -> tuple[list[str], list[str]]:
    """Real media files (tests/support/media.py, or --source), hard-linked to `count` paths."""
    files = corpus_originals(root / "originals", source)
    linked = root / "files"
    paths: list[str] = []
    for n in range(count):
        original = files[n % len(files)]
        folder = linked / f"{n // 1000:04d}"
        if n % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{n:07d}_{original.name}"
        try:
            os.link(original, target)
        except OSError:
            shutil.copyfile(original, target)  # another file system: a copy still works
        paths.append(str(target))
    return paths, [p.name for p in files]
