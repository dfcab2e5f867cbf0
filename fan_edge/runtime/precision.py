"""Which precision each sub-network runs at: `--precision` and `--max-loss`.

A bundle runs in fp32 from its graphs and in each precision a build target made artifacts
for (int8 from `--target ort-int8`, fp16 from `--target fp16`, TensorRT engines). A
precision is an engine (backend) choice, made per sub-network:

- no precision: the backend's own (the graphs' fp32 for `auto`);
- a precision (`int8`): its engine; with `--max-loss`, a sub-network whose recorded top-1
  loss (measured at build, `runtime/accuracy.py`) is larger runs fp32 instead;
- `auto`: per sub-network, the fastest precision on this device (its latency profile, from
  `fan-edge bench`) among those whose recorded loss is within `--max-loss` (default 1 point);
  fp32 when no measurement says another one is faster, or no accuracy was recorded.

Every choice carries its reason, which `fan-edge run` prints.
"""

from dataclasses import dataclass

from fan_edge.bundle import PRECISIONS, Bundle
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.accuracy import DEFAULT_MAX_LOSS, loss_of
from fan_edge.runtime.backends.registry import (
    AUTO,
    BACKENDS,
    artifacts,
    pick_backend,
    precision_of,
    ranked,
)

CHOICES = ("auto", *PRECISIONS)


@dataclass(frozen=True)
class Assignment:
    engine: object
    precision: str
    reason: str = ""


def bundle_precisions(bundle: Bundle) -> list[str]:
    """fp32 (the graphs) and every precision a build target made artifacts for."""
    built = {e.get("precision", "fp32") for e in bundle.manifest.get("engines", [])}
    return [p for p in PRECISIONS if p == "fp32" or p in built]


def _fp32_beside(engine, bundle: Bundle, share_weights: bool, threads):
    """An fp32 engine on the same device as `engine` (what a kept-fp32 sub-network runs on)."""
    device = BACKENDS[engine.name].device
    for b in ranked():
        if b.device == device and b.target is None:
            e = b.make(share_weights=share_weights, threads=threads)
            if e.available():
                return e
    raise FanEdgeError(f"no fp32 engine on the {device} here to keep sub-networks in fp32")


def _how_to_measure(engine) -> str:
    """The fix for a missing accuracy record: only targets that measure it can say so."""
    from exporters.registry import TARGETS

    target = BACKENDS[engine.name].target
    if target in TARGETS and "val" in TARGETS[target].options:
        return f"rebuild with `fan-edge build BUNDLE --target {target} --val DATA`"
    return f"the {target} target does not measure accuracy (build ort-int8 or fp16 with --val)"


def _recorded_loss(bundle: Bundle, engine, frames: int) -> float | None:
    record = artifacts(bundle, BACKENDS[engine.name].target).get(frames)
    return None if record is None else loss_of(record)


def plan_precisions(
    bundle: Bundle,
    backend: str,
    precision: str | None,
    max_loss: float | None,
    *,
    share_weights: bool = True,
    threads: int | None = None,
) -> dict[int, Assignment]:
    """frames -> the engine and precision that sub-network runs at, and why."""
    if precision is not None and precision not in CHOICES:
        raise FanEdgeError(f"unknown precision {precision!r}: choose one of {', '.join(CHOICES)}")
    if max_loss is not None and not max_loss >= 0:
        raise FanEdgeError(f"--max-loss must be a number of top-1 points >= 0, got {max_loss}")

    def make(p: str | None):
        return pick_backend(
            backend, bundle, share_weights=share_weights, threads=threads, precision=p
        )

    if precision == AUTO:
        return _auto(bundle, backend, max_loss, make, share_weights, threads)
    engine = make(precision)
    p = precision_of(bundle, engine.name)
    plan = {s.frames: Assignment(engine, p) for s in bundle.subnetworks}
    if max_loss is None or p == "fp32":
        return plan
    fp32 = None
    for s in bundle.subnetworks:
        loss = _recorded_loss(bundle, engine, s.frames)
        if loss is None:
            raise FanEdgeError(
                f"the {p} artifacts of {bundle.path} record no accuracy, so --max-loss cannot "
                f"be checked: {_how_to_measure(engine)}, or drop --max-loss"
            )
        if loss > max_loss:
            fp32 = fp32 or _fp32_beside(engine, bundle, share_weights, threads)
            why = f"kept fp32: {p} loses {loss:.2f} top-1 points > --max-loss {max_loss:g}"
            plan[s.frames] = Assignment(fp32, "fp32", why)
        else:
            plan[s.frames] = Assignment(engine, p, f"{p} loses {loss:.2f} points")
    return plan


def _auto(bundle, backend, max_loss, make, share_weights, threads) -> dict[int, Assignment]:
    from fan_edge.runtime.profile import read_profiles, this_key

    limit = DEFAULT_MAX_LOSS if max_loss is None else max_loss
    engines = {}
    if backend == AUTO:
        for p in bundle_precisions(bundle):
            try:
                engines[p] = make(p)
            except FanEdgeError:
                if p == "fp32":
                    raise
                continue  # built for an engine this device lacks (fp16 for a GPU)
    else:
        engine = make(None)
        engines[precision_of(bundle, engine.name)] = engine
        if "fp32" not in engines:
            engines["fp32"] = _fp32_beside(engine, bundle, share_weights, threads)
    profiles = read_profiles(bundle)  # a damaged file is an error, not "not measured"
    latency = {}
    for p, e in engines.items():
        key = this_key(bundle, e.name, p, batch=1, threads=threads)
        if key in profiles:
            latency[p] = {int(n): r["p50_ms"] for n, r in profiles[key]["subnetworks"].items()}
    plan = {}
    for s in bundle.subnetworks:
        fits, notes = ["fp32"], []
        for p, e in engines.items():
            if p == "fp32":
                continue
            loss = _recorded_loss(bundle, e, s.frames)
            if loss is None:
                notes.append(f"{p} has no recorded accuracy ({_how_to_measure(e)})")
            elif loss > limit:
                notes.append(f"{p} loses {loss:.2f} points > {limit:g}")
            else:
                fits.append(p)
        unmeasured = [p for p in fits if s.frames not in latency.get(p, {})]
        if len(fits) > 1 and unmeasured:
            notes.append(
                f"no latency profile here for {', '.join(unmeasured)}: run "
                f"`fan-edge bench {bundle.path}` to compare"
            )
            # compare what was measured (fp32 among them), or keep fp32
            fits = ["fp32"] if "fp32" in unmeasured else [p for p in fits if p not in unmeasured]
        best = min(fits, key=lambda p: latency[p][s.frames]) if len(fits) > 1 else "fp32"
        if len(fits) > 1:
            times = ", ".join(f"{p} {latency[p][s.frames]:.3g} ms" for p in fits)
            notes.insert(0, f"fastest within {limit:g} points of fp32 ({times})")
        plan[s.frames] = Assignment(engines[best], best, "auto: " + "; ".join(notes or ["fp32"]))
    return plan


def measurable_precisions(bundle_path, backend: str) -> list[str | None]:
    """What `fan-edge bench` measures: with a named backend, its own precision; with auto,
    every precision of the bundle that an engine available here runs."""
    if backend != AUTO:
        return [None]
    bundle = Bundle(bundle_path, verify=False)
    out = []
    for p in bundle_precisions(bundle):
        try:
            pick_backend(AUTO, bundle, precision=p)
        except FanEdgeError:
            if p == "fp32":
                raise
            continue  # e.g. fp16 artifacts for a GPU, measured there
        out.append(p)
    return out


def accuracy_line(record: dict | None) -> str:
    """'88.8 -> 88.6 (-0.2)': a build record's top-1 against fp32 ('fp32' for the graphs)."""
    if record is None:
        return "fp32"
    acc = record.get("accuracy")
    if acc is None:
        return "not measured (build with --val)"
    over = acc["loss_points"] > DEFAULT_MAX_LOSS
    flag = f", loses over {DEFAULT_MAX_LOSS:g} point" if over else ""
    return f"{acc['fp32_top1']:.1f} -> {acc['top1']:.1f} ({-acc['loss_points']:+.1f}{flag})"
