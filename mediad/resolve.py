"""A path's canonical name, every symbolic link followed, as the C library resolves it.

The gate resolves every path before it opens anything. `os.path.realpath` walks the
path in Python, one lstat and several string operations per component: 14 us for a
path seven directories deep, about a third of the gate. The C library's realpath(3)
makes the same system calls for 5 us (docs/benchmarks.md). Where it cannot be loaded
(not a C library ctypes can open), `os.path.realpath` gives the same answer, with one
difference: a regular file named with a trailing slash (`film.mkv/`), which Python
resolves to the file, is ENOTDIR here, as it is for open(2).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable


def _python_realpath(path: str) -> str:
    return os.path.realpath(path, strict=True)


def _c_realpath() -> Callable[[str], str] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        realpath, free = libc.realpath, libc.free
    except (OSError, AttributeError):
        return None
    realpath.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    realpath.restype = ctypes.c_void_p  # a pointer to free, not a copied bytes object
    free.argtypes = (ctypes.c_void_p,)
    free.restype = None

    def resolve(path: str) -> str:
        encoded = os.fsencode(path)
        if b"\0" in encoded:
            # C would read up to the NUL: another path. Python's os functions refuse it too.
            raise ValueError("embedded null byte")
        # NULL as the buffer: the C library allocates the answer, so no PATH_MAX guess
        # and no buffer shared between threads.
        answer = realpath(encoded, None)
        if not answer:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        try:
            return os.fsdecode(ctypes.string_at(answer))
        finally:
            free(answer)

    return resolve


_resolve = _c_realpath() or _python_realpath


def resolve_strict(path: str) -> str:
    """The absolute path `path` names with no symbolic link left in it. Raises OSError
    (its errno set: ENOENT, ENOTDIR, ELOOP, EACCES...) when a component is missing, is
    not a directory, loops or cannot be searched, and ValueError when it holds a NUL."""
    return _resolve(path)
