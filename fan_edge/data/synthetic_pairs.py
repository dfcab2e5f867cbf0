"""A second synthetic temporal task: how two objects interact, over long clips.

Built to check that a training recipe is not tuned to the main benchmark (`synthetic.py`):
other classes (interactions of two discs, told apart by colour: A warm, B cool), longer
clips (48-72 frames), an interaction that spans most of the clip rather than a short burst,
a textured background and a slowly panning camera instead of a distracting dot. Classes come
in pairs that only the order of frames separates (A hits B / B hits A, A moves first / B
moves first, clockwise / counter-clockwise, ...), and the axis between the discs is drawn at
random, so no single frame and no absolute direction tells a class.
Every clip is a pure function of (seed, index).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from fan_edge.data.synthetic import SeededClips

Vec = tuple[float, float]  # along the A->B axis, across it (in units of the half distance)


def _ramp(s: float, a: float, b: float) -> float:
    """0 before a, 1 after b, linear between."""
    return min(max((s - a) / (b - a), 0.0), 1.0)


def _orbit(sign: float) -> Callable[[float], tuple[Vec, Vec]]:
    def f(s: float) -> tuple[Vec, Vec]:
        a = sign * 0.75 * math.pi * s
        return (-math.cos(a), -math.sin(a)), (math.cos(a), math.sin(a))

    return f


def _circle(sign: float, mover: int) -> Callable[[float], tuple[Vec, Vec]]:
    def f(s: float) -> tuple[Vec, Vec]:
        a = sign * 1.2 * math.pi * s
        still = (1.0, 0.0) if mover == 0 else (-1.0, 0.0)
        r = 1.6  # the mover circles the still disc at this distance
        side = -1.0 if mover == 0 else 1.0
        moving = (still[0] + side * r * math.cos(a), side * r * math.sin(a))
        return (moving, still) if mover == 0 else (still, moving)

    return f


# Each class: s in [0, 1] -> positions of A and B (axis units); A starts at (-1, 0), B at (1, 0)
# unless the class says otherwise. The order of this table is the class order.
_INTERACTIONS: dict[str, Callable[[float], tuple[Vec, Vec]]] = {
    "A hits B": lambda s: ((-1 + 1.5 * _ramp(s, 0, 0.5), 0), (1 + 1.2 * _ramp(s, 0.5, 1), 0)),
    "B hits A": lambda s: ((-1 - 1.2 * _ramp(s, 0.5, 1), 0), (1 - 1.5 * _ramp(s, 0, 0.5), 0)),
    "A chases B": lambda s: ((-1 + 1.4 * s, 0), (1 + 1.4 * s, 0)),
    "B chases A": lambda s: ((-1 - 1.4 * s, 0), (1 - 1.4 * s, 0)),
    "orbiting clockwise": _orbit(1.0),
    "orbiting counter-clockwise": _orbit(-1.0),
    "approaching": lambda s: ((-1 + 0.7 * s, 0), (1 - 0.7 * s, 0)),
    "separating": lambda s: ((-0.3 - 0.7 * s, 0), (0.3 + 0.7 * s, 0)),
    "A moves first": lambda s: ((-1, 1.2 * _ramp(s, 0, 0.5)), (1, 1.2 * _ramp(s, 0.5, 1))),
    "B moves first": lambda s: ((-1, 1.2 * _ramp(s, 0.5, 1)), (1, 1.2 * _ramp(s, 0, 0.5))),
    "A circles B": _circle(1.0, mover=0),
    "B circles A": _circle(1.0, mover=1),
}
CLASSES: tuple[str, ...] = tuple(_INTERACTIONS)


@dataclass(frozen=True)
class SyntheticPairs(SeededClips):
    """`num_videos` clips of `size`x`size` RGB, 48-72 frames each, deterministic from `seed`."""

    num_videos: int
    seed: int = 0
    size: int = 32
    noise: float = 20.0
    min_frames: int = 48
    max_frames: int = 72

    classes = CLASSES
    SALT = 0xA1B2
    DRAWN_CLASSES = len(CLASSES)

    def render(self, index: int) -> np.ndarray:
        """The whole clip, (L, size, size, 3) uint8 RGB."""
        if not 0 <= index < self.num_videos:
            raise IndexError(index)
        rng = self._rng(index)
        label = int(rng.integers(len(CLASSES)))
        length = int(rng.integers(self.min_frames, self.max_frames + 1))
        s = self.size
        # The interaction spans 60-90% of the clip.
        dur = rng.uniform(0.6, 0.9) * length
        start = rng.uniform(0, length - dur)
        half = rng.uniform(0.16, 0.22) * s  # half the A-B distance
        theta = rng.uniform(0, 2 * math.pi)
        axis = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        radius = rng.uniform(0.08, 0.11) * s
        color_a = np.array([rng.uniform(200, 255), rng.uniform(60, 160), rng.uniform(0, 60)])
        color_b = np.array([rng.uniform(0, 60), rng.uniform(60, 200), rng.uniform(200, 255)])
        # a smooth texture twice the frame, panned slowly by the camera
        texture = cv2.resize(
            rng.uniform(20, 110, (5, 5, 3)), (2 * s, 2 * s), interpolation=cv2.INTER_CUBIC
        )
        pan0 = rng.uniform(s / 4, 3 * s / 4, 2)
        pan_v = rng.uniform(-1, 1, 2) * (s / 4) / length
        move = _INTERACTIONS[CLASSES[label]]
        paths = np.array([move(float(np.clip((t - start) / dur, 0, 1))) for t in range(length)])
        pts = paths * half @ axis.T  # (L, 2 discs, 2), pixels around the centre
        lo, hi = pts.min(axis=(0, 1)), pts.max(axis=(0, 1))
        margin = radius + 1
        centre = rng.uniform(margin - lo, np.maximum(s - margin - hi, margin - lo + 1e-3))

        frames = np.empty((length, s, s, 3), np.uint8)
        for t in range(length):
            ox, oy = (pan0 + pan_v * t).astype(int)
            img = texture[oy : oy + s, ox : ox + s].copy()
            for (x, y), color in zip(pts[t] + centre, (color_a, color_b), strict=True):
                cv2.circle(
                    img, (int(x * 16), int(y * 16)), int(radius * 16), color, -1, cv2.LINE_AA, 4
                )
            img += rng.normal(0, self.noise, img.shape)
            frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        return frames

    def read(self, index: int, indices: np.ndarray) -> np.ndarray:
        return self.render(index)[indices]
