"""Small real media files for the extractor tests, made with PyAV alone.

No system ffmpeg, no numpy, no Pillow: frames are filled through their planes with plain
bytes. Every file is tiny (the whole corpus is a few hundred kilobytes) and quick to make.
`make_corpus` writes the good files and says what a correct summary must report for each;
`make_bad_files` writes damaged and non-media files and says how each must be classified.
The expectations were checked against MediaInfo 24.12, not guessed.
"""

from __future__ import annotations

import array
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

WIDTH, HEIGHT = 320, 240
FPS = 25
DURATION_S = 2.0
IMAGE_WIDTH, IMAGE_HEIGHT = 64, 48


@dataclass(frozen=True)
class Expected:
    """What a correct summary says about one file (None: the key must be None)."""

    container: str
    duration_s: float | None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_channels: int | None = None
    sample_rate: int | None = None
    video_tracks: int = 0
    audio_tracks: int = 0
    text_tracks: int = 0
    image_tracks: int = 0
    languages: tuple[str, ...] = ()


# --- frames -----------------------------------------------------------------------------


def video_frame(index: int, width: int, height: int, pix_fmt: str = "yuv420p") -> av.VideoFrame:
    """A moving gradient, so encoders have something real (but cheap) to code."""
    frame = av.VideoFrame(width, height, pix_fmt)
    for number, plane in enumerate(frame.planes):
        row_bytes = plane.line_size
        rows = plane.buffer_size // row_bytes
        base = (index * 7 + number * 60) % 256
        line = bytes((base + x) % 256 for x in range(row_bytes))
        plane.update(b"".join(line[y % 32 :] + line[: y % 32] for y in range(rows)))
    frame.pts = index
    frame.time_base = Fraction(1, FPS)
    return frame


def _rgb_frame(width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    rows = plane.buffer_size // plane.line_size
    data = bytearray()
    for y in range(rows):
        line = bytearray(plane.line_size)
        for x in range(width):
            line[3 * x : 3 * x + 3] = bytes(((x * 4) % 256, (y * 5) % 256, 128))
        data += line
    plane.update(bytes(data))
    return frame


def audio_frames(
    codec: av.AudioCodecContext, rate: int, layout: str, seconds: float
) -> list[av.AudioFrame]:
    """A 440 Hz tone in the encoder's own sample format, cut to its frame size."""
    fmt = codec.format.name
    planar = codec.format.is_planar
    channels = 2 if layout == "stereo" else 1
    samples_per_frame = codec.frame_size or 1024
    total = int(rate * seconds)
    frames: list[av.AudioFrame] = []
    pts = 0
    while pts < total:
        count = min(samples_per_frame, total - pts)
        if codec.frame_size and count < codec.frame_size:
            count = codec.frame_size  # fixed-size encoders want whole frames: pad
        frame = av.AudioFrame(format=fmt, layout=layout, samples=count)
        values = [0.3 * math.sin(2 * math.pi * 440 * (pts + i) / rate) for i in range(count)]
        if fmt.startswith("flt"):
            mono = array.array("f", values)
        elif fmt.startswith("s16"):
            mono = array.array("h", (int(v * 32767) for v in values))
        elif fmt.startswith("s32"):
            mono = array.array("i", (int(v * 2147483647) for v in values))
        else:
            raise ValueError(f"unhandled sample format {fmt}")
        if planar:
            payloads = [mono.tobytes()] * channels
        else:
            interleaved = array.array(mono.typecode)
            for value in mono:
                interleaved.extend([value] * channels)
            payloads = [interleaved.tobytes()]
        for plane, payload in zip(frame.planes, payloads, strict=True):
            plane.update(payload.ljust(plane.buffer_size, b"\0"))
        frame.pts = pts
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frames.append(frame)
        pts += count
    return frames


# --- writers ----------------------------------------------------------------------------


def _add_video(container: av.container.OutputContainer, codec: str) -> av.VideoStream:
    stream = container.add_stream(codec, rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    if codec == "libx264":
        stream.options = {"preset": "ultrafast", "crf": "35"}
    elif codec == "libvpx-vp9":
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "50", "b": "0"}
    return stream


def _add_audio(
    container: av.container.OutputContainer, codec: str, rate: int, layout: str
) -> av.AudioStream:
    stream = container.add_stream(codec, rate=rate)
    stream.layout = layout
    if codec == "libopus":
        stream.bit_rate = 32000
    elif codec in ("aac", "libmp3lame"):
        stream.bit_rate = 64000
    return stream


def _encode_video(container: av.container.OutputContainer, stream: av.VideoStream) -> None:
    for index in range(int(DURATION_S * FPS)):
        container.mux(stream.encode(video_frame(index, WIDTH, HEIGHT)))
    container.mux(stream.encode(None))


def _encode_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, rate: int, layout: str
) -> None:
    for frame in audio_frames(stream.codec_context, rate, layout, DURATION_S):
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _srt_text(cues: list[str]) -> str:
    step = int(DURATION_S * 1000) // len(cues)

    def stamp(ms: int) -> str:
        return f"00:00:{ms // 1000:02d},{ms % 1000:03d}"

    return "".join(
        f"{n + 1}\n{stamp(n * step)} --> {stamp((n + 1) * step)}\n{cue}\n\n"
        for n, cue in enumerate(cues)
    )


def _write_av(
    path: Path,
    video_codec: str | None,
    audio: list[tuple[str, int, str, str | None]],
    subtitles: tuple[str, list[str]] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """One container: optional video, audio tracks (codec, rate, layout, language), subs.

    Subtitles (language, cues) are remuxed from a SubRip file PyAV demuxes itself: the
    subrip encoder cannot be opened from PyAV, but stream copy needs no encoder.
    """
    srt_path = path.with_name(path.name + ".srt")
    subtitle_input = None
    if subtitles:
        srt_path.write_text(_srt_text(subtitles[1]), encoding="utf-8")
        subtitle_input = av.open(str(srt_path))
    try:
        with av.open(str(path), "w", options=options or {}) as container:
            video = _add_video(container, video_codec) if video_codec else None
            audio_streams = []
            for codec, rate, layout, language in audio:
                stream = _add_audio(container, codec, rate, layout)
                if language:
                    stream.metadata["language"] = language
                audio_streams.append((stream, rate, layout))
            subtitle_stream = None
            if subtitle_input is not None and subtitles:
                source = subtitle_input.streams[0]
                subtitle_stream = container.add_stream_from_template(source)
                subtitle_stream.metadata["language"] = subtitles[0]
            if video is not None:
                _encode_video(container, video)
            for stream, rate, layout in audio_streams:
                _encode_audio(container, stream, rate, layout)
            if subtitle_input is not None and subtitle_stream is not None:
                for packet in subtitle_input.demux(subtitle_input.streams[0]):
                    if packet.dts is None:
                        continue  # the demuxer's end-of-stream marker
                    packet.stream = subtitle_stream
                    container.mux(packet)
    finally:
        if subtitle_input is not None:
            subtitle_input.close()
            srt_path.unlink()


def _write_image(path: Path, codec: str) -> None:
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height = IMAGE_WIDTH, IMAGE_HEIGHT
        if codec == "mjpeg":
            stream.pix_fmt = "yuvj420p"
            frame = video_frame(0, IMAGE_WIDTH, IMAGE_HEIGHT, "yuvj420p")
        else:
            stream.pix_fmt = "rgb24"
            frame = _rgb_frame(IMAGE_WIDTH, IMAGE_HEIGHT)
        frame.pts = 0
        frame.time_base = Fraction(1, 1)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# --- the corpus -------------------------------------------------------------------------


def make_corpus(directory: Path) -> dict[str, Expected]:
    """Write the good files into `directory`; map each file name to what it must report.

    Codec and container names are MediaInfo's (24.12): AAC is "AAC" (the LC profile is a
    separate field), MP3 is "MPEG Audio", PCM WAV is "Wave"/"PCM", SubRip in Matroska is a
    "UTF-8" text track. Languages come back as ISO 639-1 codes ("eng" is written, "en" read).
    """
    directory.mkdir(parents=True, exist_ok=True)
    _write_av(directory / "h264_aac.mp4", "libx264", [("aac", 48000, "stereo", None)])
    _write_av(
        directory / "h264_two_audio_subs.mkv",
        "libx264",
        [("aac", 48000, "stereo", "eng"), ("libopus", 48000, "mono", "fra")],
        subtitles=("eng", ["Hello", "World"]),
    )
    _write_av(directory / "vp9_opus.webm", "libvpx-vp9", [("libopus", 48000, "stereo", None)])
    _write_av(directory / "tone.mp3", None, [("libmp3lame", 44100, "mono", None)])
    _write_av(directory / "tone.flac", None, [("flac", 44100, "stereo", None)])
    _write_av(directory / "tone.wav", None, [("pcm_s16le", 44100, "stereo", None)])
    _write_image(directory / "picture.jpg", "mjpeg")
    _write_image(directory / "picture.png", "png")

    return {
        "h264_aac.mp4": Expected(
            "MPEG-4",
            DURATION_S,
            width=WIDTH,
            height=HEIGHT,
            video_tracks=1,
            video_codec="AVC",
            audio_codec="AAC",
            audio_channels=2,
            sample_rate=48000,
            audio_tracks=1,
        ),
        "h264_two_audio_subs.mkv": Expected(
            "Matroska",
            DURATION_S,
            width=WIDTH,
            height=HEIGHT,
            video_tracks=1,
            video_codec="AVC",
            audio_codec="AAC",
            audio_channels=2,
            sample_rate=48000,
            audio_tracks=2,
            text_tracks=1,
            languages=("en", "fr"),
        ),
        "vp9_opus.webm": Expected(
            "WebM",
            DURATION_S,
            width=WIDTH,
            height=HEIGHT,
            video_tracks=1,
            video_codec="VP9",
            audio_codec="Opus",
            audio_channels=2,
            sample_rate=48000,
            audio_tracks=1,
        ),
        "tone.mp3": Expected(
            "MPEG Audio",
            DURATION_S,
            audio_codec="MPEG Audio",
            audio_channels=1,
            sample_rate=44100,
            audio_tracks=1,
        ),
        "tone.flac": Expected(
            "FLAC",
            DURATION_S,
            audio_codec="FLAC",
            audio_channels=2,
            sample_rate=44100,
            audio_tracks=1,
        ),
        "tone.wav": Expected(
            "Wave",
            DURATION_S,
            audio_codec="PCM",
            audio_channels=2,
            sample_rate=44100,
            audio_tracks=1,
        ),
        "picture.jpg": Expected(
            "JPEG", None, width=IMAGE_WIDTH, height=IMAGE_HEIGHT, image_tracks=1
        ),
        "picture.png": Expected(
            "PNG", None, width=IMAGE_WIDTH, height=IMAGE_HEIGHT, image_tracks=1
        ),
    }


# --- the bad files ----------------------------------------------------------------------


def _truncated_copy(source: Path, target: Path, fraction: float) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])


def make_bad_files(directory: Path) -> dict[str, str]:
    """Write damaged and non-media files; map each name to its FailureClass value, or "done".

    "done" marks files MediaInfo still reads honestly (a truncated stream whose header
    survives is recognised, and its summary says `truncated`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    good = directory / "_good"
    good.mkdir(exist_ok=True)
    _write_av(good / "a.mp4", "libx264", [("aac", 48000, "stereo", None)])
    faststart = {"movflags": "+faststart"}
    _write_av(good / "b.mp4", "libx264", [("aac", 48000, "stereo", None)], options=faststart)
    _write_av(good / "a.mkv", "libx264", [("aac", 48000, "stereo", "eng")])
    _write_av(good / "a.mp3", None, [("libmp3lame", 44100, "mono", None)])
    (directory / "empty.mp4").write_bytes(b"")
    (directory / "random.mkv").write_bytes(random.Random(1234).randbytes(64 * 1024))
    (directory / "text.mp4").write_text("This is not a video.\n" * 200, encoding="utf-8")
    _truncated_copy(good / "a.mp4", directory / "truncated.mp4", 1 / 3)
    _truncated_copy(good / "b.mp4", directory / "truncated_faststart.mp4", 1 / 3)
    _truncated_copy(good / "a.mkv", directory / "truncated.mkv", 1 / 3)
    _truncated_copy(good / "a.mp3", directory / "truncated.mp3", 1 / 3)
    for path in good.iterdir():
        path.unlink()
    good.rmdir()
    return {
        "empty.mp4": "unsupported",  # refused before MediaInfo: 0 bytes
        "random.mkv": "unsupported",  # MediaInfo names no format
        "text.mp4": "unsupported",  # the extension does not matter
        # moov (the index) is written last, so the first third is an MPEG-4 without streams
        "truncated.mp4": "corrupt",
        # with the index first, MediaInfo reads the streams and says IsTruncated
        "truncated_faststart.mp4": "done",
        "truncated.mkv": "done",  # the header survives; IsTruncated
        "truncated.mp3": "done",  # the first frames and the LAME header survive; IsTruncated
    }
