"""The steps bench.stages times, in a module of their own so that spawned pool processes
import them cleanly. Each uses mediad's defaults (ExtractOptions()) and returns whether
the file was read: a refused or unreadable file must not count as a fast one."""

from __future__ import annotations

import os
from dataclasses import replace

from mediad.extract.extractor import extract as mediad_extract
from mediad.extract.gate import open_checked
from mediad.extract.mediainfo import read_json
from mediad.extract.options import ExtractOptions
from mediad.extract.view import descriptor_view
from mediad.models import Extracted, Failure, Outcome

OPTIONS = ExtractOptions()
# MediaInfo alone, as the daemons of bench.run and bench.e2e read by default.
ALONE = replace(OPTIONS, second_reader=False)


def _read(source: str) -> bool:
    """MediaInfo's document names tracks: a substring test, so as not to add parsing."""
    text = read_json(
        source, library_file=None, parse_speed=OPTIONS.parse_speed, full=OPTIONS.full_document
    )
    return '"track"' in text


def read(path: str) -> bool:
    """libmediainfo on the path itself."""
    return _read(path)


def _open_then_read(path: str, *, checked: bool, by_view: bool) -> bool:
    """Open the file through the gate's checks or plainly, then read it by its path or by
    the descriptor view."""
    if checked:
        opened = open_checked(path, OPTIONS)
        if isinstance(opened, Failure):
            return False
        fd = opened[0]
    else:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read(descriptor_view(fd, path) if by_view else path)
    finally:
        os.close(fd)


def checks(path: str) -> bool:
    """The gate's checks (extractor.open_checked: confine, stat, open, fstat; a path that
    is not canonical is resolved first and read back after), then libmediainfo on the
    path itself: what the checks cost without the view."""
    return _open_then_read(path, checked=True, by_view=False)


def view(path: str) -> bool:
    """A plain open, then libmediainfo by the descriptor view: what the view costs alone."""
    return _open_then_read(path, checked=False, by_view=True)


def gate(path: str) -> bool:
    """Through the gate and the descriptor view, as mediad reads."""
    return _open_then_read(path, checked=True, by_view=True)


def extract(path: str) -> tuple[bool, Outcome]:
    """mediad's extract(), the whole outcome sent back as a worker's would be."""
    outcome = mediad_extract(path, OPTIONS)
    return isinstance(outcome, Extracted), outcome


def extract_alone(path: str) -> tuple[bool, Outcome]:
    """The same with `extract.second_reader = false`: the difference is the reader's."""
    outcome = mediad_extract(path, ALONE)
    return isinstance(outcome, Extracted), outcome
