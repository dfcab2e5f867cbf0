"""What every decoder gives the runtime: an opened video, indexed on open, read by a plan."""

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fan_edge.data.sampling import segment_indices
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video.plan import Plan, StreamIndex, make_plan


@dataclass
class ClipRecord:
    """How a clip was read: the plan, what it cost, and whether the index was trusted."""

    source: str
    decoder: str
    input_frames: int  # frames in the input (sampling is over these)
    indices: list[int]  # the frames returned, as presentation indices
    decoded: int  # frames the decoder produced (or images read)
    planned: int  # frames the plan decodes at most
    seeks: int
    codec: str
    width: int  # as stored, before rotation
    height: int
    rotation: int
    index_ms: float
    decode_ms: float  # decode + convert (+ resize) of the sampled frames
    fallback: str = ""  # why the plan was abandoned for counting by decoding, if it was

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class VideoSource:
    """An opened input. Subclasses set `index` in `_open` and decode in `_read`."""

    name: ClassVar[str]
    path: str
    index: StreamIndex = field(init=False)
    index_ms: float = field(init=False, default=0.0)

    def __post_init__(self):
        t0 = time.perf_counter()
        self._open()
        self.index_ms = (time.perf_counter() - t0) * 1e3
        if self.index.frames < 2:
            self.close()
            raise too_short(self.path, self.index.frames)

    def plan(self, num_frames: int) -> Plan:
        """Segment centres of `num_frames` segments, and the runs that decode them."""
        return make_plan(self.index, segment_indices(self.index.frames, num_frames))

    def read(self, num_frames: int, short_side: int | None = None) -> tuple[np.ndarray, ClipRecord]:
        """The segment-centre frames (T, H, W, 3) uint8 RGB, upright, and how they were read.

        `short_side`: resize so the shorter side has this many pixels while converting.
        """
        return self.read_plan(self.plan(num_frames), short_side, resample=True)

    def read_plan(
        self, plan: Plan, short_side: int | None = None, *, resample: bool = False
    ) -> tuple[np.ndarray, ClipRecord]:
        """The frames of `plan` (from `plan` or `make_plan(source.index, indices)`).

        If the index proves wrong while decoding, the frames are counted by decoding; then
        `resample` takes segment centres of the true count, else the same indices are read
        (an error if the clip turns out shorter).
        """
        t0 = time.perf_counter()
        frames, indices, decoded, fallback = self._read(plan, short_side, resample)
        decode_ms = (time.perf_counter() - t0) * 1e3
        ix = self.index  # after a fallback: the frames counted by decoding
        return frames, ClipRecord(
            self.path,
            self.name,
            ix.frames,
            [int(i) for i in indices],
            decoded,
            plan.decoded,
            plan.seeks,
            ix.codec,
            ix.width,
            ix.height,
            ix.rotation,
            self.index_ms,
            decode_ms,
            fallback,
        )

    def _open(self) -> None:
        raise NotImplementedError

    def _read(
        self, plan: Plan, short_side: int | None, resample: bool
    ) -> tuple[np.ndarray, tuple, int, str]:
        """(frames, their indices, frames decoded, fallback reason or "") (see read_plan)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def too_short(path: str, frames: int) -> FanEdgeError:
    return FanEdgeError(
        f"{path} has only {frames} frame{'s' * (frames != 1)}: a video model "
        "needs motion, give a clip of at least 2 frames"
    )


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate a decoded frame by the stream's display rotation (degrees counter-clockwise)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k)) if k else frame


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side `short_side` (as resize_short rounds it)."""
    if not short_side or min(width, height) == short_side:
        return width, height
    s = short_side / min(width, height)
    return max(short_side, round(width * s)), max(short_side, round(height * s))


def resized(rgb: np.ndarray, short_side: int | None) -> np.ndarray:
    """One frame with its shorter side `short_side` (area when shrinking, as resize_short)."""
    import cv2

    h, w = rgb.shape[:2]
    size = scaled_size(w, h, short_side)
    if size == (w, h):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
