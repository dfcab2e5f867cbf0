"""Spatial preprocessing shared by training, export checks and the runtime (numpy only).

Contract: frames (T, H, W, 3) uint8 RGB -> resize the shorter side to `size` -> center crop
`size` x `size` -> scale to [0, 1] -> (x - mean) / std -> (T, 3, size, size) float32.
"""

import cv2
import numpy as np


def resize_short(frames: np.ndarray, size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    if min(h, w) == size:
        return frames
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
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


def eval_transform(frames: np.ndarray, size: int, mean, std) -> np.ndarray:
    """The inference preprocessing: resize shorter side, center crop, normalise."""
    return normalize(center_crop(resize_short(frames, size), size), mean, std)
