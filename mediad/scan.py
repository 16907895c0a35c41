"""Walking media trees: every regular file with its size and mtime, in batches.

Symlinked directories are not descended (no loops, no escaping the tree by accident);
symlinked files are listed, and the extractor's gate decides whether they may be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from mediad.models import ScanEntry
from mediad.paths import escaped, is_storable

log = structlog.get_logger("mediad.scan")


@dataclass
class ScanReport:
    seen: int = 0
    unreadable_dirs: int = 0
    bad_names: int = 0  # not valid UTF-8: recorded as failed rows, class bad_path


def walk(roots: list[str], report: ScanReport) -> Iterator[ScanEntry]:
    stack = [os.path.abspath(root) for root in reversed(roots)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            report.unreadable_dirs += 1
            log.warning("cannot read directory", path=escaped(directory), error=exc.strerror)
            continue
        subdirs: list[str] = []
        for entry in children:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished or a broken symlink: nothing to enqueue
            report.seen += 1
            if not is_storable(entry.path):
                report.bad_names += 1
                log.warning(
                    "a file name is not valid UTF-8: recorded as failed (bad_path)",
                    path=escaped(entry.path),
                )
                yield ScanEntry(escaped(entry.path), st.st_size, st.st_mtime_ns // 1000, True)
                continue
            yield ScanEntry(entry.path, st.st_size, st.st_mtime_ns // 1000)
        stack.extend(reversed(subdirs))


def batched(entries: Iterator[ScanEntry], size: int) -> Iterator[list[ScanEntry]]:
    batch: list[ScanEntry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
