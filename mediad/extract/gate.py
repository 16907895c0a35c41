"""The gate: every decision about what may be read, in one place.

Whatever put the row in the queue (enqueue, scan, plain SQL), its path comes here before
anything is read. The file is opened once, without blocking and without following a final
symlink, and checked through the opened descriptor, which MediaInfo is then handed
(mediad/extract/view.py), so swapping the file between the check and the read changes
nothing. A path that is already canonical (no symbolic link, `.` or `..`) is confined as
it is written and opened with every link refused, which needs no resolving
(docs/security.md).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from mediad.errors import FailureClass
from mediad.extract.options import ExtractOptions
from mediad.extract.resolve import open_no_symlinks, resolve_strict
from mediad.models import Failure, Fingerprint

OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


def errno_failure(exc: OSError, what: str, resolved: str | None = None) -> Failure:
    code = exc.errno
    reason = os.strerror(code) if code else str(exc)
    if code in (errno.ENOENT, errno.ENOTDIR):
        cls = FailureClass.NOT_FOUND
    elif code == errno.ELOOP:
        cls, reason = FailureClass.NOT_FOUND, "too many levels of symbolic links (a loop?)"
    elif code in (errno.EACCES, errno.EPERM):
        cls = FailureClass.PERMISSION
    elif code in (errno.ENXIO, errno.ENODEV, errno.EISDIR):
        cls = FailureClass.NOT_REGULAR
    elif code == errno.ENAMETOOLONG:
        cls = FailureClass.BAD_PATH
    else:
        # EIO, ESTALE, ETIMEDOUT...: a flaky mount may recover, so retry.
        cls = FailureClass.IO_ERROR
    return Failure(cls, f"{what}: {reason}", resolved_path=resolved)


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def under_roots(resolved: str, roots: tuple[str, ...]) -> bool:
    if not roots:
        return True
    return any(resolved == root or resolved.startswith(root.rstrip("/") + "/") for root in roots)


def check_path(path: str) -> Failure | None:
    if "\x00" in path:
        return Failure(FailureClass.BAD_PATH, "path contains a NUL byte")
    if not os.path.isabs(path):
        return Failure(
            FailureClass.BAD_PATH,
            f"path is not absolute: {path!r} (for an attached table whose paths are relative "
            "to a library root, attach it with --path-prefix DIR)",
        )
    return None


def fingerprint_of(st: os.stat_result) -> Fingerprint:
    return Fingerprint(size_bytes=st.st_size, mtime_us=st.st_mtime_ns // 1000, inode=st.st_ino)


Opened = tuple[int, str, os.stat_result]  # descriptor, resolved path, its stat


def _is_canonical(path: str) -> bool:
    """No `.`, `..` or `//` component and no trailing slash: with no symbolic link in it
    either, such a path is its own resolved form. (Names starting with a dot take the
    full way too: the test is on the string, and kept simple.)"""
    return "//" not in path and "/." not in path and not path.endswith("/")


def open_checked(path: str, options: ExtractOptions) -> Opened | Failure:
    """The gate: resolve, confine, refuse what is not a regular file, open without blocking.

    A canonical path under a root is first opened as written with every symbolic link
    refused, which needs no resolving; if anything on that way fails (a link, an error, a
    swap), the path takes the full way, which decides and words the failure."""
    bad = check_path(path)
    if bad is not None:
        return bad
    if open_no_symlinks is not None and _is_canonical(path) and under_roots(path, options.roots):
        opened = _open_regular(path, options.roots, open_no_symlinks)
        if not isinstance(opened, Failure):
            return opened
    try:
        resolved = resolve_strict(path)
    except OSError as exc:
        return errno_failure(exc, "cannot resolve path")
    if not under_roots(resolved, options.roots):
        return Failure(
            FailureClass.OUTSIDE_ROOTS,
            f"resolves to {resolved}, outside the configured roots",
            resolved_path=resolved,
        )
    return _open_regular(resolved, options.roots, None)


def _open_regular(
    resolved: str, roots: tuple[str, ...], no_symlinks: Callable[[str, int], int] | None
) -> Opened | Failure:
    """Open `resolved`, already confined to the roots by the caller, if it is a regular
    file, and check that the descriptor is the file that was checked, still under the
    roots. `no_symlinks`: the open that refuses every symbolic link (a canonical path,
    not resolved), after which the descriptor is at `resolved` by construction;
    otherwise where it points is read back from /proc."""
    try:
        before = os.stat(resolved, follow_symlinks=False)
    except OSError as exc:
        return errno_failure(exc, "cannot stat", resolved)
    if not stat.S_ISREG(before.st_mode):
        # Refused before opening: opening a FIFO or a device can block or have side effects.
        return Failure(
            FailureClass.NOT_REGULAR, f"is {_file_type(before.st_mode)}", resolved_path=resolved
        )
    try:
        if no_symlinks is not None:
            fd = no_symlinks(resolved, OPEN_FLAGS)
        else:
            fd = os.open(resolved, OPEN_FLAGS)
    except OSError as exc:
        return errno_failure(exc, "cannot open", resolved)
    try:
        opened = os.fstat(fd)
        actual = resolved if no_symlinks is not None else os.readlink(f"/proc/self/fd/{fd}")
    except OSError as exc:
        os.close(fd)
        return errno_failure(exc, "cannot stat the opened file", resolved)
    swapped = (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino)
    moved = actual != resolved and not under_roots(actual, roots)
    if not stat.S_ISREG(opened.st_mode) or swapped or moved:
        os.close(fd)
        return Failure(
            FailureClass.NOT_REGULAR,
            "the file changed between the check and the open (swapped?)",
            resolved_path=resolved,
        )
    return fd, resolved, opened
