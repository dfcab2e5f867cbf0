"""torchvision's ImageNet ResNets (`resnet50-*.pth`), the start the paper's models train from:
a standard model whose 1000-class classifier `fan-edge train --init` replaces."""

from fan_edge.imports.registry import register_source
from fan_edge.imports.resnet import standard


@register_source("torchvision", description="torchvision ImageNet ResNet-18/50 weights")
def convert(state: dict, filename: str):
    notes = [
        "ImageNet weights: `fan-edge train --init` this checkpoint to train on your classes "
        "(the classifier starts fresh when the class count differs)"
    ]
    return standard(state, "torchvision", (8,), notes)
