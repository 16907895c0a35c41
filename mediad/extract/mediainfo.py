"""libmediainfo, loaded once per process, with one handle whose options are set once.

`pymediainfo.MediaInfo.parse` loads the library (a new ctypes.CDLL with its prototypes),
creates a handle, asks its version and sets six options on every call: parse takes 1.16x
as long as this module on the benchmark corpus (docs/benchmarks.md). A worker reads
thousands of files with the same options, so it keeps one handle and only opens, informs
and closes per file. The options are those `parse` sets, and two that change no byte of
the document (tests/unit/test_extractor.py compares it with `parse` in a fresh process).

Not thread-safe, and meant to be the only user of libmediainfo in its process (a worker):
some options are global to the library, so a `parse` call elsewhere could change them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reader:
    library: Any
    handle: Any
    version: tuple[int, ...]

    def read(self, source: str) -> str:
        """MediaInfo's JSON document for the file named `source`."""
        lib, handle = self.library, self.handle
        try:
            if lib.MediaInfo_Open(handle, source) == 0:
                if not os.path.exists(source):
                    raise FileNotFoundError(source)
                raise RuntimeError(f"An error occured while opening {source} with libmediainfo")
            text: str = lib.MediaInfo_Inform(handle, 0)
        finally:
            lib.MediaInfo_Close(handle)
        return text


def _load(library_file: str | None) -> Reader:
    from pymediainfo import MediaInfo  # only workers need the library

    # pymediainfo's own loader: the same library search and prototypes as `parse`.
    lib, handle, _version_text, version = MediaInfo._get_library(library_file)
    return Reader(lib, handle, version)


def _apply(reader: Reader, parse_speed: float, full: bool) -> None:
    """The options `MediaInfo.parse` sets, in its order, and two more. Some (Complete)
    are global to the library, not to the handle: they are all set again whenever they
    change."""
    lib, handle = reader.library, reader.handle
    if reader.version >= (18, 3):
        lib.MediaInfo_Option(handle, "Cover_Data", "")
    for name, value in (
        ("CharSet", "UTF-8"),
        ("Inform", "JSON"),
        ("Complete", "1" if full else ""),
        ("ParseSpeed", str(parse_speed)),
        ("LegacyStreamDisplay", ""),
        # Not set by `parse`. MediaInfo reads through a view named fd<N>.<ext> (see
        # mediad/extract/view.py); looking for the next name of an image sequence
        # there finds the views of other descriptors of this process, not the file's
        # neighbours. One row is one file: no sequence detection.
        ("File_TestContinuousFileNames", "0"),
        # Not set by `parse` either. The human-readable pass fills the "/String" fields
        # ("1 920 pixels", "48.0 kHz"), which only a full document shows: without it a
        # small file costs about 30 % less CPU, and the document is the same
        # (docs/benchmarks.md). Global to the library, like Complete.
        ("ReadByHuman", "1" if full else "0"),
    ):
        lib.MediaInfo_Option(handle, name, value)


_current: list[tuple[Reader, str | None, float, bool]] = []  # this process's reader


def _reader(library_file: str | None, parse_speed: float, full: bool) -> Reader:
    if _current and _current[0][1:] == (library_file, parse_speed, full):
        return _current[0][0]
    reader = _current[0][0] if _current and _current[0][1] == library_file else None
    if reader is None:
        reader = _load(library_file)
    _apply(reader, parse_speed, full)
    _current[:] = [(reader, library_file, parse_speed, full)]
    return reader


def prepare(*, library_file: str | None, parse_speed: float, full: bool) -> None:
    """Load the library and set the options now, at a worker's start: a library that
    cannot be loaded is then the worker's error, not its first file's. Raises OSError
    (or ImportError without pymediainfo)."""
    _reader(library_file, parse_speed, full)


def read_json(source: str, *, library_file: str | None, parse_speed: float, full: bool) -> str:
    """MediaInfo's JSON for `source`, through this process's reader.

    Raises OSError when the library cannot be loaded or the file not found, RuntimeError
    when libmediainfo cannot open it (as `pymediainfo.MediaInfo.parse` does).
    """
    return _reader(library_file, parse_speed, full).read(source)


def library_version() -> str:
    """The version of the libmediainfo this process loaded ("" before `prepare`): told
    to the supervisor once, at a worker's start, for the daemons table."""
    return ".".join(map(str, _current[0][0].version)) if _current else ""
