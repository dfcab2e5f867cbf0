"""The router's rule, pure (no server): which sub-network answers a clip of any frame count.

A budget (`20gflops`, `8frames`, `15ms`: the network's latency on the server, from its
profile) picks as `fan-edge run` picks; without one, the sub-network nearest the clip's frame
count. A clip of another length is sampled to that sub-network's count by the bundle's rule
(segment centres), so a client may send every frame it has.
"""

import numpy as np

from fan_edge.bundle import Subnetwork
from fan_edge.data.sampling import segment_indices
from fan_edge.errors import FanEdgeError


def route(predictor, clip: np.ndarray, budget: str | None) -> tuple[Subnetwork, np.ndarray, str]:
    """(sub-network, the clip as it takes it (T, 3, S, S), why)."""
    size = predictor.bundle.input["size"]
    if clip.ndim != 4 or clip.shape[1:] != (3, size, size) or clip.shape[0] < 1:
        raise FanEdgeError(
            f"clip has shape {tuple(clip.shape)}: send (T, 3, {size}, {size}) float32, "
            "preprocessed as the bundle's manifest says"
        )
    if budget:
        choice = predictor.choose(budget)
        sub, why = choice.subnetwork, choice.reason
    else:
        sub = predictor.bundle.subnetwork_for(clip.shape[0])
        how = "exact" if sub.frames == clip.shape[0] else "nearest"
        why = f"no budget: the {sub.frames}-frame sub-network ({how} to the clip's {clip.shape[0]})"
    if clip.shape[0] != sub.frames:
        clip = clip[segment_indices(clip.shape[0], sub.frames)]
    return sub, np.ascontiguousarray(clip, dtype=np.float32), why


def softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)
