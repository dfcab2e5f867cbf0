"""Reading clips for a graph: index by demuxing, plan the fewest frames, decode only those.

`read_clip(source, num_frames)` returns the sampled frames ((T, H, W, 3) uint8 RGB, upright)
and a `ClipRecord` of how they were read. `open_video` opens and indexes without decoding,
so a budget can price each sub-network's plan before anything is decoded.

Decoders (one file each): `pyav` (default; FFmpeg, AV1 included), `opencv` (files PyAV
cannot open, GStreamer pipelines); folders of frames are read by `folder`.
"""

import importlib
from pathlib import Path

import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video.plan import Plan, StreamIndex, make_plan
from fan_edge.runtime.video.source import ClipRecord, VideoSource

# name -> "module:class"; modules load on first use
DECODERS = {
    "pyav": "fan_edge.runtime.video.pyav:PyAVSource",
    "opencv": "fan_edge.runtime.video.opencv:OpenCVSource",
    "folder": "fan_edge.runtime.video.folder:FolderSource",
}
CHOICES = ("auto", "pyav", "opencv")


def decoder_class(name: str) -> type[VideoSource]:
    if name not in DECODERS:
        raise FanEdgeError(f"unknown decoder {name!r}: use one of {', '.join(CHOICES)}")
    module, cls = DECODERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_video(source: str | Path, decoder: str = "auto") -> VideoSource:
    """Open and index `source` (a file, a folder of frames or a GStreamer pipeline).

    "auto": frame folders by `folder`, pipelines by `opencv`, files by `pyav`, falling back
    to `opencv` for a file FFmpeg cannot open (the error names both attempts).
    """
    text = str(source)
    if decoder == "auto":
        from fan_edge.runtime.video.opencv import is_pipeline

        if is_pipeline(text):
            return decoder_class("opencv")(text)
        if Path(text).is_dir():
            return decoder_class("folder")(text)
        try:
            return decoder_class("pyav")(text)
        except FanEdgeError as first:
            if not str(first).startswith("cannot decode"):
                raise
            try:
                return decoder_class("opencv")(text)
            except FanEdgeError:
                raise first from None
    return decoder_class(decoder)(text)


def read_clip(
    source: str | Path, num_frames: int, *, decoder: str = "auto", short_side: int | None = None
) -> tuple[np.ndarray, ClipRecord]:
    """The `num_frames` segment-centre frames of `source` and how they were read."""
    with open_video(source, decoder) as video:
        return video.read(num_frames, short_side)


__all__ = [
    "ClipRecord",
    "Plan",
    "StreamIndex",
    "VideoSource",
    "make_plan",
    "open_video",
    "read_clip",
]
