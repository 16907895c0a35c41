"""Metadata normalisation: MediaInfo's JSON document to mediad's typed summary.

Pure: takes the parsed document, returns plain values. MediaInfo reports numbers as
strings, sometimes with several values ("48000 / 44100") or none; every reader here
tolerates that and returns None rather than raising.
"""

from __future__ import annotations

import math
from typing import Any

Track = dict[str, Any]

# Summary keys that have their own column (queryable and indexable), in column order.
COLUMNS: tuple[str, ...] = (
    "container",
    "duration_s",
    "bit_rate",
    "width",
    "height",
    "frame_rate",
    "video_codec",
    "audio_codec",
    "audio_channels",
    "sample_rate",
    "video_tracks",
    "audio_tracks",
    "text_tracks",
    "truncated",
)

# The integer columns are PostgreSQL integer (bit_rate: bigint). A hostile header can claim
# any number (a WAV's 32-bit sample rate, say), and one value the column cannot hold makes
# the database refuse the whole row: such values are no value in the columns (the document
# keeps what MediaInfo said).
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1

# Stream kinds that make a recognised container more than an empty shell.
STREAM_KINDS = ("Video", "Audio", "Text", "Image", "Other")


def _field(track: Track, key: str) -> Any:
    if key in track:
        return track[key]
    extra = track.get("extra")
    if isinstance(extra, dict):
        return extra.get(key)
    return None


def _first_number_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    # "48000 / 44100" or "2 / 6": the first value is the main stream's.
    text = text.split("/")[0].strip()
    return text or None


def to_float(value: Any) -> float | None:
    text = _first_number_text(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # NaN and inf are no value


def to_int(value: Any) -> int | None:
    number = to_float(value)
    return None if number is None else round(number)


def _column_int(value: Any, maximum: int = INT4_MAX) -> int | None:
    """A count or size for an integer column: None unless 0 <= value <= maximum."""
    number = to_int(value)
    return number if number is not None and 0 <= number <= maximum else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    # PostgreSQL refuses NUL in text and jsonb; hostile tags may carry it.
    text = str(value).replace("\x00", "").strip()
    return text or None


def tracks_of(document: dict[str, Any]) -> list[Track]:
    media = document.get("media")
    if not isinstance(media, dict):
        return []
    tracks = media.get("track")
    if not isinstance(tracks, list):
        return []
    return [t for t in tracks if isinstance(t, dict)]


def _kind(track: Track) -> str:
    return str(track.get("@type", ""))


def _stream_summary(track: Track) -> dict[str, Any]:
    kind = _kind(track)
    stream: dict[str, Any] = {"kind": kind.lower(), "codec": _text(_field(track, "Format"))}
    if kind in ("Video", "Image"):
        stream.update(
            width=to_int(_field(track, "Width")),
            height=to_int(_field(track, "Height")),
            bit_depth=to_int(_field(track, "BitDepth")),
        )
    if kind == "Video":
        stream.update(
            profile=_text(_field(track, "Format_Profile")),
            frame_rate=to_float(_field(track, "FrameRate")),
            scan_type=_text(_field(track, "ScanType")),
            hdr_format=_text(_field(track, "HDR_Format")),
            colour_primaries=_text(_field(track, "colour_primaries")),
            transfer_characteristics=_text(_field(track, "transfer_characteristics")),
            matrix_coefficients=_text(_field(track, "matrix_coefficients")),
        )
    if kind == "Audio":
        stream.update(
            channels=to_int(_field(track, "Channels")),
            sample_rate=to_int(_field(track, "SamplingRate")),
        )
    if kind in ("Video", "Audio", "Text"):
        stream.update(
            language=_text(_field(track, "Language")),
            duration_s=to_float(_field(track, "Duration")),
            bit_rate=to_int(_field(track, "BitRate")),
            default=_text(_field(track, "Default")) == "Yes" or None,
        )
    return {k: v for k, v in stream.items() if v is not None}


def is_recognised(document: dict[str, Any]) -> bool:
    """MediaInfo names a format: empty, random and text files come back without one."""
    general = next((t for t in tracks_of(document) if _kind(t) == "General"), None)
    return general is not None and _text(_field(general, "Format")) is not None


def stream_count(document: dict[str, Any]) -> int:
    return sum(1 for t in tracks_of(document) if _kind(t) in STREAM_KINDS)


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """The typed summary stored beside the full document."""
    tracks = tracks_of(document)
    general = next((t for t in tracks if _kind(t) == "General"), {})
    videos = [t for t in tracks if _kind(t) == "Video"]
    audios = [t for t in tracks if _kind(t) == "Audio"]
    texts = [t for t in tracks if _kind(t) == "Text"]
    images = [t for t in tracks if _kind(t) == "Image"]
    picture = videos[0] if videos else (images[0] if images else {})
    audio = audios[0] if audios else {}

    duration = to_float(_field(general, "Duration"))
    if duration is None:
        durations = [to_float(_field(t, "Duration")) for t in videos + audios]
        duration = max((d for d in durations if d is not None), default=None)

    truncated = _text(_field(general, "IsTruncated")) == "Yes"
    languages = sorted({lang for t in audios + texts if (lang := _text(_field(t, "Language")))})
    hdr = _text(_field(videos[0], "HDR_Format")) if videos else None

    return {
        "container": _text(_field(general, "Format")),
        "duration_s": duration,
        "bit_rate": _column_int(_field(general, "OverallBitRate"), INT8_MAX),
        "width": _column_int(_field(picture, "Width")),
        "height": _column_int(_field(picture, "Height")),
        "frame_rate": to_float(_field(videos[0], "FrameRate")) if videos else None,
        "video_codec": _text(_field(videos[0], "Format")) if videos else None,
        "audio_codec": _text(_field(audio, "Format")) if audios else None,
        "audio_channels": _column_int(_field(audio, "Channels")) if audios else None,
        "sample_rate": _column_int(_field(audio, "SamplingRate")) if audios else None,
        "video_tracks": len(videos),
        "audio_tracks": len(audios),
        "text_tracks": len(texts),
        "image_tracks": len(images),
        "truncated": truncated,
        "hdr_format": hdr,
        "languages": languages,
        "streams": [_stream_summary(t) for t in tracks if _kind(t) in STREAM_KINDS],
    }
