"""The "ideal" side of the comparison: the same extraction in a plain multiprocessing.Pool.

Lives in its own module so that spawn-context children import it cleanly (not __main__).
"""

from __future__ import annotations

import time
from typing import Any

from mediad.extract.extractor import extract
from mediad.extract.mediainfo import prepare
from mediad.extract.options import ExtractOptions
from mediad.models import Extracted, Outcome

_OPTIONS: ExtractOptions | None = None


def init(options: ExtractOptions, ready: Any) -> None:
    """Load libmediainfo and set its options, as a mediad worker does at its boot, then
    say so on `ready` with the CPU seconds the boot took."""
    global _OPTIONS
    _OPTIONS = options
    prepare(
        library_file=options.library_file,
        parse_speed=options.parse_speed,
        full=options.full_document,
    )
    ready.put(time.process_time())


def extract_one(path: str) -> Outcome:
    """Exactly what a mediad worker runs for one file; the whole outcome goes back."""
    assert _OPTIONS is not None
    return extract(path, _OPTIONS)


def is_done(outcome: Outcome) -> bool:
    return isinstance(outcome, Extracted)
