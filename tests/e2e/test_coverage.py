"""The coverage table (bench/coverage.py, docs/coverage.md) on a few images the test makes:
one row per field, one column per format, mediad's own size where MediaInfo gives it agrees
with exiftool's, and the marked part of a page is rewritten in place.

Not a timed test: nothing here looks at a speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import exiftool
from bench.coverage import BEGIN, END, FIELDS
from bench.mix import CANON, PARIS
from bench.mix_images import ExifSpec, ImageSpec, write_image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IMAGES = (
    ImageSpec(
        "camera.jpg",
        (320, 240),
        ExifSpec(6, **CANON, taken="2021:06:15 12:34:56", offset="+02:00", gps=PARIS),
    ),
    ImageSpec("plain.jpg", (200, 150)),
    ImageSpec("plain.png", (120, 90)),
    ImageSpec("animated.gif", (96, 64), mode="P", frames=4, frame_ms=100),
    ImageSpec("lossy.webp", (64, 48)),
)


def coverage(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.coverage", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def cells(report: str, label: str) -> dict[str, dict[str, str]]:
    """The table under `label`, as {field: {format: cell}}."""
    lines = report.split(f"**{label}**", 1)[1].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line[:2] == "| "]
    header, body = rows[0], rows[1:]
    return {row[0].strip("` "): dict(zip(header[1:], row[1:], strict=True)) for row in body}


def test_the_coverage_table_compares_mediads_fields_with_exiftool(tmp_path: Path) -> None:
    if (why := exiftool.missing()) is not None:
        pytest.skip(f"{why}: it is the oracle of bench.coverage")
    source = tmp_path / "images"
    source.mkdir()
    for spec in IMAGES:
        write_image(source, spec)
    page = tmp_path / "page.md"
    page.write_text(f"# Coverage\n\nbefore\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    out = tmp_path / "report.md"
    result = coverage("--source", str(source), "--out", str(out), "--update", str(page))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == result.stdout
    table = cells(result.stdout, str(source))
    assert list(table) == list(FIELDS)
    assert set(table["width"]) == {"GIF (1)", "JPEG (2)", "PNG (1)", "WebP (1)", "all"}
    # MediaInfo's size of GIF, JPEG and PNG: exiftool finds it too, and they agree.
    for key in ("width", "height"):
        assert [table[key][k] for k in ("GIF (1)", "JPEG (2)", "PNG (1)")] == ["1/1", "2/2", "1/1"]
    # exiftool finds the camera's fields in one JPEG: counted, whatever mediad reads.
    for key in ("taken_at", "taken_at_offset_min", "gps_lat", "camera_make", "lens"):
        assert table[key]["JPEG (2)"].split()[0].endswith("/1"), (key, table[key])
    assert table["rotation_deg"]["JPEG (2)"].split()[0].endswith("/1")
    assert table["frame_count"]["GIF (1)"].split()[0].endswith("/1")
    assert table["camera_make"]["PNG (1)"] == "-"
    # What mediad states never contradicts exiftool on these files.
    assert f"{source}: 0 values that differ from exiftool's" in result.stdout
    text = page.read_text()
    assert text.startswith("# Coverage\n\nbefore\n\n" + BEGIN + "\nMeasured on mediad ")
    assert text.endswith(END + "\n\nafter\n")
    assert "old table" not in text and "| `width` |" in text
    assert "- lacks" not in text  # the page keeps the tables and the differences only


def test_the_coverage_command_says_what_it_needs() -> None:
    result = coverage()
    assert result.returncode == 2
    assert "give --source DIR or --mix" in result.stderr
    assert "Traceback" not in result.stderr
