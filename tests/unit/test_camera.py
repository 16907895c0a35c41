"""Camera metadata to summary fields (mediad/extract/camera*.py, second.py's pure parts):
dates as files state them, places, orientations, and which source wins. No files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mediad.extract import camera_values, reader
from mediad.extract.camera import apply_layers, exif_fields, mediainfo_fields, xmp_fields
from mediad.extract.camera_values import (
    ORIENTATIONS,
    exif_date,
    iso6709,
    offset_minutes,
    video_rotation,
    with_offset,
    xmp_date,
)
from mediad.extract.second import reason, wanted, with_reader
from mediad.extract.summary import MAPPING_VERSION, PHOTO_COLUMNS, summarise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021:06:15 12:34:56", "2021-06-15T12:34:56"),
        ("2021:06:15 12:34:56.123", "2021-06-15T12:34:56"),  # no sub-seconds
        ("0000:00:00 00:00:00", None),  # a camera whose clock was never set
        ("    :  :     :  :  ", None),
        ("2021:13:15 12:34:56", None),
        ("2021:06:15 25:00:00", None),
        # Days no calendar has: PostgreSQL's timestamptz refuses them, and the row with them.
        ("2021:02:31 12:34:56", None),
        ("2021:02:29 12:34:56", None),
        ("2020:02:29 12:34:56", "2020-02-29T12:34:56"),
        ("2021:04:31 12:34:56", None),
        ("2016:12:31 23:59:60", "2016-12-31T23:59:60"),  # a leap second: PostgreSQL takes it
        ("\u0662\u0660\u0662\u0661:06:15 12:34:56", None),  # digits of another script
        ("", None),
        (None, None),
    ],
)
def test_exif_dates(text: str | None, expected: str | None) -> None:
    assert exif_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-07-04T18:30:00-04:00", ("2019-07-04T18:30:00", -240)),
        ("2019-07-04T18:30:00.25Z", ("2019-07-04T18:30:00", 0)),
        ("2019-07-04T18:30", ("2019-07-04T18:30:00", None)),
        ("2022-02-02T22:22:22+0900", ("2022-02-02T22:22:22", 540)),  # Apple's form
        ("2019-07-04", (None, None)),  # a day is not a time
        ("2019-02-30T18:30:00Z", (None, None)),
        ("2019-07-04T18:30:00+\u0660\u0662:00", (None, None)),
        ("garbage", (None, None)),
    ],
)
def test_xmp_dates(text: str, expected: tuple[str | None, int | None]) -> None:
    assert xmp_date(text) == expected


def test_offsets_and_their_form_in_the_summary() -> None:
    assert [offset_minutes(t) for t in ("+02:00", "-05:30", "Z", "+99:00", "")] == [
        120,
        -330,
        0,
        None,
        None,
    ]
    assert with_offset("2021-06-15T12:34:56", 120) == "2021-06-15T12:34:56+02:00"
    assert with_offset("2021-06-15T12:34:56", -570) == "2021-06-15T12:34:56-09:30"
    assert with_offset("2021-06-15T12:34:56", None) == "2021-06-15T12:34:56"


# exiftool's words for EXIF orientations 1 to 8 (its Orientation tag, not -n).
EXIFTOOL_WORDS = (
    "Horizontal (normal)",
    "Mirror horizontal",
    "Rotate 180",
    "Mirror vertical",
    "Mirror horizontal and rotate 270 CW",
    "Rotate 90 CW",
    "Mirror horizontal and rotate 90 CW",
    "Rotate 270 CW",
)


def _from_words(words: str) -> tuple[int, bool]:
    """Degrees clockwise and mirroring as the words say them (a vertical mirror is a
    horizontal one turned 180 degrees)."""
    if words == "Mirror vertical":
        return 180, True
    degrees = next((int(w) for w in words.split() if w.isdigit()), 0)
    return degrees, words.startswith("Mirror")


def test_orientations_say_what_exiftool_says() -> None:
    """Mirror first, then rotate clockwise (tests/unit/test_second_reader.py asks exiftool)."""
    for orientation, words in enumerate(EXIFTOOL_WORDS, 1):
        assert ORIENTATIONS[orientation] == _from_words(words), words


def test_orientations_are_ascii_digits_1_to_8() -> None:
    # "\u00b3" and "\u0663" are digits to str.isdigit(); the first is no number to int().
    assert [
        camera_values.orientation(t) for t in ("6", " 8 ", "9", "0", "\u00b3", "\u0663", "x", None)
    ] == [
        6,
        8,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_iso6709_and_video_rotation() -> None:
    assert iso6709("+48.8584+002.2945+035.000/") == (48.8584, 2.2945, 35.0)
    assert iso6709("-33.8568+151.2153/") == (-33.8568, 151.2153, None)
    assert iso6709("+98.0+002.0/") is None
    # An altitude past any float (Infinity, which PostgreSQL's jsonb refuses) or past the
    # sky is no altitude; the place stands.
    assert iso6709("+48.8584+002.2945+" + "9" * 400 + "/") == (48.8584, 2.2945, None)
    assert iso6709("+48.8584+002.2945+400000/") == (48.8584, 2.2945, None)
    assert iso6709("nowhere") is None
    assert [video_rotation(t) for t in ("90.000", "-90", "180", "45.000", "x", None)] == [
        90,
        270,
        180,
        None,
        None,
        None,
    ]


EXIF = {
    "Exif.Image.Make": "Canon",
    "Exif.Image.Model": "Canon EOS R5",
    "Exif.Image.Orientation": "6",
    "Exif.Photo.DateTimeOriginal": "2021:06:15 12:34:56",
    "Exif.Photo.OffsetTimeOriginal": "+02:00",
    "Exif.Photo.LensModel": "RF24-105mm",
    "Exif.GPSInfo.GPSLatitudeRef": "N",
    "Exif.GPSInfo.GPSLatitude": "48/1 51/1 756/25",
    "Exif.GPSInfo.GPSLongitudeRef": "W",
    "Exif.GPSInfo.GPSLongitude": "2/1 17/1 201/5",
    "Exif.GPSInfo.GPSAltitudeRef": "1",
    "Exif.GPSInfo.GPSAltitude": "355/10",
}


def test_exif_fields() -> None:
    assert exif_fields(EXIF.get) == {
        "taken_at": "2021-06-15T12:34:56",
        "taken_at_offset_min": 120,
        "taken_at_source": "exif:DateTimeOriginal",
        "gps_lat": 48.8584,
        "gps_lon": -2.2945,
        "gps_alt_m": -35.5,
        "orientation": 6,
        "rotation_deg": 90,
        "mirrored": False,
        "camera_make": "Canon",
        "camera_model": "Canon EOS R5",
        "lens": "RF24-105mm",
    }


def test_exif_nonsense_is_no_value() -> None:
    hostile = {
        "Exif.Image.Orientation": "9",
        "Exif.Photo.DateTimeOriginal": "2021:00:00 00:00:00",
        "Exif.GPSInfo.GPSLatitude": "48/0 51/1 756/25",  # a zero denominator
        "Exif.GPSInfo.GPSLatitudeRef": "N",
        "Exif.GPSInfo.GPSLongitude": "2/1 17/1 201/5",
        "Exif.GPSInfo.GPSLongitudeRef": "E",
        "Exif.Image.Make": "\x00\x00 ",
        "Exif.Image.Model": "x" * 10_000,
    }
    fields = exif_fields(hostile.get)
    assert fields == {"camera_model": "x" * 200}
    # A latitude without its reference has no sign: not guessed.
    no_ref = {k: v for k, v in EXIF.items() if k != "Exif.GPSInfo.GPSLatitudeRef"}
    assert "gps_lat" not in exif_fields(no_ref.get)


def test_xmp_fields_name_their_source() -> None:
    xmp = {
        "Xmp.photoshop.DateCreated": "2015-10-21T16:29:00-07:00",
        "Xmp.exif.GPSLatitude": "40,44.5000N",
        "Xmp.exif.GPSLongitude": "73,59.1000W",
        "Xmp.tiff.Orientation": "8",
    }
    fields = xmp_fields(xmp.get, "xmp-sidecar")
    assert fields["taken_at_source"] == "xmp-sidecar:DateCreated"
    assert (fields["taken_at"], fields["taken_at_offset_min"]) == ("2015-10-21T16:29:00", -420)
    assert (fields["gps_lat"], fields["gps_lon"]) == (pytest.approx(40.7416667), -73.985)
    assert (fields["orientation"], fields["rotation_deg"], fields["mirrored"]) == (8, 270, False)
    nothing: dict[str, str] = {}
    assert xmp_fields(nothing.get) == {}


def _general(**fields: Any) -> dict[str, Any]:
    return {"@type": "General", "Format": "MPEG-4", **fields}


def test_quicktime_dates_are_utc_and_the_zero_date_is_none() -> None:
    fields = mediainfo_fields(_general(Encoded_Date="2022-01-02 03:04:05 UTC"), None)
    assert fields["taken_at"] == "2022-01-02T03:04:05"
    assert (fields["taken_at_offset_min"], fields["taken_at_source"]) == (
        0,
        "mediainfo:Encoded_Date",
    )
    assert mediainfo_fields(_general(Encoded_Date="UTC 1904-01-01 00:00:00"), None) == {}
    # Matroska's date is when it was muxed: not a capture time.
    mkv = {"@type": "General", "Format": "Matroska", "Encoded_Date": "2022-01-02 03:04:05 UTC"}
    assert mediainfo_fields(mkv, None) == {}


def test_apples_keys_carry_the_zone_and_the_place() -> None:
    general = _general(
        Encoded_Date="2021-06-15 10:34:56 UTC",
        extra={
            "com_apple_quicktime_creationdate": "2021-06-15T12:34:56+0200",
            "com_apple_quicktime_location_ISO6709": "+48.8584+002.2945+035.000/",
            "com_apple_quicktime_make": "Apple",
            "com_apple_quicktime_model": "iPhone 12",
        },
    )
    video = {"@type": "Video", "Rotation": "90.000"}
    assert mediainfo_fields(general, video) == {
        "taken_at": "2021-06-15T12:34:56",
        "taken_at_offset_min": 120,
        "taken_at_source": "quicktime:CreationDate",
        "gps_lat": 48.8584,
        "gps_lon": 2.2945,
        "gps_alt_m": 35.0,
        "camera_make": "Apple",
        "camera_model": "iPhone 12",
        "rotation_deg": 90,
    }


def test_the_summary_has_every_camera_key_and_the_new_mapping() -> None:
    document = {"media": {"track": [_general(extra={"xyz": "-33.8568+151.2153+010.500/"})]}}
    summary = summarise(document)
    assert set(PHOTO_COLUMNS) <= set(summary)
    assert (summary["gps_lat"], summary["gps_lon"], summary["gps_alt_m"]) == (
        -33.8568,
        151.2153,
        10.5,
    )
    assert summary["taken_at"] is None and summary["orientation"] is None
    assert MAPPING_VERSION == 4


def test_sidecar_then_exif_then_xmp_then_mediainfo_each_group_whole() -> None:
    summary: dict[str, Any] = dict.fromkeys(PHOTO_COLUMNS)
    apply_layers(summary, [mediainfo_fields(_general(Encoded_Date="2020-01-01 00:00:00"), None)])
    assert summary["taken_at"] == "2020-01-01T00:00:00+00:00"
    sidecar = {"taken_at": "2019-07-04T18:30:00", "taken_at_source": "xmp-sidecar:CreateDate"}
    xmp = {"taken_at": "2001-01-01T00:00:00", "taken_at_offset_min": 60, "camera_make": "X"}
    apply_layers(summary, [sidecar, exif_fields(EXIF.get), xmp])
    # The sidecar's date wins whole: its missing zone is not taken from the EXIF's.
    assert (summary["taken_at"], summary["taken_at_offset_min"]) == ("2019-07-04T18:30:00", None)
    assert summary["taken_at_source"] == "xmp-sidecar:CreateDate"
    assert summary["camera_make"] == "Canon"  # EXIF before XMP
    assert (summary["orientation"], summary["rotation_deg"]) == (6, 90)


def test_which_files_the_reader_reads() -> None:
    assert wanted({"container": "JPEG"}) and wanted({"container": "heic"})
    assert wanted({"container": "MPEG-4", "video_tracks": 1})
    assert not wanted({"container": "MPEG-4", "video_tracks": 0, "image_tracks": 0})  # .m4a
    assert not wanted({"container": "FLAC"}) and not wanted({"container": "Matroska"})


def test_the_reader_key_is_added_to_the_document() -> None:
    document = '{\n"creatingLibrary":{"name":"MediaInfoLib"},\n"media":{"track":[]}\n}\n'
    added = json.loads(with_reader(document, {"library": "x", "exif": {"a": "b"}}))
    assert added["reader"] == {"library": "x", "exif": {"a": "b"}}
    assert added["media"] == {"track": []}
    assert json.loads(with_reader("{}", {"error": "e"})) == {"reader": {"error": "e"}}


def test_values_are_made_storable() -> None:
    assert reader.clean("Can\x00on") == "Canon"
    assert reader.clean("bad \udcff") == "bad ?"
    long = reader.clean("x" * 10_000)
    assert len(long) == reader.MAX_VALUE_CHARS + 1 and long.endswith("…")
    message = reason(OSError(13, "/proc/self/fd/7: The file contains data of an unknown type"))
    assert message == "The file contains data of an unknown type"
    # A small file is parsed from memory: exiv2's words for it are those of a file.
    memory = reason(RuntimeError("The memory contains data of an unknown image type"))
    assert memory == "The file contains data of an unknown image type"


def test_maker_notes_are_recognised_by_key() -> None:
    maker = reader._is_maker
    assert maker("Exif.Photo.MakerNote") and maker("Exif.MakerNote.Offset")
    assert maker("Exif.Canon.ModelID") and maker("Exif.Nikon3.ShutterCount")
    assert not maker("Exif.Image.Make") and not maker("Exif.GPSInfo.GPSLatitude")
