"""The backbone registry: the only place a backbone is named.

A backbone file registers its builder, its presets and its own arguments with one decorator
(as timm's `register_model` does); `build_model`, the presets, the CLI and the experiment
runner read these tables, so a new backbone is one file and one import in
`fan_edge/models/__init__.py` (or, for a backbone of your own, one import of your file
before you train).

A builder takes `num_classes`, `dropout` and `norm_layer` keywords plus its own arguments,
declares `AlterationSlot`s where Weight Alteration goes, and passes `(B, T, C, H, W)`
between blocks; `convert_to_fan` does the rest. Its own arguments (a ResNet's width, stem,
shift) live in `ModelConfig.backbone`: `args=` is a frozen dataclass that gives their
defaults and checks them (none: the builder takes no arguments of its own).
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from fan_edge.config import LEGACY_BACKBONE_DEFAULTS, PRESETS, ModelConfig
from fan_edge.errors import FanEdgeError

BACKBONES: dict[str, Callable] = {}
ARGS: dict[str, type | None] = {}  # backbone -> the dataclass of its own arguments


@dataclass(frozen=True)
class Published:
    """A cost its paper publishes for a preset: GFLOPs (multiply-adds) of one view."""

    frames: int
    size: int
    gflops: float
    source: str  # paper and table


PUBLISHED: dict[str, list[Published]] = {}  # preset -> the costs its papers publish


def register_backbone(
    name: str | None = None,
    *,
    presets: dict[str, dict] | None = None,
    args: type | None = None,
    published: dict[str, list[Published]] | None = None,
) -> Callable:
    """Decorator: register a builder under `name` (default: its function name), its own
    arguments' dataclass `args`, each of `presets` (name -> ModelConfig fields, the
    backbone's arguments under "backbone") for `fan-edge train --preset`, and the costs the
    papers publish for them (`fan-edge flops` shows them; a test holds us to 2%)."""

    def register(builder: Callable) -> Callable:
        key = name or builder.__name__
        taken = [p for p in presets or {} if p in PRESETS]
        if key in BACKBONES or taken:
            raise ValueError(f"backbone {key!r} or preset {taken} is registered already")
        unknown = sorted(set(published or {}) - set(presets or {}))
        if unknown:
            raise ValueError(f"published costs for presets {unknown} this backbone lacks")
        BACKBONES[key], ARGS[key] = builder, args
        for preset_name, fields in (presets or {}).items():
            PRESETS[preset_name] = {"arch": key, **fields}
        PUBLISHED.update(published or {})
        return builder

    return register


def unregister_backbone(name: str) -> None:
    """Remove a backbone and its presets (for tests and notebooks)."""
    BACKBONES.pop(name, None)
    ARGS.pop(name, None)
    for preset_name in [p for p, fields in PRESETS.items() if fields.get("arch") == name]:
        del PRESETS[preset_name]
        PUBLISHED.pop(preset_name, None)


def resolve(cfg: ModelConfig) -> ModelConfig:
    """`cfg` with its backbone registered and its backbone arguments checked and completed
    with their defaults (so two configs that build the same model compare equal)."""
    import fan_edge.models  # noqa: F401  (the built-in backbones register themselves)

    if cfg.arch not in BACKBONES:
        raise FanEdgeError(
            f"arch must be one of the registered backbones "
            f"({', '.join(BACKBONES)}), got {cfg.arch!r} (a backbone of your "
            "own: import its file first)"
        )
    spec = ARGS[cfg.arch]
    known = {f.name for f in dataclasses.fields(spec)} if spec else set()
    # The first checkpoint format stored a ResNet's width, stem and shift_div for every
    # backbone: where this one takes no such argument and the value is that default, it was
    # never more than a default, and goes.
    stale = [
        k
        for k, v in LEGACY_BACKBONE_DEFAULTS.items()
        if k not in known and cfg.backbone.get(k, object()) == v
    ]
    if stale:
        cfg = dataclasses.replace(
            cfg, backbone={k: v for k, v in cfg.backbone.items() if k not in stale}
        )
    if spec is None:
        if cfg.backbone:
            raise FanEdgeError(
                f"backbone: {cfg.arch} takes no arguments of its own, got {', '.join(cfg.backbone)}"
            )
        return cfg
    unknown = sorted(set(cfg.backbone) - known)
    if unknown:
        raise FanEdgeError(
            f"backbone: {cfg.arch} has no argument {unknown[0]!r} (it takes "
            f"{', '.join(sorted(known))})"
        )
    try:
        args = spec(**cfg.backbone)
    except FanEdgeError as e:
        raise FanEdgeError(f"backbone: {e}") from None
    return dataclasses.replace(cfg, backbone=dataclasses.asdict(args))
