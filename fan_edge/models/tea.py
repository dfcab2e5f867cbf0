"""TEA (Li et al., CVPR 2020): Temporal Excitation and Aggregation on a Res2Net-50 (26w x 4s).

Each bottleneck runs 1x1 conv -> Motion Excitation -> Multiple Temporal Aggregation -> 1x1
conv, with the residual shortcut of a ResNet:
- **Motion Excitation (ME)**: squeeze the channels (1x1 conv, /`reduction`), take the
  difference between a 3x3 depthwise conv of frame t+1 and frame t (zero for the last frame),
  pool it, expand it back (1x1 conv) and excite the block's features with
  `x * (1 + sigmoid(.) - 0.5)`.
- **Multiple Temporal Aggregation (MTA)**: the Res2Net split into `scale` groups; every group
  gets a channel-wise temporal convolution (kernel 3 over frames; the last group's starts as
  the temporal shift, the others' as identity) and all but the last a 3x3 spatial conv, each
  group adding the previous group's output (hierarchical residuals) except in a stage's
  first block.

For a FAN every normalization (the block's and ME's) is specialized and every convolution is
shared, as the FAN paper says of TEA. The official FAN code for TEA has no Weight Alteration;
this file declares the slot where TSM-ResNet has it (before the block's first conv), so
`--no-weight-alteration` gives the reference's TEA-FAN. Activations travel between blocks as
(B, T, C, H, W); the temporal ops take T from the input, so any frame count runs.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fan_edge.config import Check
from fan_edge.models.layers import AlterationSlot
from fan_edge.models.registry import Published, register_backbone
from fan_edge.models.tsm_resnet import STEMS, make_stem

NormLayer = Callable[[int], nn.Module]


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)


class MotionExcitation(nn.Module):
    """Excites the channels that change between neighbouring frames. (B, T, C, H, W) in and out."""

    def __init__(self, channels: int, reduction: int, norm_layer: NormLayer):
        super().__init__()
        squeezed = max(1, channels // reduction)
        self.squeeze, self.bn1 = _conv(channels, squeezed, 1), norm_layer(squeezed)
        self.transform = _conv(squeezed, squeezed, 3, groups=squeezed)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.expand, self.bn3 = _conv(squeezed, channels, 1), norm_layer(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clips = x.shape[:2]
        s = self.bn1(self.squeeze(x.flatten(0, 1)))  # (B*T, C/r, H, W)
        frames = s.unflatten(0, clips)
        later = self.transform(s).unflatten(0, clips)[:, 1:]  # frames 1..T-1, transformed
        diff = torch.cat([later - frames[:, :-1], torch.zeros_like(frames[:, :1])], dim=1)
        gate = torch.sigmoid(self.bn3(self.expand(self.pool(diff.flatten(0, 1))))) - 0.5
        return x + x * gate.unflatten(0, clips)  # gate: (B*T, C, 1, 1), zero motion at T


class TemporalConv(nn.Module):
    """Channel-wise convolution over frames (kernel 3, zero padding): a learnable temporal
    shift. Starts as the shift (`shift=True`: half the channels from the next frame, half from
    the previous, as TEA's last group) or as identity. (B, T, C, H, W) in and out.

    A 2D convolution over (frames, pixels) with a (3, 1) kernel: the same op as TEA's Conv1d
    over (B*H*W, C, T), without moving the pixels into the batch."""

    def __init__(self, channels: int, shift: bool):
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(
            channels, channels, (3, 1), padding=(1, 0), groups=channels, bias=False
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        w = torch.zeros_like(self.conv.weight)  # (C, 1, 3, 1): taps at t-1, t, t+1
        c, fold = w.shape[0], w.shape[0] // 2
        if self.shift:
            w[:fold, 0, 2] = 1  # from the next frame
            w[fold : 2 * fold, 0, 0] = 1  # from the previous frame
            w[2 * fold : c, 0, 1] = 1
        else:
            w[:, 0, 1] = 1
        with torch.no_grad():
            self.conv.weight.copy_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.conv(x.transpose(1, 2).flatten(3))  # (B, C, T, H*W)
        return y.unflatten(3, (h, w)).transpose(1, 2)


class TEABottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        norm_layer: NormLayer,
        *,
        base_width: int,
        scale: int,
        reduction: int,
        first: bool,
    ):
        super().__init__()
        self.width = max(1, math.floor(planes * base_width / 64))
        self.scale, self.first = scale, first
        inner, cout = self.width * scale, planes * self.expansion
        self.alter = AlterationSlot(cin)
        self.conv1, self.bn1 = _conv(cin, inner, 1), norm_layer(inner)
        self.me = MotionExcitation(inner, reduction, norm_layer)
        self.temporal = nn.ModuleList(
            TemporalConv(self.width, shift=i == scale - 1) for i in range(scale)
        )
        self.convs = nn.ModuleList(
            _conv(self.width, self.width, 3, stride) for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(norm_layer(self.width) for _ in range(scale - 1))
        self.pool = nn.AvgPool2d(3, stride, padding=1) if first else None
        self.conv3, self.bn3 = _conv(inner, cout, 1), norm_layer(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), norm_layer(cout))

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """MTA: (B, T, scale*width, H, W) -> (B*T, scale*width, H', W')."""
        clips, groups = x.shape[:2], x.split(self.width, dim=2)
        outs, g = [], None
        for i, conv in enumerate(self.convs):
            g = groups[i] if g is None or self.first else g + groups[i]
            g = self.temporal[i](g).flatten(0, 1)
            g = self.relu(self.bns[i](conv(g))).unflatten(0, clips)
            outs.append(g.flatten(0, 1))
        last = self.temporal[-1](groups[-1]).flatten(0, 1)
        return torch.cat([*outs, self.pool(last) if self.pool is not None else last], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W)
        clips, flat = x.shape[:2], x.flatten(0, 1)
        out = self.relu(self.bn1(self.conv1(self.alter(flat)))).unflatten(0, clips)
        out = self.bn3(self.conv3(self.aggregate(self.me(out))))
        identity = self.downsample(flat) if self.downsample is not None else flat
        return self.relu(out + identity).unflatten(0, clips)


class TEANet(nn.Module):
    """TEA-ResNet for (B, T, 3, H, W) clips; logits averaged over time (TSN consensus)."""

    def __init__(
        self,
        *,
        num_classes: int,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        width: float = 1.0,
        stem: str = "imagenet",
        base_width: int = 26,
        scale: int = 4,
        reduction: int = 16,
        dropout: float = 0.5,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        planes = [max(8, round(64 * width * 2**i)) for i in range(4)]
        self.stem = make_stem(stem, planes[0], norm_layer)
        stages, cin = [], planes[0]
        for i, (p, n) in enumerate(zip(planes, layers, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(
                    TEABottleneck(
                        cin,
                        p,
                        2 if (i > 0 and j == 0) else 1,
                        norm_layer,
                        base_width=base_width,
                        scale=scale,
                        reduction=reduction,
                        first=j == 0,
                    )
                )
                cin = p * TEABottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, TemporalConv):  # back to their shift/identity start
                m.reset_parameters()
            elif isinstance(m, TEABottleneck):  # every block starts as identity
                nn.init.zeros_(m.bn3.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame features (B, T, F)."""
        x = self.stem(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x.flatten(0, 1)).flatten(1).unflatten(0, x.shape[:2])

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, num_classes), averaged over frames."""
        return self.fc(self.dropout(features)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class TEAArgs:
    """TEA's own arguments (`ModelConfig.backbone`)."""

    layers: tuple[int, ...] = (3, 4, 6, 3)  # blocks per stage (ResNet-50's)
    width: float = 1.0  # channel multiplier of every stage
    stem: str = "imagenet"
    base_width: int = 26  # Res2Net's width of one group at 64 planes
    scale: int = 4  # Res2Net's groups per block (MTA's temporal scales)
    reduction: int = 16  # ME's channel squeeze

    def __post_init__(self):
        c = Check(self)
        c.integers("layers", 4, 1, 64)
        c.real("width", lambda w: 0 < w <= 16, "in (0, 16]")
        c.choice("stem", STEMS)
        c.integer("base_width", 1, 1024)
        c.integer("scale", 2, 16)
        c.integer("reduction", 1, 1024)


@register_backbone(
    args=TEAArgs,
    presets={
        "tea50": dict(input_size=224, dropout=0.5),
        # the tiny preset's scale: 32 px, a quarter of the channels, ResNet-18's depth (as
        # `tiny`), a smaller squeeze
        "tiny-tea": dict(
            input_size=32,
            dropout=0.2,
            backbone=dict(layers=(2, 2, 2, 2), width=0.25, stem="small", reduction=4),
        ),
    },
    published={
        "tea50": [
            Published(8, 224, 35.0, "TEA (Li et al., CVPR 2020), Table 2"),
            Published(16, 224, 70.0, "TEA (Li et al., CVPR 2020), Table 2"),
        ]
    },
)
def tea(**kwargs) -> TEANet:  # Res2Net-50 unless `layers` says otherwise
    return TEANet(**kwargs)
