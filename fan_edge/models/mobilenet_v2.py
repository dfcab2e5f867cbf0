"""MobileNetV2-TSM (Sandler et al., CVPR 2018; Lin et al., ICCV 2019): the TSM authors' edge
model, the one their Jetson demo runs.

Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection). As in TSM's
MobileNetV2, the temporal shift sits at the start of the residual branch of every block that
has both an expansion and an identity shortcut, before the expand convolution; Weight
Alteration goes right after it, before that convolution, as in the ResNet blocks.
Activations travel between blocks as (B, T, C, H, W); nothing depends on T.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fan_edge.config import Check
from fan_edge.models.layers import AlterationSlot, TemporalShift
from fan_edge.models.registry import Published, register_backbone

NormLayer = Callable[[int], nn.Module]
# (expansion t, channels c, blocks n, first stride s) per stage, as in the MobileNetV2 paper
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LAST_CHANNELS = 1280


def _divisible(channels: float, by: int = 8) -> int:
    """Channels rounded to a multiple of 8 (never below 90% of the request), as torchvision's
    and TSM's MobileNetV2 round them."""
    out = max(by, int(channels + by / 2) // by * by)
    return out + by if out < 0.9 * channels else out


def _conv_norm_act(
    cin: int,
    cout: int,
    k: int,
    stride: int,
    norm_layer: NormLayer,
    groups: int = 1,
    act: bool = True,
) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), norm_layer(cout)]
    return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))


class InvertedResidual(nn.Module):
    def __init__(
        self, cin: int, cout: int, stride: int, expand: int, norm_layer: NormLayer, shift_div: int
    ):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        shifted = self.use_residual and expand != 1  # where TSM's MobileNetV2 shifts
        self.shift = TemporalShift(shift_div) if shifted else None
        self.alter = AlterationSlot(cin) if shifted else None
        layers = [_conv_norm_act(cin, hidden, 1, 1, norm_layer)] if expand != 1 else []
        layers += [
            _conv_norm_act(hidden, hidden, 3, stride, norm_layer, groups=hidden),
            _conv_norm_act(hidden, cout, 1, 1, norm_layer, act=False),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W)
        y = self.shift(x) if self.shift is not None else x
        y = y.flatten(0, 1)  # (B*T, C, H, W)
        if self.alter is not None:
            y = self.alter(y)
        y = self.conv(y)  # (B*T, C', H', W')
        if self.use_residual:
            y = y + x.flatten(0, 1)
        return y.unflatten(0, x.shape[:2])  # (B, T, C', H', W')


@dataclass(frozen=True)
class MobileNetV2Args:
    """MobileNetV2-TSM's own arguments (`ModelConfig.backbone`)."""

    width: float = 1.0  # channel multiplier of every layer but the last (as the paper's)
    shift_div: int = 8  # 1/shift_div of the channels shifts each way
    stem_stride: int = 2  # 1 keeps more resolution for small (32-64 px) inputs
    # Channels of the last 1x1 conv, the classifier's input. The paper keeps 1280 at every
    # width below 1; a tiny model trains stably at the default lr (0.1) only with fewer.
    last_channels: int = LAST_CHANNELS

    def __post_init__(self):
        c = Check(self)
        c.integer("last_channels", 8, 8192)
        c.real("width", lambda w: 0 < w <= 4, "in (0, 4]")
        c.integer("shift_div", 2, 256)
        c.integer("stem_stride", 1, 2)


class MobileNetV2TSM(nn.Module):
    """MobileNetV2 with temporal shift for (B, T, 3, H, W) clips; logits averaged over time."""

    def __init__(
        self,
        *,
        num_classes: int,
        width: float = 1.0,
        shift_div: int = 8,
        stem_stride: int = 2,
        last_channels: int = LAST_CHANNELS,
        dropout: float = 0.2,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        cin = _divisible(32 * width)
        self.stem = _conv_norm_act(3, cin, 3, stem_stride, norm_layer)
        blocks = []
        for t, c, n, s in STAGES:
            cout = _divisible(c * width)
            for i in range(n):
                blocks.append(
                    InvertedResidual(cin, cout, s if i == 0 else 1, t, norm_layer, shift_div)
                )
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.num_features = _divisible(last_channels * max(1.0, width))
        self.head_conv = _conv_norm_act(cin, self.num_features, 1, 1, norm_layer)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            # Zero-init each residual branch's last norm: every block starts as identity, which
            # keeps the default lr (0.1) stable from scratch.
            if isinstance(m, InvertedResidual) and m.use_residual:
                nn.init.zeros_(m.conv[-1][1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame features (B, T, F)."""
        clips = x.shape[:2]
        x = self.stem(x.flatten(0, 1)).unflatten(0, clips)  # (B, T, C, H', W')
        x = self.head_conv(self.blocks(x).flatten(0, 1))  # (B*T, F, h, w)
        return self.pool(x).flatten(1).unflatten(0, clips)  # (B, T, F)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, num_classes), averaged over frames (TSN consensus)."""
        return self.fc(self.dropout(features)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_backbone(
    args=MobileNetV2Args,
    presets={
        "mbv2": dict(input_size=224, dropout=0.2),
        # the tiny preset's scale: 32 px, a quarter of the channels, the stem keeps resolution
        "tiny-mbv2": dict(
            input_size=32,
            dropout=0.2,
            backbone=dict(width=0.25, stem_stride=1, last_channels=128),
        ),
    },
    published={
        "mbv2": [
            Published(8, 224, 2.4, "MobileNetV2 (Sandler et al., 2018), Table 4: 300M a frame")
        ]
    },
)
def mobilenet_v2_tsm(**kwargs) -> MobileNetV2TSM:
    return MobileNetV2TSM(**kwargs)
