"""Which sub-network serves a given frame count. Torch-free: the runtime uses it too."""

from collections.abc import Sequence

from fan_edge.errors import FanEdgeError

# More frames than any network of the paper takes (SlowFast's fast pathway: 64); a count far
# beyond it is a typo that would otherwise run out of memory in a forward pass.
MAX_FRAMES = 256
# The paper's frame set: what FAN trains, and what export and flops take, unless told.
DEFAULT_FRAMES = (4, 8, 16)


def validate_frame_set(frames: Sequence[int]) -> tuple[int, ...]:
    """Return `frames` as a sorted tuple, or raise if it is empty, repeated or out of range."""
    out = tuple(sorted(int(n) for n in frames))
    if not out:
        raise FanEdgeError("empty frame set: give at least one frame count, e.g. --frames 4 8 16")
    if out[0] < 1 or out[-1] > MAX_FRAMES:
        raise FanEdgeError(f"frame counts must be in 1..{MAX_FRAMES}, got {list(frames)}")
    if len(set(out)) != len(out):
        raise FanEdgeError(f"frame counts must be distinct, got {list(frames)}")
    return out


def select_subnetwork(num_frames: int, frames: Sequence[int]) -> int:
    """Index of the sub-network for an input of `num_frames` frames (paper, section 5.3).

    The nearest trained frame count wins; a tie goes to the higher count (it saw more
    temporal context). With (4, 8, 16): n<=5 -> 4, 6..11 -> 8, n>=12 -> 16.
    `frames` must be sorted ascending, as `validate_frame_set` returns it.
    """
    if num_frames < 1:
        raise FanEdgeError(f"cannot run {num_frames} frames: need at least 1")
    return min(range(len(frames)), key=lambda i: (abs(frames[i] - num_frames), -frames[i]))
