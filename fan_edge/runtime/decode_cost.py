"""What a clip costs to read on this device, predicted from its plan before decoding.

`fan-edge bench` reads generated clips (several sizes, keyframe layouts and frame counts)
with the runtime's own reader and fits, per codec, a linear model of the milliseconds.
The reader decodes a plan's runs in `DECODE_THREADS` groups side by side, so decoding is
priced on the busier group (the critical path): its seeks, its frames (a per-frame
overhead, x megapixels, and their packets' megabytes: entropy decoding scales with the
bitrate). Groups hold about equal frames (`Plan.split`), so the busier one is the one with
more packet megabytes (usually more keyframes), frames breaking a tie. Each sampled frame
adds a fixed cost and one per megapixel (conversion and resizing). Coefficients are kept
non-negative, so a prediction never falls as a plan grows. (Measured on the project's
2-core machine: pricing the whole plan's frames as well made the fit no better and
over-predicted clips with a keyframe every 30 frames by up to 50%; without the
per-sampled-frame fixed cost small clips were under-predicted by half.)
"""

import numpy as np

from fan_edge.runtime.video.plan import DECODE_THREADS, Plan, StreamIndex, frames_in

# Each feature and what its coefficient costs (`fan-edge bench` prints them so); the
# critical_ ones count on the busier decoder.
MEANING = {
    "clip": "per clip",
    "critical_seeks": "per seek",
    "critical_decoded": "per decoded frame",
    "critical_decoded_mpx": "per decoded Mpx",
    "critical_mb": "per packet MB",
    "sampled": "per sampled frame",
    "sampled_mpx": "per sampled Mpx",
}
FEATURES = tuple(MEANING)
REFERENCE_CODEC = "h264"  # used, and named as assumed, for a codec the profile lacks


def features(index: StreamIndex, plan: Plan) -> list[float]:
    """FEATURES of a plan (see the module's docstring)."""
    mpx = index.width * index.height / 1e6

    def mb(runs) -> float:
        return sum(sum(index.sizes[a : b + 1]) for a, b in runs) / 1e6 if index.sizes else 0.0

    critical = max(plan.split(DECODE_THREADS), key=lambda runs: (mb(runs), frames_in(runs)))
    sampled = len(set(plan.indices))
    return [
        1.0,
        float(len(critical)),
        float(frames_in(critical)),
        frames_in(critical) * mpx,
        mb(critical),
        float(sampled),
        sampled * mpx,
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
