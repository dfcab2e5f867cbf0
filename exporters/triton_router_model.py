"""The `fan` router of a fan-edge Triton model repository (Triton's Python backend, BLS).

Copied into REPO/fan/1/model.py by `fan-edge build --target triton-repo`; it runs inside
Triton, where fan-edge is not installed, so it depends on numpy and Triton's
`triton_python_backend_utils` only. Its rule is the runtime's (fan_edge/serve/route.py):
a `frames` budget takes the nearest sub-network, a GFLOPs budget the largest that fits,
no budget the one nearest the clip's length; the clip is sampled to that count by segment
centres, sent to `fan_<N>f`, and answered with the label, probabilities and why.
"""

import json
import re
from pathlib import Path

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (tests): they provide a stand-in
    pb_utils = None

BUDGET = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)\s*([a-zA-Z]+)\s*$")
GFLOPS = {"tflops": 1e3, "gflops": 1.0, "gflop": 1.0, "mflops": 1e-3}


def segment_centres(n: int, t: int) -> np.ndarray:
    seg = n / t
    return np.minimum((np.arange(t) * seg + seg / 2).astype(np.int64), n - 1)


def nearest(subs: list[dict], frames: float) -> dict:
    return min(subs, key=lambda s: (abs(s["frames"] - frames), -s["frames"]))


def choose(subs: list[dict], frames: int, budget: str | None) -> tuple[dict, str]:
    """(sub-network, why); ValueError with the reason for the client otherwise."""
    if frames < 1:
        raise ValueError("the clip has no frames: send (T, 3, S, S) with T >= 1")
    if not budget:
        s = nearest(subs, frames)
        how = "exact" if s["frames"] == frames else "nearest"
        return s, f"no budget: the {s['frames']}-frame sub-network ({how} to the clip's {frames})"
    m = BUDGET.match(budget)
    unit = m.group(2).lower() if m else ""
    if unit in ("frames", "frame"):
        n = float(m.group(1))
        if n < 1 or n != int(n):
            raise ValueError(f"budget {budget!r}: a frame count must be a whole number >= 1")
        s = nearest(subs, n)
        return s, f"{m.group(1)} frames asked: {s['frames']}-frame graph"
    if unit in GFLOPS:
        limit = float(m.group(1)) * GFLOPS[unit]
        fits = [s for s in subs if s["gflops"] <= limit * (1 + 1e-9)]
        if not fits:
            cheapest = min(subs, key=lambda s: s["gflops"])
            raise ValueError(
                f"nothing fits {limit:g} GFLOPs: the cheapest sub-network is "
                f"{cheapest['frames']} frames at {cheapest['gflops']:.3g} GFLOPs"
            )
        s = max(fits, key=lambda s: s["frames"])
        return s, f"largest within {limit:g} GFLOPs: {s['frames']} frames at {s['gflops']:.3g}"
    raise ValueError(
        f"cannot use budget {budget!r} here: give frames (8frames) or GFLOPs (20gflops); a "
        "latency budget needs a device profile this server does not have"
    )


class TritonPythonModel:
    def initialize(self, args):
        data = json.loads((Path(__file__).parent / "fan_router.json").read_text())
        self.classes = data["classes"]
        self.subs = data["subnetworks"]

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        clip = pb_utils.get_input_tensor_by_name(request, "clip").as_numpy()
        given = pb_utils.get_input_tensor_by_name(request, "budget")
        budget = None
        if given is not None:
            value = given.as_numpy().reshape(-1)[0]
            budget = value.decode() if isinstance(value, bytes) else str(value)
        try:
            sub, why = choose(self.subs, clip.shape[0], budget)
        except ValueError as e:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
        if clip.shape[0] != sub["frames"]:
            clip = clip[segment_centres(clip.shape[0], sub["frames"])]
        inner = pb_utils.InferenceRequest(
            model_name=f"fan_{sub['frames']}f",
            requested_output_names=["logits"],
            inputs=[pb_utils.Tensor("clip", np.ascontiguousarray(clip[None], np.float32))],
            # a GPU model answers in GPU memory unless asked: as_numpy() needs it on the CPU
            preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
        ).exec()
        if inner.has_error():
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(inner.error().message()))
        z = pb_utils.get_output_tensor_by_name(inner, "logits").as_numpy()[0]
        p = np.exp(z - z.max())
        p /= p.sum()
        outputs = {
            "label": np.array([self.classes[int(p.argmax())].encode()], dtype=object),
            "probs": p.astype(np.float32),
            "frames": np.array([sub["frames"]], np.int32),
            "subnetwork": np.array([sub["trained_frames"]], np.int32),
            "reason": np.array([why.encode()], dtype=object),
        }
        return pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()])
