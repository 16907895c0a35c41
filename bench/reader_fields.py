"""The fields a second reader must give (issue 19), and when two values agree. The
conversions every reader shares (EXIF and XMP dates, degrees) are mediad's own
(mediad/extract/camera_values.py), so what is measured is what runs."""

from __future__ import annotations

from typing import Any

# Compared field by field against exiftool; taken_at_source is reported, not compared
# (each library names its tags its own way).
COMPARED = (
    "taken_at",
    "taken_at_offset_min",
    "gps_lat",
    "gps_lon",
    "gps_alt_m",
    "orientation",
    "camera_make",
    "camera_model",
    "lens",
    "width",
    "height",
    "duration_s",
    "frame_count",
)
# Size, duration and frames are the second reader's only for images: MediaInfo's otherwise.
IMAGE_ONLY = ("width", "height", "duration_s", "frame_count")
# How close two floats must be: about 1 cm of latitude; a centimetre; a millisecond.
TOLERANCE = {"gps_lat": 1e-6, "gps_lon": 1e-6, "gps_alt_m": 0.01, "duration_s": 0.0015}


def agree(field: str, ours: Any, theirs: Any) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    tolerance = TOLERANCE.get(field)
    if tolerance is not None:
        return abs(float(ours) - float(theirs)) <= tolerance
    if isinstance(theirs, str) or isinstance(ours, str):
        return str(ours).strip() == str(theirs).strip()
    return bool(ours == theirs)
