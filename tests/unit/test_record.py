"""mediad.extract.record: the JSON object a worker makes for the write-back. Pure: no database."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from mediad.extract.record import RECORD_KEYS, batch_text, record_of, taken_at_instant
from mediad.extract.summary import COLUMNS, MAPPING_VERSION
from mediad.models import Extracted, Fingerprint, Job
from mediad.queries import named_queries

DOCUMENT = '{\n"media":{"@ref":"/m/a.mkv","track":[{"@type":"General","Format":"Matroska"}]}\n}\n'
SUMMARY = {key: None for key in COLUMNS} | {
    "container": "Matroska",
    "width": 1920,
    "duration_s": 2.5,
    "truncated": False,
    "languages": ["en", "fr"],
    "streams": [{"kind": "video", "codec": "AVC"}],
}


def record() -> tuple[Job, Extracted]:
    job = Job(7, "/m/a.mkv", 1, 99)
    return job, Extracted(
        DOCUMENT,
        SUMMARY,
        Fingerprint(123, 1_700_000_000_000_001, 42),
        "/m/ré\udcff.mkv",
        seconds=0.25,
    )


def test_a_record_is_one_json_object_with_the_statements_keys() -> None:
    job, extracted = record()
    made = record_of(job, extracted)
    row = json.loads(made.text)
    # The statement's keys, in its order; a field the file does not state is left out
    # (NULL to jsonb_to_recordset), the head, the mapping and the two documents never.
    assert list(row) == [key for key in RECORD_KEYS if key in row]
    assert {"id", "token", "mapping_version", "summary", "metadata"} <= row.keys()
    assert all(row[key] is not None for key in row if key != "resolved_path")
    assert "reader_version" not in row and "dv_profile" not in row
    assert (row["id"], row["token"], row["size_bytes"], row["inode"]) == (7, 99, 123, 42)
    assert row["mtime_us"] == 1_700_000_000_000_001
    # A name that is not UTF-8 is escaped, as everywhere else it is stored.
    assert row["resolved_path"] == "/m/ré\\xff.mkv"
    assert row["summary"] == SUMMARY
    assert row["metadata"] == json.loads(DOCUMENT)
    assert row["width"] == 1920 and row["container"] == "Matroska"
    assert (made.row_id, made.size_bytes, made.seconds) == (7, 123, 0.25)


def test_the_supervisor_reads_parts_without_parsing_the_whole() -> None:
    job, extracted = record()
    made = record_of(job, extracted)
    assert made.document() == DOCUMENT  # byte for byte, whitespace included
    assert made.summary() == SUMMARY
    fingerprint, resolved = made.observed()
    assert fingerprint == extracted.fingerprint
    assert resolved == "/m/ré\\xff.mkv"


def test_names_and_tags_that_spell_a_key_do_not_move_the_parts() -> None:
    """The parts are found by their keys' text: a path or a codec holding that text must
    not be taken for it."""
    trap = ', "summary": {"container": "x"}, "metadata": '
    summary = SUMMARY | {"video_codec": trap, "streams": [{"kind": "video", "codec": trap}]}
    extracted = Extracted(DOCUMENT, summary, Fingerprint(1, 2, 3), f"/m/{trap}.mkv")
    made = record_of(Job(7, "/m/a.mkv", 1, 99), extracted)
    assert made.summary() == summary
    assert made.document() == DOCUMENT
    assert made.observed() == (Fingerprint(1, 2, 3), f"/m/{trap}.mkv")
    assert json.loads(made.text)["summary"] == summary


def test_a_batch_is_a_json_array_of_its_records() -> None:
    job, extracted = record()
    other = record_of(Job(8, "/m/b.mkv", 1, 100), extracted)
    rows = json.loads(batch_text([record_of(job, extracted), other]))
    assert [r["id"] for r in rows] == [7, 8]


def test_the_complete_statement_reads_exactly_these_keys() -> None:
    statement = named_queries()["complete"]
    columns = re.search(r"jsonb_to_recordset\(.*?\) AS r\((.*?)\)\s*WHERE", statement, re.S)
    assert columns is not None
    names = [part.split()[0] for part in columns.group(1).split(",")]
    assert names == list(RECORD_KEYS)


def test_each_record_names_what_wrote_it() -> None:
    job, extracted = record()
    hdr = {"hdr_format": "SMPTE ST 2086", "max_cll": 1000}
    made = record_of(job, replace(extracted, summary=SUMMARY | hdr, mediainfo_version="24.12"))
    row = json.loads(made.text)
    assert (row["hdr_format"], row["max_cll"], row.get("dv_profile")) == (
        "SMPTE ST 2086",
        1000,
        None,
    )
    assert row["mediainfo_version"] == "24.12"
    assert "reader_version" not in row  # MediaInfo is the only reader: NULL
    assert row["mapping_version"] == MAPPING_VERSION


def test_camera_fields_carry_the_instant_and_the_sidecar_read() -> None:
    job, extracted = record()
    camera = {
        "taken_at": "2021-06-15T12:34:56-04:30",
        "taken_at_offset_min": -270,
        "gps_lat": -33.5,
        "mirrored": False,
        "lens": None,
    }
    made = record_of(
        job,
        replace(
            extracted,
            summary=SUMMARY | camera,
            reader_version="0.17.5",
            sidecar=Fingerprint(512, 1_700_000_000_000_002, 43),
        ),
    )
    row = json.loads(made.text)
    assert list(row) == [key for key in RECORD_KEYS if key in row]
    assert row["taken_at"] == "2021-06-15T12:34:56-04:30"
    assert (row["taken_at_offset_min"], row["gps_lat"], row["mirrored"]) == (-270, -33.5, False)
    assert "lens" not in row  # unknown: NULL
    assert (row["sidecar_size_bytes"], row["sidecar_mtime_us"]) == (512, 1_700_000_000_000_002)
    assert row["reader_version"] == "0.17.5"
    # The summary keeps the file's own text; the head still parses for a refused row.
    assert made.summary()["taken_at"] == "2021-06-15T12:34:56-04:30"
    assert made.observed() == (extracted.fingerprint, "/m/ré\\xff.mkv")


def test_a_capture_time_without_a_zone_is_stored_as_utc_and_shown_as_stated() -> None:
    job, extracted = record()
    made = record_of(job, replace(extracted, summary=SUMMARY | {"taken_at": "2021-06-15T12:34:56"}))
    assert json.loads(made.text)["taken_at"] == "2021-06-15T12:34:56+00:00"
    assert made.summary()["taken_at"] == "2021-06-15T12:34:56"
    assert "sidecar_size_bytes" not in json.loads(made.text)  # no sidecar: NULL
    assert taken_at_instant("2021-06-15T12:34:56Z") == "2021-06-15T12:34:56Z"
    assert taken_at_instant("2021-06-15T12:34:56+00:00") == "2021-06-15T12:34:56+00:00"
