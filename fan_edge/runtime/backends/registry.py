"""The backend registry: the only place an inference engine is named.

A backend file registers a factory with `@register_backend` (its name, where `auto` ranks it,
the device it runs on, and the `fan-edge build` target whose artifacts it runs, if any); the
`--backend` choices and help, `auto`'s order and the latency profile's device name are read
from here. A new engine is one file and one import in `fan_edge/runtime/backends/__init__.py`
(or, for an engine of your own, one import of your file before you load a bundle).

An engine has a `name`, `available() -> bool` (installed and usable here) and
`load(bundle, subnetwork) -> run`, where `run(x)` maps a (B, T, 3, H, W) float32 array to
(B, classes) logits.
"""

from collections.abc import Callable
from dataclasses import dataclass

from fan_edge.bundle import Bundle
from fan_edge.errors import FanEdgeError

AUTO = "auto"
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class BackendInfo:
    name: str
    make: Callable  # (share_weights: bool, threads: int | None) -> engine
    rank: int  # `auto` tries the lowest rank first
    device: str  # "cpu" or "gpu": what a latency profile names the device by
    target: str | None  # runs the artifacts of `fan-edge build --target T`; None: the graphs
    description: str
    verified_here: bool


BACKENDS: dict[str, BackendInfo] = {}


def register_backend(
    name: str,
    *,
    rank: int,
    device: str,
    description: str,
    target: str | None = None,
    verified_here: bool = True,
) -> Callable:
    """Decorator: register an engine factory `make(share_weights=, threads=)` as `name`."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")

    def register(make: Callable) -> Callable:
        if name in BACKENDS or name == AUTO:
            raise ValueError(f"backend {name!r} is registered already")
        BACKENDS[name] = BackendInfo(name, make, rank, device, target, description, verified_here)
        return make

    return register


def unregister_backend(name: str) -> None:
    """Remove a backend (for tests and notebooks)."""
    BACKENDS.pop(name, None)


def ranked() -> list[BackendInfo]:
    return sorted(BACKENDS.values(), key=lambda b: b.rank)


def backend_names() -> list[str]:
    """`--backend` choices: auto, then every backend in the order auto tries them."""
    return [AUTO, *(b.name for b in ranked())]


def backends_help() -> str:
    return "; ".join(
        f"{b.name}: {b.description}" + (" (not verified here)" if not b.verified_here else "")
        for b in ranked()
    )


def artifacts(bundle: Bundle, target: str | None) -> dict:
    """frames -> the manifest's record of the `target` artifact built for that sub-network."""
    if target is None:
        return {}
    return {
        e["frames"]: e
        for e in bundle.manifest.get("engines", [])
        if e.get("target", "trt") == target
    }


def precision_of(bundle: Bundle, backend: str) -> str:
    """The precision a backend runs this bundle at: its artifacts' (fp32 for the graphs)."""
    found = {
        e.get("precision", "fp32") for e in artifacts(bundle, BACKENDS[backend].target).values()
    }
    return "+".join(sorted(found)) or "fp32"


def pick_backend(
    name: str,
    bundle: Bundle,
    *,
    share_weights: bool = True,
    threads: int | None = None,
    precision: str | None = None,
):
    """The engine called `name`, or for `auto` the best one available here that can run this
    bundle (an engine of a build target only if the bundle holds that target's artifacts),
    at `precision` if given."""
    if name == AUTO:
        for b in ranked():
            if b.target is not None and not artifacts(bundle, b.target):
                continue
            if precision is not None and precision_of(bundle, b.name) != precision:
                continue
            engine = b.make(share_weights=share_weights, threads=threads)
            if engine.available():
                return engine
        if precision not in (None, "fp32"):
            built = [
                b.name
                for b in ranked()
                if b.target is not None
                and artifacts(bundle, b.target)
                and precision_of(bundle, b.name) == precision
            ]
            if built:
                raise FanEdgeError(
                    f"{bundle.path} has {precision} artifacts for {', '.join(built)}, which "
                    "this device cannot run (not installed, or no GPU): run them where they "
                    "were built for, or choose another --precision"
                )
            raise FanEdgeError(
                f"no engine here runs {bundle.path} in {precision}: build it first "
                f"(`fan-edge build {bundle.path} --target ...`; see `fan-edge build --help`) "
                "or choose another --precision"
            )
        raise FanEdgeError(
            "no inference engine is installed: pip install 'fan-edge[cpu]' (or [gpu] for CUDA)"
        )
    if name not in BACKENDS:
        raise FanEdgeError(f"unknown backend {name!r}: choose one of {', '.join(backend_names())}")
    info = BACKENDS[name]
    built = info.target is None or artifacts(bundle, info.target)  # else load says what to build
    if precision is not None and built and precision_of(bundle, name) != precision:
        raise FanEdgeError(
            f"backend {name} runs this bundle in {precision_of(bundle, name)}, not {precision}: "
            "drop --backend or --precision"
        )
    return info.make(share_weights=share_weights, threads=threads)
