"""The target registry: the only place a `fan-edge build` target is named.

A target file registers its build function with `@register_target`: its name, the folder of
its artifacts, the options it takes, whether it needs the target GPU, what it makes
and whether that was verified here. The `--target`/`--engine` help and option checks and the
dispatch of `build` are read from this table, so a new target is one file and one import in
`exporters/__init__.py` (or, for a target of your own, one import of your file first).

A build function is `build(bundle, folder, **options) -> [record, ...]`: it writes into
`folder` (a fresh one, swapped in as the bundle's `<target folder>/` when the build succeeds)
one record per sub-network, `{"frames", "file" (its name in the folder), "precision", ...}`
plus the versions of the tools that made it, and `"reads": [names]` for files of the folder
that artifact needs besides its own (one weights file several graphs share); it runs on the
device, torch-free. An `external` target writes a folder of its own instead (a Triton model
repository): `build(bundle, **options) -> path`, and the bundle is left as it is.
"""

from collections.abc import Callable
from dataclasses import dataclass

from fan_edge.errors import FanEdgeError

# Options a target may take; each is a flag of `fan-edge build` and `fan-edge export`. A
# flag (bool) is "used" when true, a valued option when given (not None).
OPTIONS = (
    "fp16",
    "int8",
    "strip",
    "calib",
    "calib_clips",
    "calib_method",
    "private",
    "val",
    "val_clips",
    "repo",
    "max_batch",
)


@dataclass(frozen=True)
class Target:
    name: str
    build: Callable  # (bundle, folder, **options) -> list of artifact records
    folder: str  # inside the bundle
    options: tuple[str, ...]
    needs_gpu: bool
    description: str
    verified_here: bool
    requires: Callable[[], object] | None  # raises a one-line install hint if missing
    check: Callable[..., None] | None  # check(fold=, **options): bad options, before any work
    external: bool = False  # writes a folder of its own (`build(bundle, **options) -> path`)


TARGETS: dict[str, Target] = {}


def register_target(
    name: str,
    *,
    description: str,
    folder: str | None = None,
    options: tuple[str, ...] = (),
    needs_gpu: bool = False,
    verified_here: bool = True,
    requires: Callable | None = None,
    check: Callable | None = None,
    external: bool = False,
) -> Callable:
    """Decorator: register `build(bundle, folder, **options)` as the target `name`."""
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown target options {unknown}: the flags are {OPTIONS}")

    def register(build: Callable) -> Callable:
        if name in TARGETS or name == "onnx":  # onnx: the bundle itself (`fan-edge export`)
            raise ValueError(f"target {name!r} is registered already")
        TARGETS[name] = Target(
            name,
            build,
            folder or name,
            tuple(options),
            needs_gpu,
            description,
            verified_here,
            requires,
            check,
            external,
        )
        return build

    return register


def unregister_target(name: str) -> None:
    """Remove a target (for tests and notebooks)."""
    TARGETS.pop(name, None)


def used(value: object) -> bool:
    return value is not None and value is not False


def get_target(name: str, flag: str = "target", **options: object) -> Target:
    """The target `name`, after checking that it takes every option used."""
    if name not in TARGETS:
        known = ", ".join(TARGETS) or "none registered"
        raise FanEdgeError(
            f"unknown {flag} {name!r}: choose one of {known} (the ONNX bundle "
            "itself is what `fan-edge export` writes)"
        )
    bad = [k for k, v in options.items() if used(v) and k not in TARGETS[name].options]
    if bad:
        raise FanEdgeError(f"--{bad[0].replace('_', '-')} is not an option of --{flag} {name}")
    return TARGETS[name]


def targets_taking(option: str) -> list[str]:
    return [t.name for t in TARGETS.values() if option in t.options]


def targets_help() -> str:
    """The `--target` / `--engine` help, from the table: what each builds, where, verified."""
    return "; ".join(
        f"{t.name}: {t.description}"
        + (" on the target GPU" if t.needs_gpu else "")
        + (" (not verified here)" if not t.verified_here else "")
        + (f" [--{', --'.join(o.replace('_', '-') for o in t.options)}]" if t.options else "")
        for t in TARGETS.values()
    )
