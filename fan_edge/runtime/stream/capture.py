"""Capture: a thread that reads a live source into a ring buffer of model-sized frames.

The ring holds the last `capacity` frames, already resized as the bundle's preprocessing
resizes them, with their media time and arrival time. Capture never waits for inference: a
new frame overwrites the oldest one. A frame overwritten before any classified window held it
is counted as dropped by the buffer; a frame a `--realtime` file could not decode in time is
dropped by capture (as a player drops it). Reading a file as fast as it decodes is lossless
instead: capture then waits until the windows still to come no longer need the oldest frame.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np

from fan_edge.runtime.stream.sources import LiveSource, SourceDropped, SourceStalled


@dataclass
class Window:
    """The frames of one window, sampled by the bundle's rule, and where they came from."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    times: np.ndarray  # media seconds of the sampled frames
    available: int  # frames the window held
    closed_at: float  # perf_counter when the frame after the window arrived (or the end)


class FrameRing:
    """A fixed ring of frames. One writer (capture), one reader (the window loop)."""

    def __init__(self, capacity: int, lossless: bool = False):
        self.capacity = capacity
        self.lossless = lossless
        self.cond = threading.Condition()
        self._frames: np.ndarray | None = None  # allocated at the first frame's size
        self._times = np.full(capacity, np.inf)
        self._arrival = np.zeros(capacity)
        self._used = np.zeros(capacity, bool)
        self.count = 0  # frames ever put
        self.first_arrival = 0.0
        self.dropped_by_buffer = 0
        self.keep_from = -np.inf  # lossless: the earliest media time windows still need
        self.ended = ""  # why capture stopped ("end of file", an error); "" while running
        self.error: BaseException | None = None
        self.stopping = False
        # lossless: the media time the reader waits to see; until a frame reaches it, the
        # writer may overwrite (a window longer than the ring must not deadlock)
        self.reader_wants = -np.inf

    @property
    def latest(self) -> float:
        """Media time of the newest frame (-inf before the first)."""
        return self._times[(self.count - 1) % self.capacity] if self.count else -np.inf

    def put(self, frame: np.ndarray, t: float) -> bool:
        """Store a frame; False if the reader asked to stop."""
        with self.cond:
            slot = self.count % self.capacity
            if self.lossless:
                while (
                    self.count >= self.capacity
                    and self._times[slot] >= self.keep_from
                    and not self.stopping
                    and not self.latest < self.reader_wants  # the reader needs newer frames
                ):
                    self.cond.wait()
            if self.stopping:
                return False
            if self._frames is None or self._frames.shape[1:] != frame.shape:
                self._reset(frame)
                slot = self.count % self.capacity
            elif self.count >= self.capacity and not self._used[slot]:
                self.dropped_by_buffer += 1
            now = time.perf_counter()
            if self.count == 0:
                self.first_arrival = now
            self._frames[slot] = frame
            self._times[slot] = max(t, self.latest + 1e-6) if self.count else t  # (monotonic)
            self._arrival[slot] = now
            self._used[slot] = False
            self.count += 1
            self.cond.notify_all()
        return True

    def _reset(self, frame: np.ndarray) -> None:
        """First frame, or the source changed size mid-stream (RTSP can): start afresh."""
        self._frames = np.empty((self.capacity, *frame.shape), np.uint8)
        self._times[:] = np.inf
        self._used[:] = True  # nothing to count as dropped
        self.count = 0

    def end(self, why: str, error: BaseException | None = None) -> None:
        with self.cond:
            self.ended = self.ended or why
            self.error = self.error or error
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def arrival_after(self, t: float) -> float | None:
        """When the first frame at or after media time `t` arrived (None if none has)."""
        live = self._live_slots()
        hits = live[self._times[live] >= t]
        return float(self._arrival[hits[0]]) if len(hits) else None

    def _live_slots(self) -> np.ndarray:
        """Slots in time order, oldest first."""
        n = min(self.count, self.capacity)
        start = self.count - n
        return (np.arange(start, self.count) % self.capacity).astype(np.int64)

    def window(self, start: float, end: float, choose, closed_at: float) -> Window | None:
        """The frames with media time in [start, end): `choose(available)` says how many to
        sample (by the bundle's rule: segment centres), and those are copied. Every frame in
        the range is marked used. None if none is left (a live source paused that long)."""
        from fan_edge.data.sampling import segment_indices

        with self.cond:
            slots = self._live_slots()
            times = self._times[slots]
            inside = slots[(times >= start) & (times < end)]
            if len(inside) == 0:
                return None
            self._used[inside] = True
            pick = inside[segment_indices(len(inside), choose(len(inside)))]
            return Window(self._frames[pick].copy(), self._times[pick], len(inside), closed_at)

    def need_from(self, t: float) -> None:
        """Lossless reading: frames before media time `t` may be overwritten."""
        with self.cond:
            self.keep_from = t
            self.cond.notify_all()


class Capture(threading.Thread):
    """Reads `source` into `ring` until it ends, fails or `stop()` is called.

    `shrink(rgb)`: the frame as stored (resized as the bundle's preprocessing resizes, so
    the preprocessing's own resize has nothing left to do). `realtime`: play a
    file at its own frame rate, dropping frames that decode too late. `on_frame(rgb, t)`:
    also given every full-size frame (the annotated video), never allowed to block.
    """

    def __init__(
        self,
        source: LiveSource,
        ring: FrameRing,
        shrink,
        *,
        realtime: bool = False,
        on_frame=None,
    ):
        super().__init__(name="fan-edge-capture", daemon=True)
        self.source = source
        self.ring = ring
        self.shrink = shrink
        self.realtime = realtime
        self.on_frame = on_frame
        self.frames_read = 0
        self.dropped = 0  # frames the source gave that never reached the ring
        self.busy_s = 0.0  # time spent decoding, converting and resizing

    def run(self) -> None:
        clock, offset, last = None, 0.0, None
        interval = 1.0 / (self.source.fps or 30.0)
        try:
            frames = self.source.frames()
            while True:
                t0 = time.perf_counter()
                try:
                    rgb, t = next(frames)
                except StopIteration:
                    self.ring.end("end of file")
                    return
                self.frames_read += 1
                if last is not None and t + offset < last - 1.0:
                    # timestamps started over (a reconnect, a wrapped MPEG-TS clock): go on
                    # from where time was, so windows keep closing
                    offset = last + interval - t
                t += offset
                last = t
                if self.realtime:
                    clock = clock if clock is not None else time.perf_counter() - t
                    late = time.perf_counter() - (clock + t)
                    if late > interval:  # behind the source's own clock: drop, as a player does
                        self.dropped += 1
                        self.busy_s += time.perf_counter() - t0
                        continue
                small = self.shrink(rgb)
                if self.on_frame is not None:
                    self.on_frame(rgb, t)
                self.busy_s += time.perf_counter() - t0
                if self.realtime and late < 0:
                    time.sleep(-late)  # early: wait for the frame's time
                if not self.ring.put(small, t):
                    self.ring.end("stopped")
                    return
        except SourceStalled as e:
            self.ring.end("stalled", e)
        except SourceDropped as e:
            self.ring.end("dropped", e)
        except BaseException as e:  # anything else ends the stream with its message
            self.ring.end("failed", e)
        finally:
            self.source.close()

    def stop(self, wait: float = 2.0) -> None:
        self.ring.stop()
        self.join(wait)
