"""OpenCV decoding: for files PyAV cannot open, and for GStreamer pipelines (Jetson NVDEC).

OpenCV cannot index without decoding, so it counts by decoding (`grab`) and reads in a
second pass, converting only the sampled frames: every frame is decoded twice. A source
that contains ` ! ` is a GStreamer pipeline ending in `appsink`, e.g. on a Jetson:
`filesrc location=clip.mp4 ! qtdemux ! h264parse ! nvv4l2decoder ! nvvidconv !
video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink`
(needs OpenCV built with GStreamer, as JetPack's is; not verified here).
"""

import os
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # before OpenCV opens a file: no FFmpeg log

import cv2  # noqa: E402
import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video.plan import Plan, StreamIndex
from fan_edge.runtime.video.source import VideoSource, resized


def is_pipeline(source: str) -> bool:
    return " ! " in source


class OpenCVSource(VideoSource):
    name = "opencv"

    def _capture(self) -> cv2.VideoCapture:
        if is_pipeline(self.path):
            cap = cv2.VideoCapture(self.path, cv2.CAP_GSTREAMER)
            if not cap.isOpened():
                raise FanEdgeError(
                    "OpenCV cannot open the GStreamer pipeline: it needs OpenCV "
                    "built with GStreamer (JetPack's is) and a pipeline ending in "
                    "appsink"
                )
            return cap
        if not Path(self.path).is_file():
            raise FanEdgeError(f"no such video file: {self.path}")
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise FanEdgeError(
                f"cannot decode {self.path}: not a video OpenCV can read (try an .mp4)"
            )
        return cap

    def _open(self) -> None:
        cap, n = self._capture(), 0
        try:
            while cap.grab():
                n += 1
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        if n == 0:
            raise FanEdgeError(
                f"{self.path} has no decodable frames: is the file empty or truncated?"
            )
        # counted by decoding, so exact; OpenCV has already applied the rotation
        self.index = StreamIndex(n, (0,), w, h, "opencv")

    def _read(
        self, plan: Plan, short_side: int | None, resample: bool
    ) -> tuple[np.ndarray, tuple, int, str]:
        wanted, got, i = set(plan.indices), {}, 0
        cap = self._capture()
        try:
            while len(got) < len(wanted) and cap.grab():
                if i in wanted:
                    ok, frame = cap.retrieve()
                    if not ok:
                        raise FanEdgeError(f"{self.path}: frame {i} could not be decoded")
                    got[i] = resized(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), short_side)
                i += 1
        finally:
            cap.release()
        missing = wanted - got.keys()
        if missing:
            raise FanEdgeError(
                f"{self.path}: only {i} frames decodable, needed frame {max(missing)}"
            )
        return np.stack([got[k] for k in plan.indices]), plan.indices, i, ""
