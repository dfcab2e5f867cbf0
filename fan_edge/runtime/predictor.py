"""`Predictor(bundle).predict(video, budget=...)`: the Python API behind `fan-edge run`."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.data.transforms import eval_transform
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.backends import pick_backend
from fan_edge.runtime.budget import Budget, Choice, choose_subnetwork, parse_budget
from fan_edge.runtime.inputs import read_input
from fan_edge.runtime.profile import latency_for


@dataclass
class Prediction:
    input: str
    labels: list[str]
    probs: list[float]
    frames: int  # frames fed to the network
    trained_frames: int  # the sub-network that ran
    gflops: float
    decode_ms: float
    infer_ms: float
    backend: str
    reason: str
    over_budget: bool = False
    input_frames: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Predictor:
    """Classify clips with a bundle. Sub-networks load on first use, or all at once (eager).

    `backend`: "auto" (best available), "ort-cpu", "ort-cuda", "ort-trt" or "trt".
    """

    bundle: Bundle | str | Path
    backend: str = "auto"
    eager: bool = False
    share_weights: bool = True
    threads: int | None = None
    _sessions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not isinstance(self.bundle, Bundle):
            self.bundle = Bundle(self.bundle)
        self.engine = pick_backend(self.backend, self.bundle, share_weights=self.share_weights,
                                   threads=self.threads)  # fmt: skip
        if self.eager:
            for s in self.bundle.subnetworks:
                self.session(s)

    @property
    def backend_name(self) -> str:
        return self.engine.name

    def session(self, sub: Subnetwork):
        if sub.frames not in self._sessions:
            self._sessions[sub.frames] = self.engine.load(self.bundle, sub)
        return self._sessions[sub.frames]

    def choose(self, budget: str | Budget | None = None, frames: int | None = None,
               allow_over_budget: bool = False) -> Choice:  # fmt: skip
        """Which graph runs: forced `frames`, else the budget's pick, else the largest."""
        if frames is not None:
            return choose_subnetwork(self.bundle, Budget("frames", frames))
        if budget is None:
            top = self.bundle.subnetworks[-1]
            return Choice(top, f"no budget: the largest sub-network ({top.frames} frames)")
        if isinstance(budget, str):
            budget = parse_budget(budget)
        latency = latency_for(self.bundle, self.engine.name) if budget.kind == "latency" else None
        return choose_subnetwork(self.bundle, budget, latency_ms=latency,
                                 allow_over_budget=allow_over_budget)  # fmt: skip

    def logits(self, clip: np.ndarray, sub: Subnetwork) -> np.ndarray:
        """Raw logits for preprocessed clips (B, T, 3, H, W) float32."""
        if clip.ndim != 5 or clip.shape[1] != sub.frames:
            raise FanEdgeError(
                f"cannot run {clip.shape[1] if clip.ndim == 5 else '?'} frames "
                f"on the {sub.frames}-frame graph: sample {sub.frames} frames"
            )
        return self.session(sub)(np.ascontiguousarray(clip, dtype=np.float32))

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB -> (1, T, 3, S, S) float32, as the manifest prescribes."""
        spec = self.bundle.input
        return eval_transform(frames, spec["size"], spec["mean"], spec["std"])[None]

    def predict(self, video: str | Path, *, budget: str | Budget | None = None,
                frames: int | None = None, top_k: int = 5,
                allow_over_budget: bool = False) -> Prediction:  # fmt: skip
        if top_k < 1:
            raise FanEdgeError(f"top-k must be at least 1, got {top_k}")
        choice = self.choose(budget, frames, allow_over_budget)
        sub = choice.subnetwork
        raw, total, decode_ms = read_input(video, sub.frames)
        clip = self.preprocess(raw)
        self.session(sub)  # load outside the timed region
        t0 = time.perf_counter()
        z = self.logits(clip, sub)[0]
        infer_ms = (time.perf_counter() - t0) * 1e3
        p = np.exp(z - z.max())
        p /= p.sum()
        top = np.argsort(-p)[:top_k]
        return Prediction(str(video), [self.bundle.classes[i] for i in top],
                          [float(p[i]) for i in top], sub.frames, sub.trained_frames, sub.gflops,
                          decode_ms, infer_ms, self.engine.name, choice.reason,
                          choice.over_budget, total)  # fmt: skip
