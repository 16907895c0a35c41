"""The extractor: a path in, metadata or a classified failure out.

Every decision about what may be read is made here, in one gate, whatever put the row in
the queue (enqueue, scan, plain SQL). The file is opened once, without blocking and
without following a final symlink, checked through the opened descriptor, and MediaInfo
is handed that same descriptor (/proc/self/fd/N), so swapping the file between the check
and the read changes nothing. A path that is already canonical (no symbolic link, `.`
or `..`) is confined as it is written and opened with every link refused, which needs no
resolving (docs/security.md). Never imports the database layer.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mediad.errors import FailureClass
from mediad.models import Extracted, Failure, Fingerprint, Outcome
from mediad.resolve import open_no_symlinks, resolve_strict
from mediad.summary import is_recognised, summarise

# Containers whose files always carry streams: recognised but empty means damaged.
STREAM_CONTAINERS = frozenset(
    {
        "MPEG-4",
        "QuickTime",
        "Matroska",
        "WebM",
        "AVI",
        "Flash Video",
        "MPEG-PS",
        "MPEG-TS",
        "BDAV",
        "Ogg",
        "Wave",
        "FLAC",
        "MPEG Audio",
        "ADTS",
        "Windows Media",
        "RealMedia",
        "MXF",
        "AIFF",
    }
)

OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
# PostgreSQL's jsonb refuses \u0000; tags in hostile files can contain it.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class ExtractOptions:
    roots: tuple[str, ...] = ()  # resolved; empty means no confinement
    parse_speed: float = 0.5
    max_file_bytes: int = 0
    full_document: bool = False
    engine: str = "mediainfo"
    library_file: str | None = None


def _errno_failure(exc: OSError, what: str, resolved: str | None = None) -> Failure:
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
        return _errno_failure(exc, "cannot resolve path")
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
        return _errno_failure(exc, "cannot stat", resolved)
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
        return _errno_failure(exc, "cannot open", resolved)
    try:
        opened = os.fstat(fd)
        actual = resolved if no_symlinks is not None else os.readlink(f"/proc/self/fd/{fd}")
    except OSError as exc:
        os.close(fd)
        return _errno_failure(exc, "cannot stat the opened file", resolved)
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


_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,16}$")


@dataclass
class _Views:
    """The named views of one process: a private directory, made on first use, and the
    views already in it. Tied to a pid: a forked child makes its own (the targets name
    the process whose descriptors they are)."""

    pid: int
    directory: str
    made: set[str] = field(default_factory=set)


_views: list[_Views] = []


def descriptor_view(fd: int, path: str) -> str:
    """A name for the opened descriptor that keeps the file's extension.

    MediaInfo reads through the descriptor, so what was checked is what is read; but it
    also guesses the format from the name's extension, and without one it tries more
    parsers first (about 1.7x slower on MP4). A symlink `fd<N>.<ext>` to /proc/self/fd/N
    in a private directory gives it both; it is made once per descriptor number and
    extension, and resolves only inside this process. It names the process by its pid,
    not `self`: MediaInfo stats and opens the name several times, and each `self` is one
    more symbolic link for the kernel to follow (together about 80 us of ~3 ms per file).
    """
    plain = f"/proc/self/fd/{fd}"
    extension = os.path.splitext(path)[1][1:]
    if not _EXTENSION.match(extension):
        return plain
    pid = os.getpid()
    try:
        if not _views or _views[0].pid != pid:
            _views[:] = [_Views(pid, tempfile.mkdtemp(prefix="mediad-view-"))]
        views = _views[0]
        view = os.path.join(views.directory, f"fd{fd}.{extension}")
        if view not in views.made:
            os.symlink(f"/proc/{pid}/fd/{fd}", view)
            views.made.add(view)
    except OSError:
        return plain  # no writable temporary directory: correct, only slower
    return view


def run_mediainfo(source: str, options: ExtractOptions) -> str:
    # Imported here so that importing the module (and the gate) needs no libmediainfo.
    from mediad.mediainfo import read_json

    return read_json(
        source,
        library_file=options.library_file,
        parse_speed=options.parse_speed,
        full=options.full_document,
    )


def _interpret(text: str, path: str, source: str) -> tuple[str, dict[str, Any]] | Failure:
    try:
        document = json.loads(text)
    except ValueError:
        return Failure(FailureClass.CORRUPT, "MediaInfo returned a document that is not JSON")
    summary = summarise(document) if isinstance(document, dict) else None
    if summary is None or not is_recognised(summary):
        return Failure(
            FailureClass.UNSUPPORTED,
            "MediaInfo recognises no media format in this file (not media, or only noise)",
        )
    if not summary["streams"] and summary["container"] in STREAM_CONTAINERS:
        return Failure(
            FailureClass.CORRUPT,
            f"recognised as {summary['container']} but no stream could be read",
        )
    # The document names the descriptor it was read through; give it the row's path back.
    text = text.replace(json.dumps(source), json.dumps(path), 1)
    if "\\u0000" in text:  # rare: a scan of the whole document only when it can match
        text = _JSON_NUL.sub(r"\1", text)
    return text, summary


NOOP_DOCUMENT = '{"media": {"track": [{"@type": "General", "Format": "noop"}]}}'
NOOP_SUMMARY: dict[str, Any] = {
    "container": "noop",
    "video_tracks": 0,
    "audio_tracks": 0,
    "text_tracks": 0,
    "truncated": False,
}


def extract_noop(path: str) -> Outcome:
    """The benchmark engine: the whole pipeline but MediaInfo (and the file) untouched."""
    return Extracted(NOOP_DOCUMENT, NOOP_SUMMARY, Fingerprint(0, 0, 0), path)


def extract(
    path: str, options: ExtractOptions, on_opened: Callable[[os.stat_result], None] | None = None
) -> Outcome:
    """`on_opened`: told what the gate's fstat found, before MediaInfo reads a byte (the
    worker publishes the device, so a read that hangs is known by its filesystem)."""
    if options.engine == "noop":
        return extract_noop(path)
    started = time.monotonic()
    gate = open_checked(path, options)
    if isinstance(gate, Failure):
        return replace(gate, seconds=time.monotonic() - started)
    fd, resolved, st = gate
    try:
        if on_opened is not None:
            on_opened(st)
        result = _read_opened(fd, path, st.st_size, options)
    finally:
        os.close(fd)
    fingerprint = fingerprint_of(st)
    seconds = time.monotonic() - started
    if isinstance(result, Failure):
        return replace(result, fingerprint=fingerprint, resolved_path=resolved, seconds=seconds)
    document, summary = result
    return Extracted(document, summary, fingerprint, resolved, seconds)


def _read_opened(
    fd: int, path: str, size: int, options: ExtractOptions
) -> tuple[str, dict[str, Any]] | Failure:
    """MediaInfo's document of the opened file, and its summary."""
    if size == 0:
        return Failure(FailureClass.UNSUPPORTED, "empty file (0 bytes)")
    if options.max_file_bytes and size > options.max_file_bytes:
        return Failure(
            FailureClass.TOO_LARGE,
            f"{size} bytes, over extract.max_file_bytes ({options.max_file_bytes})",
        )
    try:
        source = descriptor_view(fd, path)
        text = run_mediainfo(source, options)
    except OSError as exc:
        return _errno_failure(exc, "MediaInfo could not read")
    except RuntimeError as exc:
        return Failure(FailureClass.UNSUPPORTED, f"MediaInfo could not open the file: {exc}")
    return _interpret(text, path, source)
