"""Encoded clips made on the spot, for `fan-edge bench`, the benchmarks and the tests.

Each frame carries its own index as a barcode (a row of black and white blocks on top of a
panning texture), so a reader's output can be checked frame by frame after lossy coding.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fan_edge.fileio import atomic_path

BITS = 10  # frame indices up to 1023
# codec -> (PyAV encoder, container suffix, options)
ENCODERS = {
    "h264": ("libx264", ".mp4", {"preset": "veryfast"}),
    "hevc": ("libx265", ".mp4", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", ".mp4", {"preset": "12"}),
    "mpeg4": ("mpeg4", ".avi", {}),
    "mpeg2": ("mpeg2video", ".mpg", {}),
    "mjpeg": ("mjpeg", ".avi", {}),  # every frame a keyframe
    "gif": ("gif", ".gif", {}),
}
PIX_FMT = {"mjpeg": "yuvj420p", "gif": "rgb8"}  # what these encoders take


def bench_codec(name: str) -> str | None:
    """The ENCODERS key (`fan-edge bench --codec`) that makes streams a decoder names `name`
    (None: bench cannot make them)."""
    return next((k for k, (encoder, _, _) in ENCODERS.items() if name in (k, encoder)), None)


def barcode_frame(i: int, width: int, height: int, texture: np.ndarray) -> np.ndarray:
    """(height, width, 3) uint8: the texture panned by i, index i in the top band."""
    img = np.roll(texture, 3 * i, axis=1)[:height, :width].copy()
    band, block = max(height // 4, 8), width // BITS
    for b in range(BITS):
        img[:band, b * block : (b + 1) * block] = 255 if (i >> b) & 1 else 0
    return img


def read_barcode(frame: np.ndarray) -> int:
    """The index `barcode_frame` wrote (the frame may be resized, not rotated)."""
    h, w = frame.shape[:2]
    band, block = max(h // 4, 2), w // BITS
    y = band // 2
    return sum(1 << b for b in range(BITS) if frame[y, b * block + block // 2].mean() > 127)


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), np.uint8)
    img = coarse.repeat(8, 0).repeat(8, 1)[:height, :width]
    return np.clip(img.astype(np.int16) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)


def write_clip(
    path: str | Path, frames: int, width: int, height: int, *, seed: int = 0, **options
) -> Path:
    """A barcoded clip of `frames` frames (see `encode` for the options)."""
    tex = texture(width + 3 * frames, height, seed)
    return encode(
        path,
        (barcode_frame(i, width, height, tex) for i in range(frames)),
        width,
        height,
        **options,
    )


def encode(
    path: str | Path,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    *,
    codec: str = "h264",
    fps: int = 30,
    gop: int = 30,
    bframes: int = 3,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    audio_first: bool = False,
    vfr: bool = False,
    faststart: bool = False,
) -> Path:
    """Encode RGB frames with PyAV (temp file, then rename); returns the path.

    `gop`: frames between keyframes; `rotation`: display rotation metadata (degrees,
    counter-clockwise); `vfr`: irregular frame durations; `audio_first`: a silent audio
    stream before the video stream; `faststart`: mp4 index first (as streamed files have).
    """
    import os

    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise
    encoder, _, codec_options = ENCODERS[codec]
    path = Path(path)
    with atomic_path(path) as tmp:
        fmt = {
            ".mp4": "mp4",
            ".webm": "webm",
            ".avi": "avi",
            ".mkv": "matroska",
            ".mov": "mov",
            ".gif": "gif",
            ".mpg": "mpeg",
        }.get(path.suffix)
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(tmp), "w", format=fmt, options=options) as out:
            audio = out.add_stream("aac", rate=8000) if audio_first else None
            ticks = 4 if vfr else 1  # time base 1 / (fps * ticks)
            video = out.add_stream(encoder, rate=fps * ticks)
            video.width, video.height = width, height
            video.pix_fmt = PIX_FMT.get(codec, pix_fmt)
            opts = dict(codec_options)
            if codec in ("h264", "hevc"):
                key = "x264-params" if codec == "h264" else "x265-params"
                params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
                opts[key] = f"{opts[key]}:{params}" if key in opts else params
            elif codec not in PIX_FMT:
                opts["g"] = str(gop)
            video.options = opts
            if rotation:
                video.set_display_rotation(rotation)
            pts = 0
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), "rgb24")
                frame.pts = pts
                pts += (1 + 3 * (i % 3 == 0)) if vfr else 1  # vfr: durations of 1 and 4 ticks
                out.mux(video.encode(frame))
                if audio is not None and i % 4 == 0:
                    silence = av.AudioFrame.from_ndarray(
                        np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
                    )
                    silence.sample_rate, silence.pts = 8000, (i // 4) * 1024
                    out.mux(audio.encode(silence))
            out.mux(video.encode(None))
            if audio is not None:
                out.mux(audio.encode(None))
    return path
