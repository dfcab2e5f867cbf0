"""TSN segment sampling as pure functions: (frames in video, n, mode, rng) -> indices."""

import numpy as np

from fan_edge.errors import FanEdgeError

MODES = ("center", "random")


def segment_indices(
    num_video_frames: int, n: int, *, mode: str = "center", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Pick `n` frame indices from a video of `num_video_frames` frames, one per segment.

    The video is cut into `n` equal segments; "center" takes each segment's middle frame
    (evaluation), "random" a uniformly random frame inside each segment (training). A video
    shorter than `n` frames gives repeated indices, still in temporal order.
    Returns int64 indices of shape (n,), non-decreasing, in [0, num_video_frames).
    """
    if num_video_frames < 1:
        raise FanEdgeError("cannot sample from a video with no frames")
    if n < 1:
        raise FanEdgeError(f"cannot sample {n} frames: need at least 1")
    if mode == "center":
        seg = num_video_frames / n
        pos = (np.arange(n) * seg + seg / 2).astype(np.int64)
    elif mode == "random":
        if rng is None:
            raise ValueError("mode='random' needs an rng")
        # Integer segment bounds, so two segments never yield the same frame when L >= n.
        bounds = np.arange(n + 1) * num_video_frames // n
        lengths = np.maximum(bounds[1:] - bounds[:-1], 1)
        pos = bounds[:-1] + (rng.random(n) * lengths).astype(np.int64)
    else:
        raise ValueError(f"unknown sampling mode {mode!r}: use one of {MODES}")
    return np.minimum(pos, num_video_frames - 1)
