"""`Predictor(bundle).predict(video, budget=...)`: the Python API behind `fan-edge run`."""

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.budget import Budget, Choice, choose_subnetwork, parse_budget
from fan_edge.runtime.decode_cost import predict_ms
from fan_edge.runtime.precision import plan_precisions
from fan_edge.runtime.profile import bench_command, decode_costs_for
from fan_edge.runtime.video import ClipRecord, VideoSource, open_video
from fan_edge.runtime.video.clips import bench_codec


@dataclass
class Prediction:
    input: str
    labels: list[str]
    probs: list[float]
    frames: int  # frames fed to the network
    trained_frames: int  # the sub-network that ran
    gflops: float
    backend: str
    reason: str
    over_budget: bool = False
    input_frames: int = 0
    # measured stages (ms); total = index + decode + preprocess + infer
    index_ms: float = 0.0
    decode_ms: float = 0.0
    decoded_frames: int = 0
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    total_ms: float = 0.0
    predicted: dict | None = None  # a whole-clip budget's prediction for the chosen stages
    read: dict = field(default_factory=dict)  # how the clip was read (decoder, plan, fallback)
    precision: str = "fp32"  # what the sub-network computed in
    precision_reason: str = ""  # why (--precision auto, --max-loss)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


BUDGET_FOR = ("clip", "network")


@dataclass
class Predictor:
    """Classify clips with a bundle. Sub-networks load on first use, or all at once (eager).

    `backend`: "auto" (the best available that can run the bundle) or a registered backend
    (`fan_edge.runtime.backends.backend_names()`: trt, ort-trt, ort-cuda, ort-cpu, ...).
    `decoder`: "auto" (PyAV, OpenCV for what it cannot open), "pyav" or "opencv".
    `budget_for`: what a latency budget covers: "clip" (index + decode + preprocess +
    inference, predicted from the clip's decode plan) or "network" (inference alone).
    `precision`: None (the backend's own: fp32 graphs for "auto"), "fp32", "int8", "fp16"
    (artifacts of `fan-edge build`) or "auto" (per sub-network, the fastest measured here
    within `max_loss` top-1 points of fp32); `max_loss` also keeps a sub-network whose
    recorded loss is larger in fp32 (runtime/precision.py).
    `server`: run the sub-networks on a `fan-edge serve` of the same bundle (a URL: http://
    or grpc://); reading and preprocessing stay here (fan_edge/serve/client.py).
    """

    bundle: Bundle | str | Path
    backend: str = "auto"
    eager: bool = False
    share_weights: bool = True
    threads: int | None = None
    decoder: str = "auto"
    budget_for: str = "clip"
    precision: str | None = None
    max_loss: float | None = None
    server: str | None = None
    _sessions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.budget_for not in BUDGET_FOR:
            raise FanEdgeError(f"budget_for must be one of {BUDGET_FOR}, got {self.budget_for!r}")
        if not isinstance(self.bundle, Bundle):
            self.bundle = Bundle(self.bundle)
        if self.server:
            self.plan = self._remote_plan()
        else:
            self.plan = plan_precisions(
                self.bundle,
                self.backend,
                self.precision,
                self.max_loss,
                share_weights=self.share_weights,
                threads=self.threads,
            )
        if self.eager:
            for s in self.bundle.subnetworks:
                self.session(s)

    def _remote_plan(self) -> dict:
        """Every sub-network on the server; what chooses a local engine does not apply."""
        from fan_edge.runtime.precision import Assignment
        from fan_edge.serve.client import RemoteEngine

        local = {
            "--backend": self.backend != "auto",
            "--precision": self.precision is not None,
            "--max-loss": self.max_loss is not None,
            "--threads": self.threads is not None,
        }
        for flag, given in local.items():
            if given:
                raise FanEdgeError(
                    f"{flag} is the server's to choose with --server (`fan-edge serve "
                    f"{flag} ...`): drop it here"
                )
        remote = RemoteEngine(self.server)
        return {s.frames: Assignment(remote, "server", "") for s in self.bundle.subnetworks}

    def engine_for(self, sub: Subnetwork):
        return self.plan[sub.frames].engine

    @property
    def engine(self):
        """The engine of the largest sub-network (of every one, unless precisions mix)."""
        return self.engine_for(self.bundle.subnetworks[-1])

    @property
    def backend_name(self) -> str:
        """The engine's name; engines joined by '+' where sub-networks' precisions differ."""
        return "+".join(dict.fromkeys(a.engine.name for a in self.plan.values()))

    @property
    def precisions(self) -> str:
        """What the sub-networks compute in: fp32, int8, or e.g. fp32+int8 (mixed)."""
        return "+".join(sorted({a.precision for a in self.plan.values()}))

    def session(self, sub: Subnetwork):
        if sub.frames not in self._sessions:
            self._sessions[sub.frames] = self.engine_for(sub).load(self.bundle, sub)
        return self._sessions[sub.frames]

    def latency_ms(self) -> dict[int, float]:
        """Each sub-network's measured p50 at batch 1, from its own engine's profile."""
        if self.server:
            raise FanEdgeError(
                "a latency budget needs this device's profile of the engine, and the engine "
                "is the server: with --server use a GFLOPs or frames budget"
            )
        from fan_edge.runtime.profile import latency_for

        out = {}
        for s in self.bundle.subnetworks:
            a = self.plan[s.frames]
            out[s.frames] = latency_for(
                self.bundle, a.engine.name, a.precision, threads=self.threads
            )[s.frames]
        return out

    def choose(
        self,
        budget: str | Budget | None = None,
        frames: int | None = None,
        allow_over_budget: bool = False,
        video: VideoSource | None = None,
    ) -> Choice:
        """Which graph runs: forced `frames`, else the budget's pick, else the largest.

        A latency budget covers the whole clip when `video` (an opened input) is given and
        `budget_for` is "clip"; otherwise the network alone.
        """
        if frames is not None:
            return choose_subnetwork(self.bundle, Budget("frames", frames))
        if budget is None:
            top = self.bundle.subnetworks[-1]
            return Choice(top, f"no budget: the largest sub-network ({top.frames} frames)")
        if isinstance(budget, str):
            budget = parse_budget(budget)
        if budget.kind != "latency":
            return choose_subnetwork(self.bundle, budget, allow_over_budget=allow_over_budget)
        latency = self.latency_ms()
        if video is None or self.budget_for == "network":
            return choose_subnetwork(
                self.bundle, budget, latency_ms=latency, allow_over_budget=allow_over_budget
            )
        stages = self.predict_stages(video, latency)
        choice = choose_subnetwork(
            self.bundle,
            budget,
            latency_ms={n: p["total_ms"] for n, p in stages.items()},
            allow_over_budget=allow_over_budget,
            explain={n: p["explain"] for n, p in stages.items()},
        )
        return replace(choice, predicted=stages[choice.subnetwork.frames])

    def predict_stages(self, video: VideoSource, latency: dict[int, float]) -> dict[int, dict]:
        """Predicted ms per stage of each sub-network on this clip, before decoding it."""
        top = self.plan[self.bundle.subnetworks[-1].frames]  # decoding costs the same for all
        costs = decode_costs_for(self.bundle, top.engine.name, top.precision, threads=self.threads)
        measure = bench_codec(video.index.codec) and bench_command(
            self.bundle,
            top.engine.name,
            threads=self.threads,
            codecs=[*costs["codecs"], video.index.codec],
        )
        out = {}
        for s in self.bundle.subnetworks:
            plan = video.plan(s.frames)
            decode, note = predict_ms(costs["codecs"], video.index, plan)
            note += f": `{measure}` measures it" if note and measure else ""
            pre = costs["preprocess_ms_per_frame"] * s.frames
            infer = latency[s.frames]
            other = video.index_ms + pre
            total = decode + other + infer
            out[s.frames] = {
                "index_ms": video.index_ms,
                "decode_ms": decode,
                "decoded_frames": plan.decoded,
                "preprocess_ms": pre,
                "infer_ms": infer,
                "total_ms": total,
                "explain": f"decode ~{decode:.0f} ms ({plan.decoded} frames"
                f"{'; ' + note if note else ''}) + infer ~{infer:.0f} ms + index and "
                f"preprocess ~{other:.0f} ms = ~{total:.0f} ms",
            }
        return out

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
        return self.bundle.transform(frames)[None]

    def predict(
        self,
        video: str | Path,
        *,
        budget: str | Budget | None = None,
        frames: int | None = None,
        top_k: int = 5,
        allow_over_budget: bool = False,
    ) -> Prediction:
        if top_k < 1:
            raise FanEdgeError(f"top-k must be at least 1, got {top_k}")
        return self.classify(*self.read_for(video, budget, frames, allow_over_budget), top_k)

    def stream(self, source: str | Path, **options):
        """Classify a live source window by window: a camera (`/dev/video0` or `0`), a URL
        (rtsp://, http://, ...) or a file. Iterate the returned `Stream` for `StreamResult`s;
        its `summary` is set when it stops. Options (runtime/stream/session.py): `window`,
        `stride` (seconds), `budget` (a latency budget adapts the frame count per window),
        `realtime`, `smooth`, `threshold`, `annotate`, `timeout`, `max_windows`."""
        from fan_edge.runtime.stream import Stream

        return Stream(self, str(source), **options)

    def read_for(
        self,
        video: str | Path,
        budget: str | Budget | None = None,
        frames: int | None = None,
        allow_over_budget: bool = False,
    ) -> tuple[np.ndarray, ClipRecord, Choice]:
        """Open `video`, choose the sub-network (pricing each plan), read its frames."""
        with open_video(video, self.decoder) as source:
            choice = self.choose(budget, frames, allow_over_budget, video=source)
            raw, record = source.read(choice.subnetwork.frames, short_side=self.bundle.read_size)
        return raw, record, choice

    def classify(
        self, raw: np.ndarray, record: ClipRecord, choice: Choice, top_k: int = 5
    ) -> Prediction:
        """Preprocess and run frames already read for `choice` (the second half of predict)."""
        sub = choice.subnetwork
        t0 = time.perf_counter()
        clip = self.preprocess(raw)
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        self.session(sub)  # load outside the timed region
        t0 = time.perf_counter()
        z = self.logits(clip, sub)[0]
        infer_ms = (time.perf_counter() - t0) * 1e3
        p = np.exp(z - z.max())
        p /= p.sum()
        top = np.argsort(-p)[:top_k]
        total = record.index_ms + record.decode_ms + preprocess_ms + infer_ms
        predicted = (
            None
            if choice.predicted is None
            else {k: v for k, v in choice.predicted.items() if k != "explain"}
        )
        return Prediction(
            record.source,
            [self.bundle.classes[i] for i in top],
            [float(p[i]) for i in top],
            sub.frames,
            sub.trained_frames,
            sub.gflops,
            self.engine_for(sub).name,
            choice.reason,
            choice.over_budget,
            record.input_frames,
            record.index_ms,
            record.decode_ms,
            record.decoded,
            preprocess_ms,
            infer_ms,
            total,
            predicted,
            record.to_dict(),
            self.plan[sub.frames].precision,
            self.plan[sub.frames].reason,
        )
