"""What a clip costs to read on this device, predicted from its plan before decoding.

`fan-edge bench` reads generated clips (several sizes, keyframe layouts and frame counts)
with the runtime's own reader and fits, per codec, a linear model of the milliseconds
on features every plan has: a fixed cost, seeks, frames decoded (a per-frame overhead,
x megapixels, and their packets' megabytes: entropy decoding scales with the bitrate), and
sampled frames x megapixels (conversion and resizing). The reader decodes a plan's runs in
`DECODE_THREADS` groups side by side, which is not twice as fast on two cores, so the
megabytes enter twice: those of the group that decodes the most (the critical path) and
those of the whole plan (the work), and the fit finds the mix. Coefficients are kept
non-negative, so a prediction never falls as a plan grows.
"""

import numpy as np

from fan_edge.runtime.video.plan import DECODE_THREADS, Plan, StreamIndex

FEATURES = ("clip", "seeks", "decoded", "decoded_mpx", "critical_mb", "decoded_mb", "sampled_mpx")
REFERENCE_CODEC = "h264"  # used, and named as assumed, for a codec the profile lacks


def features(index: StreamIndex, plan: Plan) -> list[float]:
    """FEATURES of a plan (see the module's docstring)."""
    mpx = index.width * index.height / 1e6

    def mb(runs) -> float:
        return sum(sum(index.sizes[a : b + 1]) for a, b in runs) / 1e6 if index.sizes else 0.0

    critical = max(plan.split(DECODE_THREADS), key=mb)
    return [
        1.0,
        float(plan.seeks),
        float(plan.decoded),
        plan.decoded * mpx,
        mb(critical),
        mb(plan.runs),
        len(set(plan.indices)) * mpx,
    ]


def fit(rows: list[list[float]], ms: list[float]) -> list[float]:
    """Least squares on relative error (budgets are judged in proportion), coefficients >= 0
    (features that would go negative are dropped)."""
    y = np.asarray(ms, float)
    x, y = np.asarray(rows, float) / y[:, None], np.ones_like(y)
    keep = list(range(x.shape[1]))
    while True:
        coef = np.linalg.lstsq(x[:, keep], y, rcond=None)[0]
        if (coef >= 0).all() or len(keep) == 1:
            out = np.zeros(x.shape[1])
            out[keep] = np.maximum(coef, 0)
            return [float(c) for c in out]
        keep.pop(int(np.argmin(coef)))


def predict_ms(models: dict[str, list[float]], index: StreamIndex, plan: Plan) -> tuple[float, str]:
    """(predicted decode ms, "" or a note that another codec's cost was assumed)."""
    if index.codec in models:
        codec, note = index.codec, ""
    else:
        codec = REFERENCE_CODEC if REFERENCE_CODEC in models else sorted(models)[0]
        note = f"{index.codec or 'this input'}: {codec} cost assumed"
    return float(np.dot(models[codec], features(index, plan))), note
