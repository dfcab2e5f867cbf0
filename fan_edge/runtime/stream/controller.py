"""The frame-count controller: which sub-network serves the next window under a latency budget.

A pure state machine over numbers (no clock, no model), so its decisions can be scripted in
tests. After each window it is told the sub-network that ran, the window's latency (window
close to result) and the part of it that was inference.

- **Down** when windows run over the budget: when `down_after` of the last `down_after + 1`
  windows were over (so alternating over and under counts), or at once when one is over by
  a quarter, or over the budget and longer than the stride (`stride_ms`: the stream is
  falling behind; the next window would wait for this one); to the largest sub-network whose
  estimate fits. A window that ran a smaller
  sub-network (it held too few frames for ours) brings the level down to that one.
- **Up** one level when the next one's estimate, over the last `patience` windows (their
  median), fits within `headroom` of the budget.
- **Estimates** scale only the inference part of a latency, by the ratio of the two
  sub-networks' `costs` (the device's latency profile, or GFLOPs). Not by ratios measured in
  the stream: the two would be measured at different times, under different loads.
- **No flapping**: a step up taken back within `2 * up_after` windows doubles the patience
  before that step is tried again (up to 64 windows), unless the lower sub-network has since
  become clearly faster than it was when the step failed, over `2 * up_after` windows (the
  load that caused it is gone; one lucky window is not enough).
"""

import statistics
from collections import deque
from dataclasses import dataclass, field

FAR_OVER = 1.25  # a window this far over the budget steps down at once
IMPROVED = 0.7  # the lower sub-network at this fraction of its latency when a step failed


@dataclass
class Decision:
    frames: int  # the sub-network for the next window
    reason: str


@dataclass
class Controller:
    """`costs`: the relative cost of each sub-network (frames -> latency from the device's
    profile, or GFLOPs); `start`: the first sub-network."""

    budget_ms: float
    costs: dict[int, float]
    start: int
    down_after: int = 2
    up_after: int = 5
    headroom: float = 0.8
    stride_ms: float | None = None  # windows closing this often: a longer one falls behind
    _level: int = field(init=False)
    _over: deque = field(init=False)  # of the last windows at this level: over the budget?
    _estimates: deque = field(init=False)  # estimates of the next level up, this level's windows
    _latencies: deque = field(init=False)  # this level's recent latencies
    _patience: dict = field(init=False, default_factory=dict)  # level -> windows to go up
    # level -> (the level it fell to, that level's first latencies there): the conditions
    # under which the step up to `level` failed
    _failed_at: dict = field(init=False, default_factory=dict)
    _since_up: int | None = field(init=False, default=None)  # windows since the last step up

    def __post_init__(self):
        self.levels = sorted(self.costs)
        if self.start not in self.costs:
            raise ValueError(f"no sub-network of {self.start} frames in {self.levels}")
        self._level = self.levels.index(self.start)
        self._reset_window_stats()

    @property
    def frames(self) -> int:
        return self.levels[self._level]

    def _reset_window_stats(self) -> None:
        self._over = deque(maxlen=self.down_after + 1)
        self._estimates = deque(maxlen=64)
        self._latencies = deque(maxlen=64)

    def estimate(self, frames: int, latency_ms: float, infer_ms: float, ran: int) -> float:
        """A window's latency had `frames` run instead of `ran`."""
        return latency_ms - infer_ms + infer_ms * self.costs[frames] / self.costs[ran]

    def observe(self, ran: int, latency_ms: float, infer_ms: float | None = None) -> Decision:
        """Record a window (`infer_ms`: its inference part; None: all of it); returns the
        sub-network for the next window and why."""
        infer_ms = latency_ms if infer_ms is None else infer_ms
        if self._since_up is not None:
            self._since_up += 1
        if ran not in self.costs:
            raise ValueError(f"no sub-network of {ran} frames in {self.levels}")
        if ran < self.frames:  # windows hold too few frames for ours: theirs is the level now
            self._level = self.levels.index(ran)
            self._reset_window_stats()
        elif ran > self.frames:  # (not ours to run): no verdict
            return Decision(self.frames, f"kept {self.frames} frames")
        budget, f = self.budget_ms, self.frames
        self._latencies.append(latency_ms)
        self._forgive_if_faster()
        self._over.append(latency_ms > budget)
        if latency_ms > budget:
            self._estimates.clear()
            over = sum(self._over)
            behind = self.stride_ms is not None and latency_ms > self.stride_ms
            far = latency_ms > FAR_OVER * budget
            if self._level > 0 and (over >= self.down_after or far or behind):
                return self._step_down(latency_ms, infer_ms)
            return Decision(
                f,
                f"kept {f} frames: last window {latency_ms:.0f} ms, over {budget:g} ms "
                f"({over} of the last {len(self._over)})",
            )
        if self._level + 1 == len(self.levels):
            return Decision(
                f, f"kept {f} frames (the largest): last window {latency_ms:.0f} ms, within"
            )
        up = self.levels[self._level + 1]
        self._estimates.append(self.estimate(up, latency_ms, infer_ms, ran))
        need = self._windows_needed(self._level + 1)
        est = statistics.median(list(self._estimates)[-need:])
        if len(self._estimates) < need or est > self.headroom * budget:
            return Decision(
                f,
                f"kept {f} frames: last window {latency_ms:.0f} ms; {up} frames would take "
                f"~{est:.0f} (median of {min(len(self._estimates), need)} of {need} windows; "
                f"steps up within {self.headroom:.0%} of {budget:g})",
            )
        self._level += 1
        self._reset_window_stats()
        self._since_up = 0
        return Decision(
            up, f"stepped up to {up} frames: ~{est:.0f} ms fits {budget:g} ms over {need} windows"
        )

    def _windows_needed(self, level: int) -> int:
        """Windows at the level below `level` before stepping up to it."""
        return self._patience.get(level, self.up_after)

    def _forgive_if_faster(self) -> None:
        """After a failed step, the level it fell to is measured for `up_after` windows; once
        that level runs clearly faster than then, the load that made the step fail is gone:
        the doubled patience of every step above is forgotten."""
        for failed, (at, first) in list(self._failed_at.items()):
            if at != self._level:
                continue
            if len(first) < self.up_after:
                first.append(self._latencies[-1])
                continue
            window = 2 * self.up_after
            if len(self._latencies) < self.up_after + window:
                continue
            recent = statistics.median(list(self._latencies)[-window:])
            if recent <= IMPROVED * statistics.median(first):
                del self._failed_at[failed]
                for level in [lv for lv in self._patience if lv > at]:
                    del self._patience[level]

    def _step_down(self, latency_ms: float, infer_ms: float) -> Decision:
        ran, failed = self.frames, self._level
        if self._since_up is not None and self._since_up <= 2 * self.up_after:
            # the last step up did not hold: slower to try it again
            self._patience[failed] = min(2 * self._patience.get(failed, self.up_after), 64)
        self._since_up = None
        target = 0
        for i in range(self._level - 1, -1, -1):
            if self.estimate(self.levels[i], latency_ms, infer_ms, ran) <= self.budget_ms:
                target = i
                break
        self._failed_at[failed] = (target, [])  # measured by the next windows
        self._level = target
        self._reset_window_stats()
        return Decision(
            self.frames,
            f"stepped down from {ran} to {self.frames} frames: {latency_ms:.0f} ms over "
            f"{self.budget_ms:g} ms",
        )
