"""What a pause covers and how `--until` is read (mediad/pauses.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mediad.pauses import covers, match_of, normalize_prefix, parse_until

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("/mnt/nas", "/mnt/nas"),
        ("/mnt/nas/", "/mnt/nas"),
        ("/mnt//nas/./x/..", "/mnt/nas"),
        ("//mnt/nas", "/mnt/nas"),
        ("/", "/"),
    ],
)
def test_a_prefix_is_stored_absolute_without_a_trailing_slash(given: str, stored: str) -> None:
    assert normalize_prefix(given) == stored


def test_a_relative_prefix_is_taken_from_the_current_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/tmp")
    assert normalize_prefix("media") == "/tmp/media"
    with pytest.raises(ValueError):
        normalize_prefix("")


def test_a_prefix_covers_the_paths_under_it_only() -> None:
    assert covers("/mnt/nas", "/mnt/nas/film.mkv")
    assert covers("/mnt/nas", "/mnt/nas/a/b/c.mkv")
    assert not covers("/mnt/nas", "/mnt/nas2/film.mkv")
    assert not covers("/mnt/nas", "/mnt/nas")
    assert covers("/", "/anything")
    assert covers(None, "/anything")
    assert match_of("/") == "/" and match_of("/a") == "/a/"


def test_until_reads_iso_8601_with_or_without_an_offset() -> None:
    assert parse_until("2026-12-03T18:00:00+01:00", NOW) == datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    assert parse_until("2026-12-03T18:00Z", NOW) == datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    local = parse_until("2999-01-01T00:00", NOW)
    assert local.tzinfo is not None and local.utcoffset() == local.astimezone().utcoffset()


@pytest.mark.parametrize("text", ["tomorrow", "18:00 today", "", "2026-13-01"])
def test_until_refuses_what_is_not_an_iso_time(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_until(text, NOW)


def test_until_refuses_a_time_past() -> None:
    with pytest.raises(ValueError, match="not in the future"):
        parse_until((NOW - timedelta(seconds=1)).isoformat(), NOW)
    with pytest.raises(ValueError, match="not in the future"):
        parse_until(NOW.isoformat(), NOW)


def test_top_shows_each_pause_within_its_width() -> None:
    from mediad.commands.report.topview import Snapshot, layout
    from mediad.pauses import Pause

    pauses = [
        Pause(None, NOW, None, "ops@host"),
        Pause("/mnt/" + "n" * 100, NOW, NOW + timedelta(hours=1), "ops@host"),
    ]
    counts = {"pending": 5, "running": 0, "done": 0, "failed": 0}
    view = layout(Snapshot("db", counts, 0.0, 0.0, None, {}, [], pauses), 80)
    paused = [line for line in view if line.text.startswith("paused ")]
    assert [line.kind for line in paused] == ["warning", "warning"]
    assert paused[0].text == "paused everything: since 2026-12-03T12:00:00+00:00 by ops@host"
    assert all(len(line.text) <= 80 for line in view)
