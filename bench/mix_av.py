"""The video and audio files of the mixed corpus (bench/mix.py), made with PyAV alone.

Each spec is one container: its codecs, picture size, length and container metadata
(a creation date, an ISO 6709 location). Muxers and encoders run bit-exact, so the same
PyAV writes the same bytes every time (no random Matroska UIDs, no encoder banners that
change between runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from tests.support.media import audio_frames, video_frame

FPS = 25
BITEXACT = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class AvSpec:
    """One video or audio file. `audio`: (codec, sample rate, layout) per track."""

    name: str
    video: str | None
    audio: tuple[tuple[str, int, str], ...] = ()
    size: tuple[int, int] = (320, 240)
    seconds: float = 1.0
    pix_fmt: str = "yuv420p"
    metadata: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, str] = field(default_factory=dict)
    rotation_deg: int = 0  # clockwise, to display upright (a display matrix)


def _stereo(codec: str, rate: int = 48000) -> tuple[tuple[str, int, str], ...]:
    return ((codec, rate, "stereo"),)


# Location and dates as a phone writes them: MOV's udta ©xyz (the `location` key), and
# the mdta key Apple uses in MP4 and MOV alike (`use_metadata_tags`).
PARIS = "+48.8584+002.2945+035.000/"
SYDNEY = "-33.8568+151.2153+010.500/"
MDTA = {"movflags": "+use_metadata_tags"}

VIDEOS: tuple[AvSpec, ...] = (
    AvSpec("h264_aac.mp4", "libx264", _stereo("aac")),
    AvSpec(
        "h264_aac_faststart.mp4",
        "libx264",
        _stereo("aac"),
        (160, 120),
        2.0,
        options={"movflags": "+faststart"},
    ),
    AvSpec("h264_aac.mov", "libx264", _stereo("aac"), (256, 144)),
    AvSpec(
        "phone_location.mov",
        "libx264",
        _stereo("aac"),
        (240, 320),
        metadata={"location": SYDNEY, "creation_time": "2022-01-02T03:04:05.000000Z"},
    ),
    AvSpec(
        "phone_iso6709.mp4",
        "libx264",
        _stereo("aac"),
        (320, 180),
        metadata={
            "com.apple.quicktime.location.ISO6709": PARIS,
            "creation_time": "2021-06-15T10:34:56.000000Z",
        },
        options=MDTA,
    ),
    AvSpec(
        "phone_portrait.mov",
        "libx264",
        _stereo("aac"),
        (320, 180),
        metadata={"creation_time": "2023-08-09T10:11:12.000000Z"},
        rotation_deg=90,
    ),
    AvSpec("upside_down.mp4", "libx264", _stereo("aac"), (160, 90), rotation_deg=180),
    AvSpec(
        "hevc_aac.mp4",
        "libx265",
        _stereo("aac"),
        (320, 240),
        codec_options={"x265-params": "log-level=none:pools=1:frame-threads=1"},
    ),
    AvSpec(
        "av1_opus.mkv",
        "libsvtav1",
        _stereo("libopus"),
        (320, 240),
        0.5,
        codec_options={"preset": "12"},
    ),
    AvSpec("h264_opus.mkv", "libx264", (("aac", 48000, "stereo"), ("libopus", 48000, "mono"))),
    AvSpec("vp9_opus.webm", "libvpx-vp9", _stereo("libopus")),
    AvSpec("vp8_opus.webm", "libvpx", _stereo("libopus"), (176, 144)),
    AvSpec("mpeg4_mp3.avi", "mpeg4", _stereo("libmp3lame", 44100)),
    AvSpec(
        "mjpeg_pcm.avi", "mjpeg", _stereo("pcm_s16le", 44100), (160, 120), 0.5, pix_fmt="yuvj420p"
    ),
    AvSpec("mpeg2_mp2.ts", "mpeg2video", _stereo("mp2")),
    AvSpec("mpeg1_mp2.mpg", "mpeg1video", _stereo("mp2", 44100), (352, 240)),
    AvSpec("h264_aac.flv", "libx264", _stereo("aac", 44100), (320, 240)),
    AvSpec("wmv2_wma.wmv", "wmv2", _stereo("wmav2", 44100), (320, 240)),
    AvSpec("h264_silent.mp4", "libx264", (), (640, 360), 0.5),
)

AUDIO: tuple[AvSpec, ...] = (
    AvSpec("tone_mono.mp3", None, (("libmp3lame", 44100, "mono"),), seconds=2.0),
    AvSpec("tone_stereo.mp3", None, _stereo("libmp3lame")),
    AvSpec("tone.flac", None, _stereo("flac", 44100)),
    AvSpec("tone_s16.wav", None, _stereo("pcm_s16le", 44100)),
    AvSpec("tone_s24.wav", None, _stereo("pcm_s24le", 96000), seconds=0.5),
    AvSpec("tone.opus", None, _stereo("libopus")),
    AvSpec("tone.m4a", None, _stereo("aac", 44100)),
    AvSpec("tone_alac.m4a", None, _stereo("alac", 44100)),
    AvSpec("tone.aiff", None, _stereo("pcm_s16be", 44100)),
    AvSpec("tone.ac3", None, _stereo("ac3")),
    AvSpec("tone.mp2", None, _stereo("mp2")),
    AvSpec("tone.mka", None, _stereo("flac", 48000)),
    AvSpec("tone.wma", None, _stereo("wmav2", 44100)),
)


def _add_video(container: Any, spec: AvSpec) -> Any:
    assert spec.video is not None
    stream = container.add_stream(spec.video, rate=FPS)
    stream.width, stream.height = spec.size
    stream.pix_fmt = spec.pix_fmt
    options = {"flags": "+bitexact", **spec.codec_options}
    if spec.video == "libx264":
        options.update(preset="ultrafast", crf="35", threads="1")
    elif spec.video.startswith("libvpx"):
        options.update(deadline="realtime", crf="50", b="0", threads="1")
        options["cpu-used"] = "8"
    stream.options = options
    if spec.rotation_deg:
        stream.set_display_rotation(-spec.rotation_deg)  # ffmpeg's angle: counterclockwise
    return stream


def _add_audio(container: Any, codec: str, rate: int, layout: str) -> Any:
    stream = container.add_stream(codec, rate=rate)
    stream.layout = layout
    stream.options = {"flags": "+bitexact"}
    if codec in ("libopus", "aac", "libmp3lame", "mp2", "ac3", "wmav2"):
        stream.bit_rate = 64000
    return stream


def _encode_video(container: Any, stream: Any, spec: AvSpec) -> None:
    width, height = spec.size
    for index in range(round(spec.seconds * FPS)):
        frame = video_frame(index, width, height, spec.pix_fmt)
        frame.time_base = Fraction(1, FPS)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_av(directory: Path, spec: AvSpec) -> Path:
    """Write one container; the muxer's metadata keys are ffmpeg's (`location`,
    `creation_time`, or a full mdta key with `use_metadata_tags`)."""
    path = directory / spec.name
    with av.open(str(path), "w", options={**BITEXACT, **spec.options}) as container:
        for key, value in spec.metadata.items():
            container.metadata[key] = value
        video = _add_video(container, spec) if spec.video else None
        tracks = [(_add_audio(container, *track), track) for track in spec.audio]
        if video is not None:
            _encode_video(container, video, spec)
        for stream, (_, rate, layout) in tracks:
            for frame in audio_frames(stream.codec_context, rate, layout, spec.seconds):
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path
