"""Metadata normalisation: MediaInfo's JSON document to mediad's typed summary.

Pure: takes the parsed document, returns plain values. MediaInfo reports numbers as
strings, sometimes with several values ("48000 / 44100") or none; every reader here
tolerates that and returns None rather than raising.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from mediad.extract.camera import apply_layers, mediainfo_fields

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

# Summary keys describing a video's dynamic range, each with its own column too. Kept apart
# from COLUMNS because attached tables do not receive them (docs/attach.md).
HDR_COLUMNS: tuple[str, ...] = (
    "hdr_format",
    "dv_profile",
    "transfer",
    "primaries",
    "video_bit_depth",
    "max_cll",
    "max_fall",
)

# Summary keys from camera metadata (the second reader, XMP sidecars, and MediaInfo where
# it states them), each with its own column too; NULL when unknown, never guessed
# (docs/schema.md). Kept apart from COLUMNS as HDR_COLUMNS are.
PHOTO_COLUMNS: tuple[str, ...] = (
    "taken_at",  # wall-clock ISO 8601 as the file states it, offset appended when known
    "taken_at_offset_min",
    "taken_at_source",  # e.g. exif:DateTimeOriginal, xmp-sidecar:DateCreated
    "gps_lat",
    "gps_lon",
    "gps_alt_m",
    "orientation",  # EXIF 1-8
    "rotation_deg",  # 0/90/180/270 clockwise to display upright
    "mirrored",
    "camera_make",
    "camera_model",
    "lens",
    "frame_count",  # animated GIF, APNG, WebP
)

# The version of the mapping from MediaInfo's document to the summary, recorded with each
# row (mapping_version). Bump it whenever `summarise` changes what it returns, so rows read
# by the older logic can be found (docs/schema.md). 1 was the summary before the HDR fields;
# 2 before the camera fields (PHOTO_COLUMNS: capture date, place, orientation, camera, from
# the second reader, XMP sidecars and MediaInfo's QuickTime fields); 3 before the XMP
# packet inside MPEG-4 and QuickTime files (mediad/extract/bmff_xmp.py) was read.
MAPPING_VERSION = 4

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


def _parse_float(value: Any) -> float | None:
    text = _first_number_text(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # NaN and inf are no value


def to_float(value: Any) -> float | None:
    if value.__class__ is str:
        # Most values are one plain number: float() strips the same white space, and
        # fails on the rest ("48000 / 44100", "", "Variable"), which take the long way.
        try:
            number = float(value)
        except ValueError:
            return _parse_float(value)
        return number if math.isfinite(number) else None
    return _parse_float(value)


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
    text = value if value.__class__ is str else str(value)
    if "\x00" in text:  # PostgreSQL refuses NUL in text and jsonb; hostile tags carry it
        text = text.replace("\x00", "")
    return text.strip() or None


# Dolby Vision's codec strings: dvhe.08, dvh1.05, dav1.10 (the profile is the number).
_DV_PROFILE = re.compile(r"\b(?:dvhe|dvh1|dvav|dva1|dav1)\.(\d{1,2})\b")
# MaxCLL and MaxFALL as MediaInfo writes them: "1000 cd/m2", alone or first of several.
_LUMINANCE = re.compile(r"\s*(\d{1,9}(?:\.\d+)?)\s*(?:cd/m2|cd/m\u00b2)?\s*(?:/|$)")


def dv_profile(track: Track) -> int | None:
    """The Dolby Vision profile, when the track says it is Dolby Vision and names one."""
    if "Dolby Vision" not in (_text(_field(track, "HDR_Format")) or ""):
        return None
    match = _DV_PROFILE.search(_text(_field(track, "HDR_Format_Profile")) or "")
    return int(match.group(1)) if match else None


def luminance(value: Any) -> int | None:
    """cd/m² as an integer. 0 means "not known" in CTA-861.3, so it is no value."""
    match = _LUMINANCE.match(_text(value) or "")
    if match is None:
        return None
    number = round(float(match.group(1)))
    return number if 0 < number <= INT4_MAX else None


def hdr_summary(video: Track | None) -> dict[str, Any]:
    """The HDR keys, from the first video track's own fields; all None without one."""
    if video is None:
        return dict.fromkeys(HDR_COLUMNS)
    return {
        "hdr_format": _text(_field(video, "HDR_Format")),
        "dv_profile": dv_profile(video),
        "transfer": _text(_field(video, "transfer_characteristics")),
        "primaries": _text(_field(video, "colour_primaries")),
        "video_bit_depth": _column_int(_field(video, "BitDepth")),
        "max_cll": luminance(_field(video, "MaxCLL")),
        "max_fall": luminance(_field(video, "MaxFALL")),
    }


def photo_summary(general: Track, video: Track | None) -> dict[str, Any]:
    """The camera keys from MediaInfo alone (a QuickTime date and place, a video's
    rotation), each None when it says nothing; the second reader adds its own over them
    (mediad/extract/second.py)."""
    photo: dict[str, Any] = dict.fromkeys(PHOTO_COLUMNS)
    apply_layers(photo, [mediainfo_fields(general, video)])
    return photo


def tracks_of(document: dict[str, Any]) -> list[Track]:
    media = document.get("media")
    if not isinstance(media, dict):
        return []
    tracks = media.get("track")
    if not isinstance(tracks, list):
        return []
    return [t for t in tracks if isinstance(t, dict)]


def _kind(track: Track) -> str:
    kind = track.get("@type", "")
    return kind if kind.__class__ is str else str(kind)


def _yes(value: Any) -> bool | None:
    return True if _text(value) == "Yes" else None


# Per stream kind, in the order they appear in a stream's summary: (summary key, MediaInfo
# field, reader). A field with no value is left out.
_CODEC: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (("codec", "Format", _text),)
_PICTURE = (
    ("width", "Width", to_int),
    ("height", "Height", to_int),
    ("bit_depth", "BitDepth", to_int),
)
_TIMED = (
    ("language", "Language", _text),
    ("duration_s", "Duration", to_float),
    ("bit_rate", "BitRate", to_int),
    ("default", "Default", _yes),
)
_STREAM_FIELDS = {
    "Video": (
        *_CODEC,
        *_PICTURE,
        ("profile", "Format_Profile", _text),
        ("frame_rate", "FrameRate", to_float),
        ("scan_type", "ScanType", _text),
        ("hdr_format", "HDR_Format", _text),
        ("colour_primaries", "colour_primaries", _text),
        ("transfer_characteristics", "transfer_characteristics", _text),
        ("matrix_coefficients", "matrix_coefficients", _text),
        *_TIMED,
    ),
    "Audio": (
        *_CODEC,
        ("channels", "Channels", to_int),
        ("sample_rate", "SamplingRate", to_int),
        *_TIMED,
    ),
    "Text": (*_CODEC, *_TIMED),
    "Image": (*_CODEC, *_PICTURE),
}


def _stream_summary(track: Track, kind: str) -> dict[str, Any]:
    stream: dict[str, Any] = {"kind": kind.lower()}
    for name, key, read in _STREAM_FIELDS.get(kind, _CODEC):
        raw = _field(track, key)
        if raw is not None and (value := read(raw)) is not None:
            stream[name] = value
    return stream


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """The typed summary stored beside the full document."""
    first_general: Track | None = None
    videos: list[Track] = []
    audios: list[Track] = []
    texts: list[Track] = []
    images: list[Track] = []
    streams: list[dict[str, Any]] = []
    by_kind = {"Video": videos, "Audio": audios, "Text": texts, "Image": images}
    # One pass, in document order: the first General track is the file's.
    for track in tracks_of(document):
        kind = _kind(track)
        if kind == "General":
            if first_general is None:
                first_general = track
            continue
        if kind in STREAM_KINDS:
            streams.append(_stream_summary(track, kind))
            bucket = by_kind.get(kind)
            if bucket is not None:
                bucket.append(track)
    general = first_general if first_general is not None else {}
    video = videos[0] if videos else None
    audio = audios[0] if audios else None
    picture = video if video is not None else (images[0] if images else {})

    duration = to_float(_field(general, "Duration"))
    if duration is None:
        durations = [to_float(_field(t, "Duration")) for t in videos + audios]
        duration = max((d for d in durations if d is not None), default=None)

    truncated = _text(_field(general, "IsTruncated")) == "Yes"
    languages = sorted({lang for t in audios + texts if (lang := _text(_field(t, "Language")))})

    return {
        "container": _text(_field(general, "Format")),
        "duration_s": duration,
        "bit_rate": _column_int(_field(general, "OverallBitRate"), INT8_MAX),
        "width": _column_int(_field(picture, "Width")),
        "height": _column_int(_field(picture, "Height")),
        "frame_rate": to_float(_field(video, "FrameRate")) if video is not None else None,
        "video_codec": _text(_field(video, "Format")) if video is not None else None,
        "audio_codec": _text(_field(audio, "Format")) if audio is not None else None,
        "audio_channels": _column_int(_field(audio, "Channels")) if audio is not None else None,
        "sample_rate": _column_int(_field(audio, "SamplingRate")) if audio is not None else None,
        "video_tracks": len(videos),
        "audio_tracks": len(audios),
        "text_tracks": len(texts),
        "image_tracks": len(images),
        "truncated": truncated,
        **hdr_summary(video),
        **photo_summary(general, video),
        "languages": languages,
        "streams": streams,
    }


def is_recognised(summary: dict[str, Any]) -> bool:
    """MediaInfo names a format: empty, random and text files come back without one."""
    return summary["container"] is not None
