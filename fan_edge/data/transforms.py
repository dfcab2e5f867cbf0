"""Spatial preprocessing shared by training, export checks and the runtime (numpy only).

Contract: frames (T, H, W, 3) uint8 RGB -> resize the shorter side to `resize` (default
`size`) -> center crop `size` x `size` -> scale to [0, 1] -> (x - mean) / std ->
(T, 3, size, size) float32. Interpolation "area" (OpenCV's area filter when shrinking,
bilinear when enlarging: fan-edge's own models) or "bilinear" (always bilinear: the
reference implementations' evaluation, for imported models).
"""

import cv2
import numpy as np

INTERPOLATIONS = ("area", "bilinear")


def resize_short(frames: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    h, w = frames.shape[1:3]
    if min(h, w) == size:
        return frames
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}: use one of {INTERPOLATIONS}")
    interp = cv2.INTER_AREA if scale < 1 and interpolation == "area" else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (nw, nh), interpolation=interp) for f in frames])


def crop(frames: np.ndarray, size: int, top: int, left: int) -> np.ndarray:
    return frames[:, top : top + size, left : left + size]


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    return crop(frames, size, (h - size) // 2, (w - size) // 2)


def normalize(frames: np.ndarray, mean, std) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32, normalised per channel."""
    x = frames.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def eval_transform(
    frames: np.ndarray,
    size: int,
    mean,
    std,
    resize: int | None = None,
    interpolation: str = "area",
) -> np.ndarray:
    """The inference preprocessing: resize shorter side (to `resize`, default `size`), center
    crop `size`, normalise."""
    short = resize or size
    return normalize(center_crop(resize_short(frames, short, interpolation), size), mean, std)
