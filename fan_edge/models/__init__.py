"""Models: layers, the generic conversion to a FAN, and the registered backbones.

A backbone is one file that registers itself (`@register_backbone`, registry.py) and one
import below."""

from fan_edge.config import ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.models import tsm_resnet  # noqa: F401  (registers its backbones)
from fan_edge.models.fan import FrameAdaptiveNet, convert_to_fan
from fan_edge.models.layers import (
    AlterationSlot,
    Specialized,
    SpecializedNorm,
    TemporalShift,
    WeightAlteration,
)
from fan_edge.models.registry import BACKBONES, register_backbone, unregister_backbone


def build_model(cfg: ModelConfig) -> FrameAdaptiveNet:
    """Build the backbone named by `cfg.arch` and convert it into a FAN over `cfg.frames`."""
    if cfg.arch not in BACKBONES:
        raise FanEdgeError(f"unknown arch {cfg.arch!r}: choose one of {', '.join(BACKBONES)}")
    backbone = BACKBONES[cfg.arch](
        num_classes=cfg.num_classes,
        width=cfg.width,
        stem=cfg.stem,
        shift_div=cfg.shift_div,
        dropout=cfg.dropout,
    )
    return convert_to_fan(
        backbone,
        cfg.frames,
        specialize_norm=cfg.specialize_norm,
        weight_alteration=cfg.weight_alteration,
    )


__all__ = [
    "BACKBONES",
    "AlterationSlot",
    "FrameAdaptiveNet",
    "Specialized",
    "SpecializedNorm",
    "TemporalShift",
    "WeightAlteration",
    "build_model",
    "convert_to_fan",
    "register_backbone",
    "unregister_backbone",
]
