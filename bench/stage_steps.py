"""The steps bench.stages times, in a module of their own so that spawned pool processes
import them cleanly. Each uses mediad's defaults (ExtractOptions())."""

from __future__ import annotations

import os

from mediad.extractor import ExtractOptions, descriptor_view, open_checked
from mediad.extractor import extract as mediad_extract
from mediad.mediainfo import read_json
from mediad.models import Failure, Outcome

OPTIONS = ExtractOptions()


def _read(source: str) -> int:
    return len(
        read_json(
            source, library_file=None, parse_speed=OPTIONS.parse_speed, full=OPTIONS.full_document
        )
    )


def read(path: str) -> int:
    """libmediainfo on the path itself."""
    return _read(path)


def gate(path: str) -> int:
    """Through the gate and the descriptor view, as mediad reads."""
    opened = open_checked(path, OPTIONS)
    if isinstance(opened, Failure):
        return 0
    fd = opened[0]
    try:
        return _read(descriptor_view(fd, path))
    finally:
        os.close(fd)


def extract(path: str) -> Outcome:
    """mediad's extract(), the whole outcome returned."""
    return mediad_extract(path, OPTIONS)
