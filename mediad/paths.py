"""Names PostgreSQL cannot store: file names that are not UTF-8 (Linux allows any bytes but
NUL and /), or that carry a NUL. Pure functions."""

from __future__ import annotations

import os

UNSTORABLE_MESSAGE = (
    "the file name is not valid UTF-8, so it cannot be stored or read back exactly; "
    "this row shows it with \\x escapes: rename the file to UTF-8"
)


def is_utf8(text: str) -> bool:
    """False for text decoded from bytes that are not UTF-8 (argv, the environment and
    os.fsdecode carry those bytes as lone surrogates, which no UTF-8 encoder accepts)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storable(path: str) -> bool:
    return "\x00" not in path and is_utf8(path)


def escaped(path: str) -> str:
    """A printable, storable stand-in for a name: undecodable bytes become \\xNN. A storable
    name is its own stand-in, so this is also the form a name is stored and looked up under."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def split_names(data: bytes, *, null: bool) -> list[str]:
    """Names read from standard input: NUL-terminated (`find -print0`) with `null`, else one
    per line. Empty entries (and blank lines) are skipped. Each name is decoded as the
    command line's own arguments are (os.fsdecode), so a name that is not UTF-8 keeps its
    bytes whatever the locale or the stream's encoding."""
    if null:
        return [os.fsdecode(name) for name in data.split(b"\x00") if name]
    return [os.fsdecode(line) for line in data.split(b"\n") if line.strip()]
