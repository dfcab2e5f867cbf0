"""The backbone registry: the only place a backbone is named.

A backbone file registers its builder and its presets with one decorator (as timm's
`register_model` does); `build_model`, the presets, the CLI and the experiment runner read
these tables, so a new backbone is one file and one import in `fan_edge/models/__init__.py`
(or, for a backbone of your own, one import of your file before you train).

A builder takes `num_classes`, `dropout`, `width`, `stem`, `shift_div` and `norm_layer`
keywords (the `ModelConfig` fields it does not use it may take as `**unused`), declares
`AlterationSlot`s where Weight Alteration goes, and passes `(B, T, C, H, W)` between blocks;
`convert_to_fan` does the rest.
"""

from collections.abc import Callable

from fan_edge.config import PRESETS

BACKBONES: dict[str, Callable] = {}


def register_backbone(name: str | None = None, *,
                      presets: dict[str, dict] | None = None) -> Callable:  # fmt: skip
    """Decorator: register a builder under `name` (default: its function name), and each of
    `presets` (name -> ModelConfig fields) for `fan-edge train --preset`."""

    def register(builder: Callable) -> Callable:
        key = name or builder.__name__
        taken = [p for p in presets or {} if p in PRESETS]
        if key in BACKBONES or taken:
            raise ValueError(f"backbone {key!r} or preset {taken} is registered already")
        BACKBONES[key] = builder
        for preset_name, fields in (presets or {}).items():
            PRESETS[preset_name] = {"arch": key, **fields}
        return builder

    return register


def unregister_backbone(name: str) -> None:
    """Remove a backbone and its presets (for tests and notebooks)."""
    BACKBONES.pop(name, None)
    for preset_name in [p for p, fields in PRESETS.items() if fields.get("arch") == name]:
        del PRESETS[preset_name]
