"""Models: layers, the generic conversion to a FAN, and the registered backbones.

A backbone is one file that registers itself (`@register_backbone`, registry.py) and one
import below."""

from fan_edge.config import ModelConfig
from fan_edge.models import (  # noqa: F401  (register their backbones)
    mobilenet_v2,
    slowfast,
    tea,
    tsm_resnet,
    uniformer,
)
from fan_edge.models.fan import FrameAdaptiveNet, convert_to_fan
from fan_edge.models.layers import (
    AlterationSlot,
    Specialized,
    SpecializedNorm,
    TemporalShift,
    WeightAlteration,
)
from fan_edge.models.registry import BACKBONES, register_backbone, resolve, unregister_backbone


def build_model(cfg: ModelConfig) -> FrameAdaptiveNet:
    """Build the backbone named by `cfg.arch` with its own arguments (`cfg.backbone`) and
    convert it into a FAN over `cfg.frames`."""
    cfg = resolve(cfg)
    backbone = BACKBONES[cfg.arch](num_classes=cfg.num_classes, dropout=cfg.dropout, **cfg.backbone)
    return convert_to_fan(
        backbone,
        cfg.frames,
        specialize_norm=cfg.specialize_norm,
        weight_alteration=cfg.weight_alteration,
        alteration_init=cfg.alteration_init,
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
    "resolve",
    "unregister_backbone",
]
