"""What `mediad reextract` selects: finished rows to extract again, named by filters that
combine (AND; the values given to one filter are alternatives, OR). Pure: the command
builds a Selection, mediad/db/intake.py runs it (reextract_batch in queries.sql).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The priority rows are queued at: below the default 0 of enqueue, scan and applications,
# so new work is always claimed first and a re-extraction of the whole library never
# starves it (docs/schema.md, docs/operations.md).
REEXTRACT_PRIORITY = -100

# Rows queued per statement: each statement walks this many ids of the primary key and
# holds the locks of the rows it queues only until it commits.
REEXTRACT_WINDOW = 5000

# mapping_version is an integer column: a larger bound is a usage error, not the database's.
INT4_MAX = 2**31 - 1


class SelectionError(ValueError):
    """A filter value that selects nothing sensible (said as a usage error)."""


@dataclass(frozen=True)
class Selection:
    """Rows `done` (or, with classes, `failed` with one of those classes) that match every
    filter given. None: that filter is not given."""

    mapping_below: int | None = None
    containers: tuple[str, ...] | None = None
    extensions: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    everything: bool = False

    def __post_init__(self) -> None:
        if self.mapping_below is not None and self.mapping_below < 1:
            raise SelectionError("--mapping-below must be 1 or more")
        if self.mapping_below is not None and self.mapping_below > INT4_MAX:
            raise SelectionError(f"--mapping-below must be at most {INT4_MAX}")
        for ext in self.extensions or ():
            extension(ext)  # refused here, before any statement runs
        if self.everything and self.filtered:
            raise SelectionError("--all selects every done row: give it no filter")
        if not (self.everything or self.filtered):
            raise SelectionError(
                "name the rows to extract again: --mapping-below N, --container X, --ext EXT "
                "or --class C (combined, a row must match each); --all for every done row"
            )

    @property
    def filtered(self) -> bool:
        return any(
            f is not None
            for f in (self.mapping_below, self.containers, self.extensions, self.classes)
        )

    def params(self) -> dict[str, Any]:
        """The filters' parameters of reextract_batch."""
        return {
            "mapping_below": self.mapping_below,
            "containers": _listed(self.containers),
            "classes": _listed(self.classes),
            "suffixes": _listed(like_suffixes(self.extensions or ())) if self.extensions else None,
        }


def extension(value: str) -> str:
    """`.jpg`, `jpg` or `.JPG`: the extension without its dot, as given (the database
    compares it and the path both lower-cased, with its own lower())."""
    bare = value[1:] if value.startswith(".") else value
    if not bare or "/" in bare or "\x00" in bare:
        raise SelectionError(f"--ext {value!r} is not an extension (e.g. .jpg or jpg)")
    return bare


def like_suffixes(extensions: Sequence[str]) -> tuple[str, ...]:
    """LIKE patterns that match a path ending in one of the extensions (LIKE's own
    characters in them taken literally)."""
    patterns = []
    for ext in extensions:
        literal = extension(ext).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        patterns.append("%." + literal)
    return tuple(dict.fromkeys(patterns))


def _listed(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(values))
