"""A synthetic temporal-action benchmark whose classes need frame order and enough frames.

Each clip shows one asymmetric polygon doing one action during a random sub-interval of
the clip (still before and after), over a noisy background with a distracting dot that
drifts on its own. Classes come in mirrored pairs (left/right, cw/ccw, grow/shrink, fade
in/out, A-then-B vs B-then-A) so a single frame, or frames out of order, cannot tell them
apart. Out-and-back motions (and two-phase ones) start and end in the same pose, so only
frames sampled *during* the short action tell them apart: the more frames, the better.
Every clip is a pure function of (seed, index).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import cv2
import numpy as np


class _Progress(NamedTuple):
    s: float  # 0 -> 1 through the action
    back: float  # 0 -> 1 -> 0 (out and back)
    first: float  # 0 -> 1 in the first half, then 1
    second: float  # 0 in the first half, then 0 -> 1
    amp: float  # travel in pixels
    turn: float  # rotation in radians


# Each action sets some of (dx, dy, rot, scale, alpha); the others stay (0, 0, 0, 1, 1).
# The order of this table is the class order.
_ACTIONS: dict[str, Callable[[_Progress], dict[str, float]]] = {
    "moving left": lambda p: {"dx": -p.amp * p.s},
    "moving right": lambda p: {"dx": p.amp * p.s},
    "moving up": lambda p: {"dy": -p.amp * p.s},
    "moving down": lambda p: {"dy": p.amp * p.s},
    "rotating clockwise": lambda p: {"rot": p.turn * p.s},
    "rotating counter-clockwise": lambda p: {"rot": -p.turn * p.s},
    "growing": lambda p: {"scale": 0.7 + 0.6 * p.s},
    "shrinking": lambda p: {"scale": 1.3 - 0.6 * p.s},
    "fading in": lambda p: {"alpha": 0.3 + 0.7 * p.s},
    "fading out": lambda p: {"alpha": 1.0 - 0.7 * p.s},
    "right and back": lambda p: {"dx": p.amp * p.back},
    "up and back": lambda p: {"dy": -p.amp * p.back},
    "right then up": lambda p: {"dx": p.amp * p.first, "dy": -p.amp * p.second},
    "up then right": lambda p: {"dx": p.amp * p.second, "dy": -p.amp * p.first},
    "left and back": lambda p: {"dx": -p.amp * p.back},
    "down and back": lambda p: {"dy": p.amp * p.back},
    "pulsing": lambda p: {"scale": 1.0 + 0.4 * p.back},
    "blinking": lambda p: {"alpha": 1.0 - 0.7 * p.back},
    "turning and back": lambda p: {"rot": p.turn * p.back},
    "left then down": lambda p: {"dx": -p.amp * p.first, "dy": p.amp * p.second},
    "down then left": lambda p: {"dx": -p.amp * p.second, "dy": p.amp * p.first},
}
CLASSES: tuple[str, ...] = tuple(_ACTIONS)

Pose = tuple[float, float, float, float, float]


def _pose(label: int, s: float, amp: float, turn: float) -> Pose:
    """(dx, dy, rotation, scale, alpha) of the object at progress s in [0, 1] of its action."""
    progress = _Progress(s, 1 - abs(2 * s - 1), min(2 * s, 1.0), max(2 * s - 1, 0.0), amp, turn)
    pose = {"dx": 0.0, "dy": 0.0, "rot": 0.0, "scale": 1.0, "alpha": 1.0}
    pose.update(_ACTIONS[CLASSES[label]](progress))
    return pose["dx"], pose["dy"], pose["rot"], pose["scale"], pose["alpha"]


class SeededClips:
    """What the synthetic sets share: clip `index` is a pure function of (seed, index), and
    its first two draws are its label (among `DRAWN_CLASSES`) and its length.

    A subclass is a frozen dataclass with `num_videos`, `seed`, `min_frames` and `max_frames`.
    """

    SALT: ClassVar[int]  # tells the sets' random streams apart
    DRAWN_CLASSES: ClassVar[int]  # what the first draw picks from (a subclass may relabel)
    num_videos: int
    seed: int
    min_frames: int
    max_frames: int

    def __len__(self) -> int:
        return self.num_videos

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index, self.SALT])

    def label(self, index: int) -> int:
        return int(self._rng(index).integers(self.DRAWN_CLASSES))

    def num_frames(self, index: int) -> int:
        rng = self._rng(index)
        rng.integers(self.DRAWN_CLASSES)
        return int(rng.integers(self.min_frames, self.max_frames + 1))


@dataclass(frozen=True)
class SyntheticActions(SeededClips):
    """`num_videos` clips of `size`x`size` RGB, 24-40 frames each, deterministic from `seed`."""

    num_videos: int
    seed: int = 0
    size: int = 32
    noise: float = 28.0
    min_frames: int = 24
    max_frames: int = 40

    classes = CLASSES
    SALT = 0x5EED
    DRAWN_CLASSES = len(CLASSES)

    def _draw(self, rng: np.random.Generator) -> tuple:
        """The clip's first random draws: label, length, action timing, motion, size, angle."""
        label = int(rng.integers(len(CLASSES)))
        length = int(rng.integers(self.min_frames, self.max_frames + 1))
        s = self.size
        # The action occupies 20-45% of the clip, anywhere in it: few frames may see it.
        dur = rng.uniform(0.2, 0.45) * length
        start = rng.uniform(0, length - dur)
        amp, turn = rng.uniform(0.15, 0.3) * s, rng.uniform(math.pi / 3, 2 * math.pi / 3)
        radius = rng.uniform(0.13, 0.2) * s
        angle0 = rng.uniform(0, 2 * math.pi)
        return label, length, dur, start, amp, turn, radius, angle0

    def render(self, index: int) -> np.ndarray:
        """The whole clip, (L, size, size, 3) uint8 RGB."""
        if not 0 <= index < self.num_videos:
            raise IndexError(index)
        rng = self._rng(index)
        label, length, dur, start, amp, turn, radius, angle0 = self._draw(rng)
        s = self.size
        # An arrow-like polygon: asymmetric, so rotation direction is visible.
        shape = np.array([[1.0, 0.0], [-0.6, 0.7], [-0.2, 0.0], [-0.6, -0.7]]) * radius
        color = rng.uniform(140, 255, 3)
        bg = rng.uniform(0, 90, 3)
        poses = [
            _pose(label, float(np.clip((t - start) / dur, 0, 1)), amp, turn) for t in range(length)
        ]
        xs, ys = [p[0] for p in poses], [p[1] for p in poses]
        margin = 1.5 * radius
        cx = rng.uniform(margin - min(xs), s - margin - max(xs))
        cy = rng.uniform(margin - min(ys), s - margin - max(ys))
        dot = rng.uniform(0, s, 2)
        dot_v = rng.normal(0, 0.6, 2)
        dot_color = rng.uniform(60, 255, 3)

        frames = np.empty((length, s, s, 3), np.uint8)
        for t, (dx, dy, rot, scale, alpha) in enumerate(poses):
            a = angle0 + rot
            r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pts = (shape * scale) @ r.T + (cx + dx, cy + dy)
            mask = np.zeros((s, s), np.uint8)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            cover = (mask[..., None] / 255.0) * alpha
            img = bg * (1 - cover) + color * cover
            d = (dot + dot_v * t) % s
            cv2.circle(img, (int(d[0] * 16), int(d[1] * 16)), 2 * 16, dot_color, -1, cv2.LINE_AA, 4)
            img += rng.normal(0, self.noise, img.shape)
            frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        return frames

    def read(self, index: int, indices: np.ndarray) -> np.ndarray:
        return self.render(index)[indices]


POSE_BINS = 8


@dataclass(frozen=True)
class SyntheticPoses(SyntheticActions):
    """The same clips labelled by where the arrow points before its action (8 directions).

    A spatial task that one frame answers (for most clips): the pretraining stand-in for
    ImageNet, teaching a network to find the object without teaching it any motion.
    """

    classes = tuple(f"pointing {i * 360 // POSE_BINS} degrees" for i in range(POSE_BINS))

    def label(self, index: int) -> int:
        angle0 = self._draw(self._rng(index))[-1]
        return int(angle0 / (2 * math.pi) * POSE_BINS) % POSE_BINS
