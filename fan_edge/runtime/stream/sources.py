"""Live inputs: what `fan-edge stream` reads frames from, one frame after another.

`open_live(source)` opens a camera (`/dev/video0`, or its index `0`), a network stream
(rtsp://, rtmp://, http(s)://, udp://, tcp://, srt://), a GStreamer pipeline (`... ! ...`) or
a file, and fails within `timeout` seconds with one line naming the problem. Files and URLs
are read with PyAV (FFmpeg); cameras and pipelines with OpenCV (the PyAV wheels' FFmpeg has
no V4L2 device, OpenCV's has). Frames come out upright RGB at full size, with their time in
seconds since the first frame.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video.source import upright

URL = re.compile(r"^(rtsp|rtsps|rtmp|rtmps|http|https|udp|tcp|srt|rtp)://", re.IGNORECASE)
CAMERA = re.compile(r"^(/dev/video\d+|\d+)$")


class SourceStalled(Exception):
    """No frame arrived within the read timeout."""


class SourceDropped(Exception):
    """The source failed mid-stream (a network error, a camera unplugged)."""


@dataclass
class LiveSource:
    """An opened input. `kind`: file, url, camera or pipeline; `fps`: the nominal frame rate
    (None when the source does not say)."""

    name: str
    kind: str
    fps: float | None
    width: int
    height: int

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """(frame (H, W, 3) uint8 RGB upright, seconds since the first frame), in order; ends
        at the end of a file. Raises SourceStalled or SourceDropped."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def source_kind(source: str) -> str:
    if URL.match(source):
        return "url"
    if CAMERA.match(source):
        return "camera"
    if " ! " in source:
        return "pipeline"
    return "file"


def open_live(source: str, timeout: float = 5.0) -> LiveSource:
    kind = source_kind(source)
    if kind in ("camera", "pipeline"):
        return OpenCVLive.open(source, kind)
    return PyAVLive.open(source, kind, timeout)


class PyAVLive(LiveSource):
    @classmethod
    def open(cls, source: str, kind: str, timeout: float) -> "PyAVLive":
        import av

        if kind == "file" and not Path(source).is_file():
            raise FanEdgeError(
                f"no such video file: {source} (a camera is /dev/videoN or its index, "
                "a stream a URL such as rtsp://host/path)"
            )
        options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp") else {}
        try:
            container = av.open(source, timeout=(timeout, timeout), options=options)
        except (av.error.ExitError, av.error.TimeoutError):
            raise FanEdgeError(
                f"no answer from {source} within {timeout:g} s: check the address, or raise "
                "--timeout"
            ) from None
        except ConnectionRefusedError:
            raise FanEdgeError(
                f"cannot connect to {source}: connection refused (is the server running, "
                "the port right?)"
            ) from None
        except (av.error.FFmpegError, OSError) as e:
            msg = getattr(e, "strerror", None) or type(e).__name__
            raise FanEdgeError(f"cannot open {source}: {msg}") from None
        if not container.streams.video:
            container.close()
            raise FanEdgeError(f"cannot read {source}: it has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise FanEdgeError(f"cannot decode {source}: this FFmpeg has no decoder for it")
        stream.thread_type = "AUTO"  # sequential decoding: frame threads pay off here
        rate = stream.average_rate or stream.guessed_rate
        live = cls(source, kind, float(rate) if rate else None, stream.width, stream.height)
        live._container, live._stream = container, stream
        return live

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        import av

        first, n = None, 0
        try:
            for frame in self._container.decode(self._stream):
                t = frame.time
                if t is None:  # no timestamps: count at the nominal rate
                    t = n / (self.fps or 30.0)
                first = t if first is None else first
                n += 1
                rgb = frame.to_ndarray(format="rgb24")
                yield upright(rgb, int(frame.rotation)), t - first
        except (av.error.ExitError, av.error.TimeoutError):  # the read timeout
            raise SourceStalled(f"no frame from {self.name} within the timeout") from None
        except (av.error.FFmpegError, OSError) as e:
            if self.kind == "file":
                return  # a damaged tail: the frames before it are the video
            msg = getattr(e, "strerror", None) or type(e).__name__
            raise SourceDropped(f"{self.name} dropped: {msg}") from None

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None


def _quiet(cv2) -> None:
    """OpenCV logs errors only: a camera that will not open is our one line, not its
    warnings (the call moved between OpenCV 4 and 5)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, "setLogLevel"):
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # LOG_LEVEL_ERROR


class OpenCVLive(LiveSource):
    @classmethod
    def open(cls, source: str, kind: str) -> "OpenCVLive":
        import cv2

        _quiet(cv2)
        if kind == "camera":
            device = source if source.startswith("/dev/") else f"/dev/video{source}"
            if not Path(device).exists():
                raise FanEdgeError(
                    f"no camera at {device}: list cameras with `ls /dev/video*` (or "
                    "`v4l2-ctl --list-devices`) and pass one"
                )
            cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
            what = f"camera {device}"
        else:
            cap = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
            what = "GStreamer pipeline"
        if not cap.isOpened():
            cap.release()
            hint = (
                "is another program using it? do you have permission (group video)?"
                if kind == "camera"
                else "this OpenCV needs GStreamer support (JetPack's has it)"
            )
            raise FanEdgeError(f"cannot open {what}: {hint}")
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        live = cls(source, kind, fps, width, height)
        live._cap = cap
        return live

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        import cv2

        start = time.perf_counter()
        while self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok:
                raise SourceDropped(f"{self.name} stopped giving frames")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter() - start

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
            self._cap = None
