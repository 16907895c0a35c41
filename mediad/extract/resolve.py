"""A path's canonical name, every symbolic link followed, as the C library resolves it;
and an open that refuses every symbolic link, for paths that need no resolving.

The gate resolves every path before it opens anything. `os.path.realpath` walks the
path in Python, one lstat and several string operations per component: 14 us for a
path seven directories deep, about a third of the gate. The C library's realpath(3)
makes the same system calls for 5 us (docs/benchmarks.md). Where it cannot be loaded
(not a C library ctypes can open), `os.path.realpath` gives the same answer, with one
difference: a regular file named with a trailing slash (`film.mkv/`), which Python
resolves to the file, is ENOTDIR here, as it is for open(2).

Most paths in a library hold no symbolic link at all: such a path is already its own
canonical name. openat2(2) with RESOLVE_NO_SYMLINKS (Linux 5.6) opens it only if that is
so, and fails with ELOOP otherwise, in the one system call that opens it (the gate then
needs neither realpath's readlink per component nor reading the name back).
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


# openat2(2): the same number on every architecture (the syscall table was unified).
_SYS_OPENAT2 = 437
_AT_FDCWD = -100
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _c_openat2() -> Callable[[str, int], int] | None:
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = (
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
    )
    resolve = _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
    size = ctypes.sizeof(_OpenHow)

    def open_no_symlinks(path: str, flags: int) -> int:
        encoded = os.fsencode(path)
        if b"\0" in encoded:
            raise ValueError("embedded null byte")  # C would read another path
        how = _OpenHow(flags, 0, resolve)
        fd = int(syscall(_SYS_OPENAT2, _AT_FDCWD, encoded, ctypes.byref(how), size))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return fd

    # Older kernels (ENOSYS) and some container seccomp profiles (EPERM) refuse the call
    # itself: ask once, on the root directory, which any process may open this way.
    try:
        os.close(open_no_symlinks("/", os.O_PATH | os.O_CLOEXEC))
    except OSError:
        return None
    return open_no_symlinks


# open_no_symlinks(path, flags): open the absolute `path` with `flags` only if none of its
# components is a symbolic link, and return the descriptor. Raises OSError (ELOOP for a
# link, or what open(2) raises) and ValueError for a NUL. None where the kernel cannot be
# asked (before Linux 5.6, or in a sandbox that refuses openat2): paths are then resolved.
open_no_symlinks = _c_openat2()
