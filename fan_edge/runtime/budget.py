"""Budgets (`20gflops`, `15ms`, `0.015s`, `8frames`) and choosing a sub-network under one."""

import math
import re
from dataclasses import dataclass

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError

# unit -> (kind, factor to the kind's base unit: GFLOPs, milliseconds, frames)
UNITS: dict[str, tuple[str, float]] = {
    "tflops": ("gflops", 1e3),
    "gflops": ("gflops", 1.0),
    "gflop": ("gflops", 1.0),
    "mflops": ("gflops", 1e-3),
    "s": ("latency", 1e3),
    "ms": ("latency", 1.0),
    "us": ("latency", 1e-3),
    "frames": ("frames", 1.0),
    "frame": ("frames", 1.0),
}
FORMS = "20gflops, 20GFLOPs, 15ms, 0.015s or 8frames"
_NUMBER_UNIT = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)\s*([a-zA-Z]+)\s*$")


@dataclass(frozen=True)
class Budget:
    kind: str  # "gflops" | "latency" | "frames"
    value: float  # GFLOPs, milliseconds or frames

    def __str__(self) -> str:
        unit = {"gflops": " GFLOPs", "latency": " ms", "frames": " frames"}[self.kind]
        return f"{self.value:g}{unit}"


def parse_budget(text: str) -> Budget:
    """Parse a budget; raises FanEdgeError listing the accepted forms."""
    m = _NUMBER_UNIT.match(text or "")
    unit = m and m.group(2).lower()
    if not m or unit not in UNITS:
        raise FanEdgeError(f"cannot read budget {text!r}: use a number and a unit, e.g. {FORMS}")
    kind, factor = UNITS[unit]
    value = float(m.group(1)) * factor  # 1e999 reads as inf, 1e-999 as 0
    if not math.isfinite(value):
        raise FanEdgeError(f"budget {text!r} is not a finite number: give one such as {FORMS}")
    if value <= 0:
        raise FanEdgeError(f"budget {text!r} must be greater than 0, e.g. {FORMS}")
    if kind == "frames" and (value < 1 or value != int(value)):
        raise FanEdgeError(
            f"budget {text!r}: a frame count must be a whole number >= 1, e.g. 8frames"
        )
    return Budget(kind, value)


@dataclass(frozen=True)
class Choice:
    subnetwork: Subnetwork
    reason: str
    over_budget: bool = False
    predicted: dict | None = None  # whole-clip budgets: predicted ms per stage of the choice


def choose_subnetwork(
    bundle: Bundle,
    budget: Budget,
    *,
    latency_ms: dict[int, float] | None = None,
    allow_over_budget: bool = False,
    explain: dict[int, str] | None = None,
) -> Choice:
    """The sub-network with the most frames that fits `budget` (frames: the nearest one).

    `latency_ms`: the predicted cost of each sub-network (the network alone, or the whole
    clip), `explain` its breakdown for the reason. A cost equal to the budget fits. If nothing
    fits, raise, naming the cheapest option, unless `allow_over_budget`, which then picks
    the cheapest.
    """
    subs = bundle.subnetworks
    if budget.kind == "frames":
        s = bundle.subnetwork_for(int(budget.value))
        how = "exact" if s.frames == budget.value else "nearest exported count"
        return Choice(s, f"{int(budget.value)} frames asked: {s.frames}-frame graph ({how})")
    if budget.kind == "gflops":
        cost, unit = {s.frames: s.gflops for s in subs}, "GFLOPs"
    else:
        if latency_ms is None:
            raise FanEdgeError(
                "a latency budget needs this device's latency profile: run "
                f"`fan-edge bench {bundle.path}` once, or use a GFLOPs budget"
            )
        missing = [s.frames for s in subs if s.frames not in latency_ms]
        if missing:
            raise FanEdgeError(
                f"the latency profile lacks {missing} frames: re-run `fan-edge bench`"
            )
        cost, unit = {s.frames: float(latency_ms[s.frames]) for s in subs}, "ms"

    def at(s: Subnetwork) -> str:
        if explain:
            return f"{s.frames} frames: {explain[s.frames]}"
        return f"{s.frames} frames at {cost[s.frames]:.3g} {unit}"

    fits = [s for s in subs if cost[s.frames] <= budget.value * (1 + 1e-9)]
    if fits:
        best = max(fits, key=lambda s: (s.frames, -cost[s.frames]))  # most frames that fit
        return Choice(best, f"largest within {budget}: {at(best)}")
    cheapest = min(subs, key=lambda s: (cost[s.frames], s.frames))
    if not allow_over_budget:
        raise FanEdgeError(
            f"nothing fits {budget}: the cheapest sub-network is {at(cheapest)}; "
            "raise the budget or pass --allow-over-budget"
        )
    return Choice(cheapest, f"over budget {budget}: cheapest is {at(cheapest)}", over_budget=True)
