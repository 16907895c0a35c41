"""mediad.extract.summary on hand-written MediaInfo-like documents: no files, no MediaInfo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mediad.extract.summary import (
    COLUMNS,
    HDR_COLUMNS,
    INT4_MAX,
    INT8_MAX,
    is_recognised,
    summarise,
    to_float,
    to_int,
    tracks_of,
)


def doc(*tracks: dict[str, Any]) -> dict[str, Any]:
    return {
        "creatingLibrary": {"name": "MediaInfoLib"},
        "media": {"@ref": "/x", "track": list(tracks)},
    }


def general(**fields: Any) -> dict[str, Any]:
    return {"@type": "General", **fields}


def video(**fields: Any) -> dict[str, Any]:
    return {"@type": "Video", **fields}


def audio(**fields: Any) -> dict[str, Any]:
    return {"@type": "Audio", **fields}


def text(**fields: Any) -> dict[str, Any]:
    return {"@type": "Text", **fields}


# --- number readers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("48000", 48000.0),
        ("48000 / 44100", 48000.0),
        ("2 / 6", 2.0),
        (" 25.000 ", 25.0),
        ("2.006", 2.006),
        (12, 12.0),
        (1.5, 1.5),
        ("", None),
        ("   ", None),
        (" / 44100", None),
        (None, None),
        ("inf", None),
        ("-inf", None),
        ("Infinity", None),
        ("nan", None),
        ("NaN", None),
        ("1e999", None),
        ("abc", None),
        ("Variable", None),
        ("12abc", None),
        ([], None),
        ({}, None),
    ],
)
def test_to_float(value: Any, expected: float | None) -> None:
    assert to_float(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("320", 320), ("239.6", 240), ("2 / 6", 2), ("nan", None), ("inf", None), (None, None)],
)
def test_to_int(value: Any, expected: int | None) -> None:
    assert to_int(value) == expected


# --- documents of odd shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"media": None},
        {"media": []},
        {"media": {"track": None}},
        {"media": {"track": {"@type": "General"}}},
        {"media": {"track": ["General", 3, None]}},
    ],
)
def test_malformed_documents(document: dict[str, Any]) -> None:
    assert tracks_of(document) == []
    summary = summarise(document)
    assert not is_recognised(summary)
    assert summary["container"] is None
    assert summary["streams"] == []
    assert summary["truncated"] is False
    assert set(COLUMNS) <= set(summary)


def test_no_general_format_is_not_recognised() -> None:
    def recognised(document: dict[str, Any]) -> bool:
        return is_recognised(summarise(document))

    assert not recognised(doc(general(FileSize="4200", FileExtension="mp4")))
    assert not recognised(doc(general(Format="   ")))
    assert not recognised(doc(video(Format="AVC")))  # a format, but not General's
    assert recognised(doc(general(Format="MPEG-4")))
    assert recognised(doc(general(extra={"Format": "Something"})))


def test_missing_fields_give_none() -> None:
    summary = summarise(doc(general(Format="Matroska"), video(), audio()))
    assert summary["container"] == "Matroska"
    for key in (
        "duration_s",
        "bit_rate",
        "width",
        "height",
        "frame_rate",
        "video_codec",
        "audio_codec",
        "audio_channels",
        "sample_rate",
        "hdr_format",
    ):
        assert summary[key] is None, key
    assert (summary["video_tracks"], summary["audio_tracks"]) == (1, 1)
    assert summary["streams"] == [{"kind": "video"}, {"kind": "audio"}]


def test_full_audio_video_document() -> None:
    summary = summarise(
        doc(
            general(Format="MPEG-4", Duration="2.006", OverallBitRate="576889"),
            video(
                Format="AVC",
                Width="320",
                Height="240",
                FrameRate="25.000",
                BitDepth="8",
                Format_Profile="High",
                HDR_Format="SMPTE ST 2086",
            ),
            audio(Format="AAC", Channels="2", SamplingRate="48000", Default="Yes"),
        )
    )
    assert summary["container"] == "MPEG-4"
    assert summary["duration_s"] == 2.006
    assert summary["bit_rate"] == 576889
    assert (summary["width"], summary["height"]) == (320, 240)
    assert summary["frame_rate"] == 25.0
    assert (summary["video_codec"], summary["audio_codec"]) == ("AVC", "AAC")
    assert (summary["audio_channels"], summary["sample_rate"]) == (2, 48000)
    assert summary["hdr_format"] == "SMPTE ST 2086"
    assert summary["streams"][1] == {
        "kind": "audio",
        "codec": "AAC",
        "channels": 2,
        "sample_rate": 48000,
        "default": True,
    }
    assert summary["streams"][0]["profile"] == "High"


def test_multiple_values_take_the_first() -> None:
    summary = summarise(
        doc(
            general(Format="MPEG-4", Duration="10.0 / 9.5"),
            audio(Format="AAC", Channels="2 / 1", SamplingRate="48000 / 24000"),
        )
    )
    assert summary["duration_s"] == 10.0
    assert summary["audio_channels"] == 2
    assert summary["sample_rate"] == 48000


def test_inf_and_nan_are_no_value() -> None:
    summary = summarise(
        doc(
            general(Format="MPEG-4", Duration="inf", OverallBitRate="nan"),
            video(Format="AVC", Width="nan", Height="inf", FrameRate="NaN"),
            audio(Format="AAC", Duration="-inf", SamplingRate="inf"),
        )
    )
    for key in ("duration_s", "bit_rate", "width", "height", "frame_rate", "sample_rate"):
        assert summary[key] is None, key
    # And the summary stays strict JSON (no NaN/Infinity tokens PostgreSQL would refuse).
    json.dumps(summary, allow_nan=False)


def test_duration_falls_back_to_the_longest_stream() -> None:
    summary = summarise(
        doc(
            general(Format="Matroska", Duration="nan"),
            video(Format="AVC", Duration="1.5"),
            audio(Format="Opus", Duration="2.25"),
            audio(Format="AAC", Duration="garbage"),
        )
    )
    assert summary["duration_s"] == 2.25
    no_durations = summarise(doc(general(Format="Matroska"), video(Format="AVC")))
    assert no_durations["duration_s"] is None


def test_image_only_document() -> None:
    summary = summarise(
        doc(
            general(Format="PNG", FileSize="159"),
            {"@type": "Image", "Format": "PNG", "Width": "64", "Height": "48", "BitDepth": "8"},
        )
    )
    assert summary["container"] == "PNG"
    assert (summary["width"], summary["height"]) == (64, 48)
    assert summary["image_tracks"] == 1
    assert summary["video_tracks"] == summary["audio_tracks"] == 0
    assert summary["video_codec"] is None
    assert summary["frame_rate"] is None
    assert summary["duration_s"] is None
    assert summary["streams"] == [
        {"kind": "image", "codec": "PNG", "width": 64, "height": 48, "bit_depth": 8}
    ]


def test_video_wins_over_image_for_dimensions() -> None:
    summary = summarise(
        doc(
            general(Format="MPEG-4"),
            {"@type": "Image", "Format": "JPEG", "Width": "600", "Height": "600"},
            video(Format="AVC", Width="1920", Height="1080"),
        )
    )
    assert (summary["width"], summary["height"]) == (1920, 1080)


def test_languages_are_collected_sorted_and_unique() -> None:
    summary = summarise(
        doc(
            general(Format="Matroska"),
            video(Format="AVC", Language="ja"),  # video languages are not collected
            audio(Format="AAC", Language="fr"),
            audio(Format="Opus", Language="en"),
            audio(Format="AC-3", Language="en"),
            audio(Format="DTS", Language="  "),
            audio(Format="FLAC"),
            text(Format="UTF-8", Language="de"),
            text(Format="PGS", extra={"Language": "it"}),
        )
    )
    assert summary["languages"] == ["de", "en", "fr", "it"]
    assert summary["audio_tracks"] == 5
    assert summary["text_tracks"] == 2
    assert summary["audio_codec"] == "AAC"  # the first audio track's


@pytest.mark.parametrize(
    ("general_fields", "expected"),
    [
        ({"extra": {"IsTruncated": "Yes"}}, True),
        ({"IsTruncated": "Yes"}, True),
        ({"extra": {"IsTruncated": "No"}}, False),
        ({"extra": {"ConformanceErrors": []}}, False),
        ({"extra": "not a dict"}, False),
        ({}, False),
    ],
)
def test_truncated(general_fields: dict[str, Any], expected: bool) -> None:
    summary = summarise(doc(general(Format="MPEG Audio", **general_fields)))
    assert summary["truncated"] is expected


def test_top_level_field_wins_over_extra() -> None:
    summary = summarise(doc(general(Format="WebM", extra={"Format": "Other"})))
    assert summary["container"] == "WebM"


def test_streams_are_the_tracks_of_stream_kinds() -> None:
    document = doc(
        general(Format="MPEG-4"),
        video(),
        audio(),
        text(),
        {"@type": "Image"},
        {"@type": "Other"},
        {"@type": "Menu"},
    )
    assert [s["kind"] for s in summarise(document)["streams"]] == [
        "video",
        "audio",
        "text",
        "image",
        "other",
    ]
    assert summarise(doc(general(Format="MPEG-4"), {"@type": "Menu"}))["streams"] == []


def test_stream_language_and_default_flags() -> None:
    streams = summarise(
        doc(
            general(Format="Matroska"),
            audio(Format="AAC", Language="en", Default="Yes"),
            audio(Format="AAC", Language="fr", Default="No"),
        )
    )["streams"]
    assert streams[0]["default"] is True
    assert "default" not in streams[1]
    assert [s["language"] for s in streams] == ["en", "fr"]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"Width": str(INT4_MAX + 1)}, "width"),
        ({"Height": "-240"}, "height"),
        ({"Width": "1e30"}, "width"),
    ],
)
def test_picture_numbers_outside_the_integer_column(fields: dict[str, str], key: str) -> None:
    summary = summarise(doc(general(Format="Matroska"), video(Format="AVC", **fields)))
    assert summary[key] is None


def test_audio_and_bit_rate_outside_their_columns() -> None:
    summary = summarise(
        doc(
            general(Format="Wave", OverallBitRate=str(INT8_MAX + 1)),
            audio(Format="PCM", Channels="65535", SamplingRate="4294967280"),
        )
    )
    assert summary["bit_rate"] is None
    assert summary["audio_channels"] == 65535  # fits an integer column: kept
    assert summary["sample_rate"] is None
    # The stream list (stored as JSON, not in a column) keeps what MediaInfo said.
    assert summary["streams"][0]["sample_rate"] == 4294967280
    edge = summarise(doc(general(Format="Wave", OverallBitRate=str(10**18)), audio()))
    assert edge["bit_rate"] == 10**18
    top = summarise(doc(general(Format="Wave"), audio(SamplingRate=str(INT4_MAX))))
    assert top["sample_rate"] == INT4_MAX


def test_summary_is_json_serialisable() -> None:
    summary = summarise(
        doc(
            general(Format="Matroska", Duration="2.0"),
            video(Format="AVC", Width="320", Height="240", FrameRate="25"),
            audio(Format="AAC", Language="en"),
        )
    )
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


RECORDED = Path(__file__).parent.parent / "support" / "mediainfo"


def recorded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return document


def hdr_of(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in HDR_COLUMNS}


def test_hdr10_from_a_recorded_document() -> None:
    assert hdr_of(summarise(recorded("hdr10.json"))) == {
        "hdr_format": "SMPTE ST 2086",
        "dv_profile": None,
        "transfer": "PQ",
        "primaries": "BT.2020",
        "video_bit_depth": 10,
        "max_cll": 1000,
        "max_fall": 400,
    }


def test_dolby_vision_with_an_hdr10_base_layer() -> None:
    assert hdr_of(summarise(recorded("dolby_vision_8.json"))) == {
        "hdr_format": "Dolby Vision / SMPTE ST 2086",
        "dv_profile": 8,
        "transfer": "PQ",
        "primaries": "BT.2020",
        "video_bit_depth": 10,
        "max_cll": 3241,
        "max_fall": 519,
    }


def test_dolby_vision_without_colour_description_guesses_nothing() -> None:
    """Profile 5 carries no colour description: transfer, primaries and light levels are
    not known, and are not inferred from the profile."""
    assert hdr_of(summarise(recorded("dolby_vision_5.json"))) == {
        "hdr_format": "Dolby Vision",
        "dv_profile": 5,
        "transfer": None,
        "primaries": None,
        "video_bit_depth": 10,
        "max_cll": None,
        "max_fall": None,
    }


def test_sdr_video_has_no_hdr_fields_but_its_stated_colour() -> None:
    document = doc(
        general(Format="MPEG-4"),
        video(
            Format="AVC",
            BitDepth="8",
            colour_primaries="BT.709",
            transfer_characteristics="BT.709",
        ),
    )
    assert hdr_of(summarise(document)) == {
        "hdr_format": None,
        "dv_profile": None,
        "transfer": "BT.709",
        "primaries": "BT.709",
        "video_bit_depth": 8,
        "max_cll": None,
        "max_fall": None,
    }


def test_audio_and_image_files_have_no_hdr_fields() -> None:
    for document in (
        doc(general(Format="FLAC"), audio(Format="FLAC", BitDepth="24")),
        doc(general(Format="PNG"), {"@type": "Image", "Format": "PNG", "BitDepth": "16"}),
    ):
        assert set(hdr_of(summarise(document)).values()) == {None}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000 cd/m2", 1000),
        ("1000 cd/m\u00b2", 1000),
        ("400", 400),
        (" 400.4 cd/m2 / 300 cd/m2", 400),
        ("0 cd/m2", None),  # CTA-861.3: 0 means not known
        ("", None),
        ("cd/m2", None),
        ("-5 cd/m2", None),
        ("1000 nits", None),
        ("99999999999 cd/m2", None),
    ],
)
def test_light_levels(value: str, expected: int | None) -> None:
    document = doc(general(Format="Matroska"), video(Format="HEVC", MaxCLL=value))
    assert summarise(document)["max_cll"] == expected


@pytest.mark.parametrize(
    ("hdr_format", "profile", "expected"),
    [
        ("Dolby Vision", "dvhe.08", 8),
        ("Dolby Vision", "dvh1.05.06", 5),
        ("Dolby Vision / SMPTE ST 2086", "dav1.10 / ", 10),
        ("Dolby Vision", "", None),
        ("Dolby Vision", "Main 10", None),
        ("SMPTE ST 2086", "dvhe.08", None),  # a profile without Dolby Vision is no profile
        (None, "dvhe.08", None),
    ],
)
def test_dolby_vision_profile(hdr_format: str | None, profile: str, expected: int | None) -> None:
    fields = {"Format": "HEVC", "HDR_Format_Profile": profile}
    if hdr_format is not None:
        fields["HDR_Format"] = hdr_format
    document = doc(general(Format="MPEG-4"), video(**fields))
    assert summarise(document)["dv_profile"] == expected
