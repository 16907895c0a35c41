"""Names PostgreSQL cannot store: file names that are not UTF-8 (Linux allows any bytes but
NUL and /), or that carry a NUL. Pure functions."""

from __future__ import annotations

import os

UNSTORABLE_MESSAGE = (
    "the file name is not valid UTF-8, so it cannot be stored or read back exactly; "
    "this row shows it with \\x escapes: rename the file to UTF-8"
)


def is_storable(path: str) -> bool:
    if "\x00" in path:
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(path: str) -> str:
    """A printable, storable stand-in for a name: undecodable bytes become \\xNN."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
