"""The "ideal" side of the comparison: the same extraction in a plain multiprocessing.Pool.

Lives in its own module so that spawn-context children import it cleanly (not __main__).
"""

from __future__ import annotations

from mediad.extractor import ExtractOptions, extract
from mediad.models import Extracted, Outcome

_OPTIONS: ExtractOptions | None = None


def init(options: ExtractOptions) -> None:
    global _OPTIONS
    _OPTIONS = options


def extract_one(path: str) -> Outcome:
    """Exactly what a mediad worker runs for one file; the whole outcome goes back."""
    assert _OPTIONS is not None
    return extract(path, _OPTIONS)


def is_done(outcome: Outcome) -> bool:
    return isinstance(outcome, Extracted)
