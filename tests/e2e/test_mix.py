"""The mixed corpus (bench/mix.py) is what its manifest says: exiftool reads back the
values written, and the second reader's comparison (bench/readers.py) runs on it.

Not a timed test: nothing here looks at a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import exiftool
from bench.reader_fields import COMPARED, IMAGE_ONLY, agree
from tests.support.processes import bench_command

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKED = tuple(f for f in COMPARED if f not in IMAGE_ONLY)  # size and frames apart


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mix")
    bench_command("bench.mix", "--out", str(out))
    return out


def test_the_mix_has_every_kind_and_a_third_of_images_with_exif(mix: Path) -> None:
    files = json.loads((mix / "manifest.json").read_text())["files"]
    media = {name: entry for name, entry in files.items() if entry["kind"] != "sidecar"}
    assert len(media) >= 60
    assert sorted(p.name for p in mix.iterdir()) == sorted([*files, "manifest.json"])
    kinds = [entry["kind"] for entry in media.values()]
    assert {kind: kinds.count(kind) >= 10 for kind in ("video", "audio", "image")} == {
        "video": True,
        "audio": True,
        "image": True,
    }
    assert 3 * sum(1 for entry in media.values() if entry.get("exif")) >= len(media)
    orientations = {entry["fields"].get("orientation") for entry in media.values()}
    assert set(range(1, 9)) <= orientations
    suffixes = {Path(name).suffix for name in media}
    assert {".jpg", ".png", ".webp", ".gif", ".tiff", ".avif", ".heic", ".mov"} <= suffixes


def test_exiftool_reads_back_what_the_manifest_says_was_written(mix: Path) -> None:
    if (why := exiftool.missing()) is not None:
        pytest.skip(f"{why}: it is the oracle the manifest is checked against")
    files = json.loads((mix / "manifest.json").read_text())["files"]
    tags = exiftool.read_tags(sorted(mix / name for name in files))
    checked = 0
    for name, entry in files.items():
        image = entry["kind"] in ("image", "sidecar")
        read = exiftool.fields_of(tags[mix / name], image)
        written = entry["fields"]
        for key in CHECKED:
            if key in written:
                assert agree(key, read.get(key), written[key]), (name, key, read, written)
                checked += 1
            else:
                assert key not in read, (name, key, read)  # nothing the mix did not write
        if image and "width" in read:
            assert (read["width"], read["height"]) == (written["width"], written["height"])
    # The sidecar, the phone videos' location atoms, and EXIF with and without a zone.
    sidecar = exiftool.fields_of(tags[mix / "sidecar.jpg.xmp"], True)
    assert (sidecar["taken_at"], sidecar["taken_at_offset_min"]) == ("2019-07-04T18:30:00", -240)
    for name, lat in (("phone_location.mov", -33.8568), ("phone_iso6709.mp4", 48.8584)):
        assert exiftool.fields_of(tags[mix / name], False)["gps_lat"] == pytest.approx(lat)
    for name, degrees in (("phone_portrait.mov", 90), ("upside_down.mp4", 180)):
        assert exiftool.fields_of(tags[mix / name], False)["rotation_deg"] == degrees
        assert files[name]["fields"]["rotation_deg"] == degrees
    no_zone = exiftool.fields_of(tags[mix / "date_no_zone.jpg"], True)
    assert no_zone["taken_at"] == "2017-05-06T07:08:09"
    assert "taken_at_offset_min" not in no_zone
    assert checked > 150


def test_the_reader_comparison_runs_on_a_part_of_the_mix(mix: Path, tmp_path: Path) -> None:
    """bench.readers on a few files: a row per field, a cost line per installed candidate,
    and the report written where asked."""
    if (why := exiftool.missing()) is not None:
        pytest.skip(f"{why}: it is the oracle of bench.readers")
    part = [mix / n for n in ("orientation_6.jpg", "exif.heic", "animated.gif", "tone.flac")]
    out = tmp_path / "readers.txt"
    command = [sys.executable, "-m", "bench.readers", "--passes", "1", "--reads", "1"]
    result = subprocess.run(
        [*command, "--out", str(out), "--also", *map(str, part)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == result.stdout
    assert "4 files, 3 where exiftool finds a field" in result.stdout
    for field in CHECKED:
        assert any(line.startswith(field) for line in result.stdout.splitlines()), field
    # Pillow and pillow-heif come with the test extra; the exiv2 candidates with `bench`.
    pillow = next(line for line in result.stdout.splitlines() if line.startswith("pillow "))
    assert len(pillow.split()) == 5, pillow
