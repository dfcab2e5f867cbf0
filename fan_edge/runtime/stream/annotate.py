"""`--annotate out.mp4`: the stream's video with the current label and sub-network drawn on it.

A thread of its own encodes (H.264, PyAV) what capture hands it through a short queue; when
the queue is full a frame is left out of the video (counted), so encoding never slows capture.
The file is written beside its destination and renamed there when the stream stops, however
it stops, so what is at the path is always a finished, playable video.
"""

import contextlib
import queue
import threading
from pathlib import Path

import numpy as np

from fan_edge.fileio import atomic_path

MAX_SHORT_SIDE = 720  # larger sources are scaled down: the video is for looking, not archiving


class _Discard(Exception):
    pass


class Annotator(threading.Thread):
    def __init__(self, path: str | Path, fps: float | None):
        super().__init__(name="fan-edge-annotate", daemon=True)
        self.path = Path(path)
        self.fps = round(fps) if fps else 30
        self.caption: tuple[str, ...] = ("waiting for the first window",)
        self.written = 0
        self.left_out = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=32)
        self._files = contextlib.ExitStack()
        self._tmp = self._files.enter_context(atomic_path(self.path))

    def offer(self, rgb: np.ndarray, t: float) -> None:
        """Capture's hook: queue a frame, or leave it out if encoding is behind."""
        try:
            self._queue.put_nowait(rgb)
        except queue.Full:
            self.left_out += 1

    def run(self) -> None:
        import av

        try:
            with av.open(str(self._tmp), "w", format="mp4") as out:
                stream = None
                while (rgb := self._queue.get()) is not None:
                    frame = self._draw(rgb)
                    if stream is None:
                        stream = out.add_stream("libx264", rate=self.fps)
                        stream.height, stream.width = frame.shape[:2]
                        stream.pix_fmt = "yuv420p"
                        stream.options = {"preset": "ultrafast"}
                    vf = av.VideoFrame.from_ndarray(frame, "rgb24")
                    vf.pts = self.written
                    out.mux(stream.encode(vf))
                    self.written += 1
                if stream is not None:
                    out.mux(stream.encode(None))
        except BaseException as e:  # reported by close(); capture goes on
            self.error = e
            while self._queue.get() is not None:  # keep draining so offer() never blocks
                pass

    def _draw(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        s = min(1.0, MAX_SHORT_SIDE / min(h, w))
        size = (int(w * s) // 2 * 2, int(h * s) // 2 * 2)  # H.264 wants even sizes
        img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size != (w, h) else rgb
        img = np.ascontiguousarray(img[: size[1], : size[0]])
        scale = max(size[1] / 720, 0.4)
        for i, text in enumerate(self.caption):
            y = int((40 + 36 * i) * scale)
            org = (int(12 * scale), y)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
        return img

    def close(self) -> str:
        """Finish the video and move it into place; returns a problem to report, or ""."""
        if self.is_alive():
            self._queue.put(None)
            self.join()
        if self.error is not None or self.written == 0:
            with contextlib.suppress(_Discard):  # the temporary file is removed, not renamed
                self._files.__exit__(_Discard, _Discard(), None)
            why = f"encoding failed: {self.error}" if self.error else "no frame was captured"
            return f"no annotated video written ({why})"
        self._files.close()
        return ""
