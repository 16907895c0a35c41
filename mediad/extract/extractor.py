"""The extractor: a path in, metadata or a classified failure out.

The gate (mediad/extract/gate.py) decides what may be read and opens it; MediaInfo reads
the opened descriptor through a view that keeps the file's extension
(mediad/extract/view.py); its document is checked and summarised here. The second reader
then adds camera metadata through the same descriptor (mediad/extract/second.py). Never
imports the database layer.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mediad.errors import FailureClass
from mediad.extract.gate import errno_failure, fingerprint_of, open_checked
from mediad.extract.options import ExtractOptions
from mediad.extract.second import read_second
from mediad.extract.summary import is_recognised, summarise
from mediad.extract.view import descriptor_view
from mediad.models import Extracted, Failure, Fingerprint, Outcome

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

# PostgreSQL's jsonb refuses \u0000; tags in hostile files can contain it.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def run_mediainfo(source: str, options: ExtractOptions) -> str:
    # Imported here so that importing the module (and the gate) needs no libmediainfo.
    from mediad.extract.mediainfo import read_json

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
        if not isinstance(result, Failure):
            # Through the same descriptor, while it is open: never the path again.
            second = read_second(fd, st.st_size, path, *result, options)
    finally:
        os.close(fd)
    fingerprint = fingerprint_of(st)
    seconds = time.monotonic() - started
    if isinstance(result, Failure):
        return replace(result, fingerprint=fingerprint, resolved_path=resolved, seconds=seconds)
    return Extracted(
        second.document,
        second.summary,
        fingerprint,
        resolved,
        seconds,
        _mediainfo_version(),
        second.reader_version,
        second.sidecar,
    )


def _mediainfo_version() -> str | None:
    # Imported here, as in run_mediainfo: importing this module needs no libmediainfo.
    from mediad.extract.mediainfo import library_version

    return library_version() or None


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
        return errno_failure(exc, "MediaInfo could not read")
    except RuntimeError as exc:
        return Failure(FailureClass.UNSUPPORTED, f"MediaInfo could not open the file: {exc}")
    return _interpret(text, path, source)
