"""A stream session: windows cut from the capture ring, classified, smoothed and reported.

Windows are `window` seconds long and end every `stride` seconds of the source's own time. A
live source (camera, URL, `--realtime` file) is served freshest first: when a window closes
while the network is still busy with an earlier one, the windows in between are skipped
(counted) and the newest one runs. A file read as fast as it decodes runs every window.
Latency is measured from a window's close (the arrival of the first frame after it) to its
result: waiting, sampling the frames from the ring, preprocessing and inference.
"""

import collections
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.budget import Budget, parse_budget
from fan_edge.runtime.stream.annotate import Annotator
from fan_edge.runtime.stream.capture import Capture, FrameRing
from fan_edge.runtime.stream.controller import Controller, Decision
from fan_edge.runtime.stream.sources import open_live

DEFAULT_WINDOW_S = 2.0  # when the bundle does not say how long its training clips were
STAGES = ("wait_ms", "gather_ms", "preprocess_ms", "infer_ms", "total_ms")
RING_BYTES = 256 * 2**20  # the ring's frames at most (it holds a window and a stride anyway)


def parse_seconds(text: str, what: str) -> float:
    """'2s', '500ms' or a bare number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = _duration_ms(text) / 1e3
        if value < 0:
            raise FanEdgeError(
                f"cannot read {what} {text!r}: give a duration such as 2s or 500ms"
            ) from None
    if not math.isfinite(value) or value <= 0:
        raise FanEdgeError(f"{what} {text!r} must be a positive duration, e.g. 2s or 500ms")
    return value


def _shrink(bundle):
    """A frame resized as `fan-edge run` resizes it (readers at `read_size`; other filters
    as the preprocessing does), so windows match what `run` gives on the same frames."""
    from fan_edge.data.transforms import resize_short
    from fan_edge.runtime.video.source import resized

    if bundle.read_size is not None:
        return lambda rgb: resized(rgb, bundle.read_size)
    spec = bundle.input
    return lambda rgb: resize_short(rgb[None], spec["resize_to"], spec["interpolation"])[0]


def _duration_ms(text: str) -> float:
    """A duration in the budget syntax (2s, 500ms), in ms; -1 if it is not one."""
    try:
        budget = parse_budget(text)
    except FanEdgeError:
        return -1.0
    return budget.value if budget.kind == "latency" else -1.0


@dataclass
class StreamResult:
    """One window's result (a JSON line of `fan-edge stream`)."""

    window: int  # its number: the stride count since the first frame
    time: float  # source seconds at the window's end
    wall: str  # when the result was ready (UTC, ISO 8601)
    start: float  # source seconds at the window's start
    label: str  # this window's top label
    score: float
    smoothed_label: str | None  # top label of the scores averaged over the last windows;
    smoothed_score: float  # None when below --threshold
    frames: int  # fed to the network
    window_frames: int  # frames the window held
    subnetwork: int  # the sub-network that ran (its trained frame count)
    reason: str  # why that one
    wait_ms: float  # window closed -> the network was free
    gather_ms: float  # sampling and copying the frames from the ring
    preprocess_ms: float
    infer_ms: float
    total_ms: float  # window closed -> result
    capture_ms_per_frame: float  # decode + convert + resize, mean so far
    dropped_frames: int  # so far: never reached a classified window
    skipped_windows: int  # so far: closed while the network was busy
    precision: str
    backend: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StreamSummary:
    source: str
    stopped: str  # end of file, interrupted, stalled, dropped, failed, window limit
    windows: int
    source_seconds: float
    wall_seconds: float
    frames_read: int
    input_fps: float  # frames captured per second of wall time
    dropped_by_capture: int
    dropped_by_buffer: int
    skipped_windows: int
    stages: dict  # stage -> {"mean": ms, "p90": ms}
    subnetworks: dict  # frames -> windows
    annotated: str = ""  # the annotated video's path, or why there is none
    error: str = ""

    @property
    def dropped_frames(self) -> int:
        return self.dropped_by_capture + self.dropped_by_buffer

    def line(self) -> str:
        s = self.stages
        stages = ", ".join(
            f"{k[:-3]} {v['mean']:.1f}/{v['p90']:.1f}" for k, v in s.items() if k != "total_ms"
        )
        total = s.get("total_ms", {"mean": 0.0, "p90": 0.0})
        subs = " ".join(f"{n}F x{c}" for n, c in sorted(self.subnetworks.items()))
        return (
            f"{self.stopped}: {self.windows} windows in {self.wall_seconds:.1f} s "
            f"({self.frames_read} frames, {self.input_fps:.1f} fps in); latency mean/p90 "
            f"{total['mean']:.1f}/{total['p90']:.1f} ms ({stages}); sub-networks {subs or '-'}; "
            f"dropped {self.dropped_frames} frames ({self.dropped_by_capture} capture, "
            f"{self.dropped_by_buffer} buffer), skipped {self.skipped_windows} windows"
            + (f"; {self.annotated}" if self.annotated else "")
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "dropped_frames": self.dropped_frames}


@dataclass
class Stream:
    """Iterate for results; stops at the end of the source, on `close()`, on Ctrl-C or after
    `max_windows`. `summary` is set when it stops. See `Predictor.stream`."""

    predictor: object
    source: str
    window: float | None = None
    stride: float | None = None
    budget: str | Budget | None = None
    realtime: bool = False
    smooth: int = 1
    threshold: float = 0.0
    annotate: str | None = None
    timeout: float = 5.0
    max_windows: int | None = None
    summary: StreamSummary | None = field(init=False, default=None)

    def __post_init__(self):
        p = self.predictor
        bundle = p.bundle
        if self.smooth < 1:
            raise FanEdgeError(f"smooth must be at least 1 window, got {self.smooth}")
        if not 0 <= self.threshold <= 1:
            raise FanEdgeError(f"threshold is a probability in [0, 1], got {self.threshold}")
        for name in ("window", "stride", "timeout"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise FanEdgeError(f"{name} must be a positive number of seconds, got {value}")
        self.window = self.window or bundle.clip_seconds or DEFAULT_WINDOW_S
        self.stride = self.stride or self.window / 4
        if self.stride > self.window:
            raise FanEdgeError(
                f"a stride ({self.stride:g} s) longer than the window ({self.window:g} s) "
                "leaves frames unclassified: use a stride no longer than the window"
            )
        if isinstance(self.budget, str):
            self.budget = parse_budget(self.budget)
        self._policy, self._first = self._frame_policy()
        self._live = open_live(str(self.source), self.timeout)  # a bad source fails here, fast
        try:
            for s in bundle.subnetworks:  # load every graph now: not inside a window's latency
                p.session(s)
            self._prepare(p, bundle)
        except BaseException:
            self._live.close()
            raise
        self._latencies: dict[str, list[float]] = {k: [] for k in STAGES}
        self._histogram: collections.Counter = collections.Counter()
        self._skipped = 0
        self._stopped = ""
        self._lock = threading.Lock()

    def _prepare(self, p, bundle) -> None:
        """The ring, sized for a window and a stride of the source, capture and annotation."""
        lossless = self._live.kind == "file" and not self.realtime
        fps = self._live.fps or 30.0
        self._interval = 1.0 / fps
        w, h = self._live.width or 640, self._live.height or 480
        short = bundle.input["resize_to"]
        frame_bytes = 3 * short * short * max(w, h) / max(min(w, h), 1)
        want = math.ceil(fps * (self.window + self.stride) * 1.5) + 8
        capacity = max(16, min(want, int(RING_BYTES / max(frame_bytes, 1))))
        self._ring = FrameRing(capacity, lossless=lossless)
        self._annotator = Annotator(self.annotate, self._live.fps) if self.annotate else None
        self._capture = Capture(
            self._live,
            self._ring,
            _shrink(bundle),
            realtime=self.realtime and self._live.kind == "file",
            on_frame=self._annotator.offer if self._annotator else None,
        )

    # -- choosing the sub-network --------------------------------------------------------

    def _frame_policy(self) -> tuple[Controller | None, Decision]:
        """A Controller for a latency budget (None: the budget, or none, fixes the count),
        and the first window's sub-network."""
        p, bundle = self.predictor, self.predictor.bundle
        budget = self.budget
        if budget is None or budget.kind != "latency":
            choice = p.choose(budget)
            return None, Decision(choice.subnetwork.frames, choice.reason)
        try:
            latency = p.latency_ms()
        except FanEdgeError:
            latency = None
        if latency:
            costs = latency
            fits = [n for n, ms in latency.items() if ms <= budget.value]
            start = max(fits) if fits else min(latency)
            why = f"start: {start} frames fits {budget} by this device's latency profile"
        else:
            costs = {s.frames: s.gflops for s in bundle.subnetworks}
            start = min(costs)
            why = f"start: no latency profile, the smallest ({start} frames); up as measured"
        controller = Controller(budget.value, costs, start, stride_ms=1e3 * self.stride)
        return controller, Decision(start, why)

    def _subnetwork(self, decision: Decision, available: int):
        bundle = self.predictor.bundle
        sub = bundle.subnetwork_for(decision.frames)
        if available >= sub.frames:
            return sub, decision.reason
        fitting = [s for s in bundle.subnetworks if s.frames <= available]
        small = fitting[-1] if fitting else bundle.subnetworks[0]
        return small, (
            f"window holds {available} frames, fewer than {sub.frames}: the {small.frames}-frame "
            "sub-network"
        )

    # -- the loop --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[StreamResult]:
        ring, p = self._ring, self.predictor
        controller, decision = self._policy, self._first
        history: collections.deque = collections.deque(maxlen=self.smooth)
        self._wall0 = time.perf_counter()
        if self._annotator:
            self._annotator.start()
        self._capture.start()
        k, n, free_at = 0, 0, 0.0
        try:
            while self.max_windows is None or n < self.max_windows:
                got = self._next_window(k)
                if got is None:
                    break
                k, start, end, closed_at = got
                if ring.lossless:  # nothing waited on but our own previous window
                    closed_at = max(closed_at, free_at)
                t0 = time.perf_counter()
                chosen = {}

                def pick(available, d=decision, chosen=chosen):
                    chosen["sub"], chosen["reason"] = self._subnetwork(d, available)
                    return chosen["sub"].frames

                w = ring.window(start, end, pick, closed_at)
                if ring.lossless:
                    ring.need_from(start + self.stride)
                if w is None:  # a live source paused longer than a window: nothing to classify
                    self._skipped += 1
                    k += 1
                    continue
                t1 = time.perf_counter()
                sub = chosen["sub"]
                clip = p.preprocess(w.frames)
                t2 = time.perf_counter()
                z = p.logits(clip, sub)[0]
                t3 = time.perf_counter()
                probs = np.exp(z - z.max())
                probs /= probs.sum()
                history.append(probs)
                mean = np.mean(history, axis=0)
                stages = {
                    "wait_ms": (t0 - closed_at) * 1e3,
                    "gather_ms": (t1 - t0) * 1e3,
                    "preprocess_ms": (t2 - t1) * 1e3,
                    "infer_ms": (t3 - t2) * 1e3,
                    "total_ms": (t3 - closed_at) * 1e3,
                }
                free_at = t3
                result = self._result(k, start, end, probs, mean, sub, chosen["reason"], w, stages)
                if controller:
                    decision = controller.observe(
                        sub.frames, stages["total_ms"], stages["infer_ms"]
                    )
                n += 1
                k += 1
                yield result
            else:
                self._stopped = "window limit"
        except KeyboardInterrupt:
            self._stopped = "interrupted"
        finally:
            self.close()

    def _next_window(self, k: int):
        """Wait for window `k` (or a later one, live) to close: (k, start, end, closed_at),
        or None when the source ended first."""
        ring = self._ring
        with ring.cond:
            ring.reader_wants = self._end(k)
            ring.cond.notify_all()
            while ring.latest < self._end(k) and not ring.ended and not ring.stopping:
                last = ring.count
                if not ring.cond.wait(timeout=self.timeout) and ring.count == last:
                    ring.end("stalled", FanEdgeError(f"no frame for {self.timeout:g} s"))
            ring.reader_wants = -math.inf
            if ring.stopping:
                return None
            if ring.latest < self._end(k):
                # ended: the last frame lasts one frame interval, so a window it completes
                # is whole; a source shorter than one window is one window
                if ring.latest + self._interval >= self._end(k) - 1e-9:
                    return k, self._end(k) - self.window, self._end(k), time.perf_counter()
                if k == 0 and ring.count >= 2:
                    end = ring.latest + 1e-6
                    return 0, max(end - self.window, 0.0), end, time.perf_counter()
                return None
            if not ring.lossless:  # serve the newest window that has closed
                newest = max(k, math.floor((ring.latest - self.window) / self.stride + 1e-9))
                self._skipped += newest - k
                k = newest
            end = self._end(k)
            closed_at = ring.arrival_after(end) or time.perf_counter()
        return k, end - self.window, end, closed_at

    def _end(self, k: int) -> float:
        return self.window + k * self.stride

    def _result(self, k, start, end, probs, mean, sub, reason, w, stages) -> StreamResult:
        p = self.predictor
        classes = p.bundle.classes
        top, smooth_top = int(np.argmax(probs)), int(np.argmax(mean))
        smoothed = float(mean[smooth_top])
        for key, v in stages.items():
            self._latencies[key].append(v)
        self._histogram[sub.trained_frames] += 1
        cap = self._capture
        result = StreamResult(
            window=k,
            time=round(end, 4),
            wall=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            start=round(start, 4),
            label=classes[top],
            score=float(probs[top]),
            smoothed_label=classes[smooth_top] if smoothed >= self.threshold else None,
            smoothed_score=smoothed,
            frames=len(w.frames),
            window_frames=w.available,
            subnetwork=sub.trained_frames,
            reason=reason,
            **stages,
            capture_ms_per_frame=1e3 * cap.busy_s / max(cap.frames_read, 1),
            dropped_frames=cap.dropped + self._ring.dropped_by_buffer,
            skipped_windows=self._skipped,
            precision=p.plan[sub.frames].precision,
            backend=p.engine_for(sub).name,
        )
        if self._annotator:
            shown = result.smoothed_label or "(below threshold)"
            self._annotator.caption = (
                f"{shown} {smoothed:.2f}",
                f"{sub.frames}-frame sub-network, {stages['total_ms']:.0f} ms",
            )
        return result

    # -- stopping --------------------------------------------------------------------------

    def close(self, why: str = "") -> StreamSummary:
        """Stop capture, finish the annotated video, and summarise (idempotent). `why`: the
        reason to report if the stream did not end by itself (e.g. "interrupted")."""
        with self._lock:
            if self.summary is not None:
                return self.summary
            self._stopped = self._stopped or why
            ring, cap = self._ring, self._capture
            if cap.is_alive():
                cap.stop()
            else:
                self._live.close()
            stopped = self._stopped or ring.ended or "stopped"
            error = ""
            if ring.error is not None and ring.ended in ("stalled", "dropped", "failed"):
                error = str(ring.error)
                stopped = ring.ended
            annotated = ""
            if self._annotator:
                problem = self._annotator.close()
                a = self._annotator
                annotated = problem or (
                    f"annotated video {a.path} ({a.written} frames"
                    + (f", {a.left_out} left out while encoding was behind" if a.left_out else "")
                    + ")"
                )
            wall = time.perf_counter() - getattr(self, "_wall0", time.perf_counter())
            stages = {
                k: {"mean": float(np.mean(v)), "p90": float(np.percentile(v, 90))}
                for k, v in self._latencies.items()
                if v
            }
            self.summary = StreamSummary(
                source=str(self.source),
                stopped=stopped,
                windows=sum(self._histogram.values()),
                source_seconds=float(max(ring.latest, 0.0)),
                wall_seconds=wall,
                frames_read=cap.frames_read,
                input_fps=cap.frames_read / wall if wall > 0 else 0.0,
                dropped_by_capture=cap.dropped,
                dropped_by_buffer=ring.dropped_by_buffer,
                skipped_windows=self._skipped,
                stages=stages,
                subnetworks=dict(sorted(self._histogram.items())),
                annotated=annotated,
                error=error,
            )
            return self.summary

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
