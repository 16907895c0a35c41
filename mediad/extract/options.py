"""What a worker is told about how to read files: the same for every file it reads, set
from the config (mediad/pool/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractOptions:
    roots: tuple[str, ...] = ()  # resolved; empty means no confinement
    parse_speed: float = 0.5
    max_file_bytes: int = 0
    full_document: bool = False
    engine: str = "mediainfo"
    library_file: str | None = None
    second_reader: bool = True  # camera metadata (EXIF, XMP, IPTC) beside MediaInfo's
