"""TSM-ResNet (Lin et al., ICCV 2019): a 2D ResNet with a residual temporal shift per block.

Activations travel between blocks as (B, T, C, H, W); each block flattens to (B*T, C, H, W)
for its convolutions. Nothing depends on T, so the network runs at any frame count.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fan_edge.config import Check
from fan_edge.models.layers import AlterationSlot, TemporalShift
from fan_edge.models.registry import Published, register_backbone

NormLayer = Callable[[int], nn.Module]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, norm_layer: NormLayer, shift_div: int):
        super().__init__()
        cout = width * self.expansion
        self.shift = TemporalShift(shift_div)
        self.alter = AlterationSlot(cin)
        self.conv1, self.bn1 = _conv(cin, width, 3, stride), norm_layer(width)
        self.conv2, self.bn2 = _conv(width, cout, 3), norm_layer(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride, norm_layer)

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, C, H, W)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W)
        out = self.residual(self.alter(self.shift(x).flatten(0, 1)))  # (B*T, C', H', W')
        identity = x.flatten(0, 1)
        if self.downsample is not None:
            identity = self.downsample(identity)
        return self.relu(out + identity).unflatten(0, x.shape[:2])  # (B, T, C', H', W')

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, norm_layer: NormLayer, shift_div: int):
        nn.Module.__init__(self)
        cout = width * self.expansion
        self.shift = TemporalShift(shift_div)
        self.alter = AlterationSlot(cin)
        self.conv1, self.bn1 = _conv(cin, width, 1), norm_layer(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), norm_layer(width)
        self.conv3, self.bn3 = _conv(width, cout, 1), norm_layer(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride, norm_layer)

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, C, H, W)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def last_norm(self) -> nn.Module:
        return self.bn3


def _downsample(cin: int, cout: int, stride: int, norm_layer: NormLayer) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv(cin, cout, 1, stride), norm_layer(cout))


STEMS = ("imagenet", "small")


def make_stem(stem: str, channels: int, norm_layer: NormLayer) -> nn.Sequential:
    """`imagenet`: the standard 7x7/2 conv + 3x3/2 max-pool; `small`: one 3x3/2 conv, for
    32-64 px inputs."""
    if stem == "imagenet":
        return nn.Sequential(
            _conv(3, channels, 7, 2),
            norm_layer(channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    if stem == "small":
        return nn.Sequential(_conv(3, channels, 3, 2), norm_layer(channels), nn.ReLU(inplace=True))
    raise ValueError(f"unknown stem {stem!r}: use one of {', '.join(STEMS)}")


class TSMResNet(nn.Module):
    """TSM-ResNet for (B, T, 3, H, W) clips; logits are averaged over time (TSN consensus).

    `width` scales every stage's channels; `stem="small"` (3x3 stride-2 conv, no max-pool)
    suits 32-64 px inputs, `stem="imagenet"` is the standard 7x7/2 conv + max-pool.
    """

    def __init__(
        self,
        *,
        block: type[BasicBlock],
        layers: tuple[int, int, int, int],
        num_classes: int,
        width: float = 1.0,
        stem: str = "imagenet",
        shift_div: int = 8,
        dropout: float = 0.5,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        widths = [max(8, round(64 * width * 2**i)) for i in range(4)]
        self.stem = make_stem(stem, widths[0], norm_layer)
        stages, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, layers, strict=True)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, w, stride, norm_layer, shift_div))
                cin = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            # Zero-init the last norm of each residual branch: every block starts as identity.
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame features (B, T, F)."""
        x = self.stem(x.flatten(0, 1)).unflatten(0, x.shape[:2])  # (B, T, C, H', W')
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x.flatten(0, 1)).flatten(1).unflatten(0, x.shape[:2])  # (B, T, F)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, num_classes), averaged over frames."""
        return self.fc(self.dropout(features)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class ResNetArgs:
    """TSM-ResNet's own arguments (`ModelConfig.backbone`)."""

    width: float = 1.0  # channel multiplier: 16 is already 16x a ResNet's channels
    stem: str = "imagenet"
    shift_div: int = 8  # 1/shift_div of the channels shifts each way (2: all of them)

    def __post_init__(self):
        c = Check(self)
        c.real("width", lambda w: 0 < w <= 16, "in (0, 16]")
        c.choice("stem", STEMS)
        c.integer("shift_div", 2, 256)


@register_backbone(
    args=ResNetArgs,
    presets={
        "tiny": dict(input_size=32, dropout=0.2, backbone=dict(width=0.25, stem="small")),
        "r18": dict(input_size=224, backbone=dict(width=1.0, stem="imagenet")),
    },
    published={"r18": [Published(8, 224, 14.4, "ResNet (He et al., 2016), Table 1: 1.8G a frame")]},
)
def tsm_resnet18(**kwargs) -> TSMResNet:
    return TSMResNet(block=BasicBlock, layers=(2, 2, 2, 2), **kwargs)


@register_backbone(
    args=ResNetArgs,
    presets={
        "r50": dict(input_size=224, backbone=dict(width=1.0, stem="imagenet")),
        # bottleneck blocks at the tiny preset's scale: 32 px, a quarter of the channels
        "tiny50": dict(input_size=32, dropout=0.2, backbone=dict(width=0.25, stem="small")),
    },
    published={
        "r50": [
            Published(4, 224, 16.4, "FAN (Zhang et al., 2023), Table 1: TSM"),
            Published(8, 224, 32.8, "FAN, Table 1: TSM (TSM paper, Table 2: 33G)"),
            Published(16, 224, 65.5, "FAN, Table 1: TSM (TSM paper, Table 2: 65G)"),
        ]
    },
)
def tsm_resnet50(**kwargs) -> TSMResNet:
    return TSMResNet(block=Bottleneck, layers=(3, 4, 6, 3), **kwargs)
