"""Reading the frames of one input (a video file or a folder of frames) for a graph."""

import time
from pathlib import Path

import numpy as np

from fan_edge.data.sampling import segment_indices
from fan_edge.data.video import count_frames, list_frame_files, read_image_frames, read_video_frames
from fan_edge.errors import FanEdgeError


def read_input(path: str | Path, num_frames: int) -> tuple[np.ndarray, int, float]:
    """Sample `num_frames` frames (segment centres) from `path`.

    Returns (frames (T, H, W, 3) uint8 RGB, frames in the input, decode milliseconds).
    Frames are counted by decoding; the container's header is not trusted.
    """
    path = Path(path)
    t0 = time.perf_counter()
    if path.is_dir():
        files = list_frame_files(path)
        total = len(files)
        read = lambda idx: read_image_frames(files, idx)  # noqa: E731
    else:
        total = count_frames(path)
        read = lambda idx: read_video_frames(path, idx)  # noqa: E731
    if total < 2:
        raise FanEdgeError(f"{path} has only {total} frame: a video model needs motion, "
                           "give a clip of at least 2 frames")  # fmt: skip
    frames = read(segment_indices(total, num_frames, mode="center"))
    return frames, total, (time.perf_counter() - t0) * 1e3
