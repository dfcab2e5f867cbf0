"""Decode plans: which frames to decode to get the sampled ones, from a demux-only index.

A frame can only be decoded starting from a keyframe at or before it. For each sampled frame
(in presentation order) the plan either goes on decoding from where it is, or seeks to the
keyframe before that frame: it seeks exactly when that keyframe lies after the current
position, which decodes the fewest frames (going on would decode the same frames and more).
Pure functions over numbers; nothing here touches a file.
"""

import os
from dataclasses import dataclass

import numpy as np

# A plan's runs are split into this many groups, each decoded by its own decoder in a thread.
DECODE_THREADS = min(
    2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)


@dataclass(frozen=True)
class StreamIndex:
    """What demuxing tells about a video stream, in presentation order."""

    frames: int  # frames in the stream (one per packet)
    keyframes: tuple[int, ...]  # presentation indices where decoding can start (0 included)
    width: int = 0
    height: int = 0
    codec: str = ""
    rotation: int = 0  # degrees counter-clockwise to make the frame upright
    sizes: tuple[int, ...] = ()  # bytes of each frame's packet, when known (decode cost)
    trusted: bool = True  # False: decode everything to count (see `untrusted_why`)
    untrusted_why: str = ""

    def keyframe_before(self, i: int) -> int:
        """The last position at or before frame `i` where decoding can start."""
        k = np.searchsorted(self.keyframes, i, side="right") - 1
        return int(self.keyframes[max(int(k), 0)])


@dataclass(frozen=True)
class Plan:
    """Decode runs: each starts at a keyframe (one seek) and ends at a sampled frame."""

    indices: tuple[int, ...]  # the sampled frames, as asked (order and repeats kept)
    runs: tuple[tuple[int, int], ...]  # (first, last) presentation index decoded per run

    @property
    def decoded(self) -> int:
        """Frames the plan decodes (an upper bound: non-reference frames may be skipped)."""
        return frames_in(self.runs)

    @property
    def seeks(self) -> int:
        return len(self.runs)

    def split(self, parts: int) -> list[tuple[tuple[int, int], ...]]:
        """The runs in at most `parts` contiguous groups of about equal frames to decode."""
        groups: list[list[tuple[int, int]]] = [[]]
        target, done = self.decoded / max(parts, 1), 0
        for run in self.runs:
            if groups[-1] and done >= target * len(groups) and len(groups) < parts:
                groups.append([])
            groups[-1].append(run)
            done += frames_in([run])
        return [tuple(g) for g in groups]


def frames_in(runs) -> int:
    """Frames that decoding these (first, last) runs goes through."""
    return sum(last - first + 1 for first, last in runs)


def make_plan(index: StreamIndex, indices) -> Plan:
    """The plan that decodes the fewest frames yielding `indices` (presentation order)."""
    runs: list[list[int]] = []
    for t in sorted({int(i) for i in indices}):
        if not 0 <= t < index.frames:
            raise ValueError(f"frame {t} is outside the stream's {index.frames} frames")
        k = index.keyframe_before(t)
        if runs and k <= runs[-1][1] + 1:  # the keyframe is not ahead of us: decode on
            runs[-1][1] = t
        else:
            runs.append([k, t])
    return Plan(tuple(int(i) for i in indices), tuple((a, b) for a, b in runs))
