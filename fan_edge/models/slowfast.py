"""SlowFast (Feichtenhofer et al., ICCV 2019), ResNet-50: a Slow pathway at a low frame rate
and full width, a Fast pathway at `alpha` times the frame rate and 1/`beta_inv` of the width,
joined by lateral connections (Fast -> Slow, a time-strided 5x1x1 conv) after the stem and
after res2, res3 and res4.

**One clip in, the graph splits it.** The network takes the Fast pathway's frames (B, T, 3,
H, W), like every backbone here, and picks the Slow pathway's ceil(T / alpha) frames itself
(evenly spaced, as PySlowFast's PackPathway does). So a bundle's frame count is the number of
frames the graph takes, which is what the runtime decodes, budgets and prices; nothing in the
manifest, the runtime or the serving path needs a second input. The FAN paper's 16/32/64
frames are the Fast pathway's (Slow: 2/4/8 at alpha = 8), and the presets train those.

For a FAN every BatchNorm is specialized and every convolution shared, as for the 2D
backbones; Weight Alteration sits before each bottleneck's first convolution (the FAN
authors' SlowFast code has one per block as well).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fan_edge.config import Check
from fan_edge.models.layers import AlterationSlot
from fan_edge.models.registry import Published, register_backbone

NormLayer = Callable[[int], nn.Module]
# Temporal kernel of (stem, res2, res3, res4, res5), per pathway, as in the paper's Table 1:
# the Slow pathway is non-degenerate in time only in res4 and res5.
SLOW_KT, FAST_KT = (1, 1, 1, 3, 3), (5, 3, 3, 3, 3)


def _conv(cin: int, cout: int, k: tuple, stride: tuple = (1, 1, 1)) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, k, stride, tuple(x // 2 for x in k), bias=False)


class Bottleneck3d(nn.Module):
    """kt x 1 x 1 -> 1 x 3 x 3 (spatial stride) -> 1 x 1 x 1, with a residual. (B, C, T, H, W)."""

    def __init__(self, cin: int, inner: int, cout: int, kt: int, stride: int, norm: NormLayer):
        super().__init__()
        self.alter = AlterationSlot(cin, dims=3)
        self.conv1, self.bn1 = _conv(cin, inner, (kt, 1, 1)), norm(inner)
        self.conv2, self.bn2 = _conv(inner, inner, (1, 3, 3), (1, stride, stride)), norm(inner)
        self.conv3, self.bn3 = _conv(inner, cout, (1, 1, 1)), norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                _conv(cin, cout, (1, 1, 1), (1, stride, stride)), norm(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(self.alter(x))))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


def _stage(cin: int, inner: int, cout: int, n: int, kt: int, stride: int, norm) -> nn.Sequential:
    return nn.Sequential(
        *(
            Bottleneck3d(cin if i == 0 else cout, inner, cout, kt, stride if i == 0 else 1, norm)
            for i in range(n)
        )
    )


class Lateral(nn.Module):
    """Fast -> Slow: a 5x1x1 conv with time stride alpha, to 2x the Fast channels."""

    def __init__(self, fast: int, alpha: int, norm: NormLayer):
        super().__init__()
        self.conv = nn.Conv3d(fast, 2 * fast, (5, 1, 1), (alpha, 1, 1), (2, 0, 0), bias=False)
        self.bn, self.relu = norm(2 * fast), nn.ReLU(inplace=True)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.relu(self.bn(self.conv(fast)))], dim=1)


def slow_indices(frames: int, alpha: int) -> list[int]:
    """The Slow pathway's frames: ceil(T / alpha) of them, evenly spaced from the first to
    the last (PySlowFast's rule; its count also matches the lateral conv's output)."""
    n = (frames - 1) // alpha + 1
    return [i * (frames - 1) // (n - 1) for i in range(n)] if n > 1 else [0]


class SlowFast(nn.Module):
    """SlowFast ResNet for (B, T, 3, H, W) clips of the Fast pathway's frames."""

    def __init__(
        self,
        *,
        num_classes: int,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        width: float = 1.0,
        alpha: int = 8,
        beta_inv: int = 8,
        dropout: float = 0.5,
        norm_layer: NormLayer = nn.BatchNorm3d,
    ):
        super().__init__()
        self.alpha = alpha
        base = max(8, round(64 * width))
        slow, fast = base, max(1, base // beta_inv)
        self.slow_stem = nn.Sequential(
            _conv(3, slow, (SLOW_KT[0], 7, 7), (1, 2, 2)), norm_layer(slow), nn.ReLU(inplace=True)
        )
        self.fast_stem = nn.Sequential(
            _conv(3, fast, (FAST_KT[0], 7, 7), (1, 2, 2)), norm_layer(fast), nn.ReLU(inplace=True)
        )
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        laterals, slow_stages, fast_stages = [], [], []
        s_in, f_in = slow, fast
        for i, n in enumerate(layers):
            laterals.append(Lateral(f_in, alpha, norm_layer))
            s_inner, f_inner = base * 2**i, max(1, base * 2**i // beta_inv)
            stride = 1 if i == 0 else 2
            s_out, f_out = 4 * s_inner, 4 * f_inner
            slow_stages.append(
                _stage(s_in + 2 * f_in, s_inner, s_out, n, SLOW_KT[i + 1], stride, norm_layer)
            )
            fast_stages.append(_stage(f_in, f_inner, f_out, n, FAST_KT[i + 1], stride, norm_layer))
            s_in, f_in = s_out, f_out
        self.laterals = nn.ModuleList(laterals)  # after the stem, res2, res3 and res4
        self.slow_stages, self.fast_stages = nn.ModuleList(slow_stages), nn.ModuleList(fast_stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(s_in + f_in, num_classes)
        self.num_features = s_in + f_in
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, Bottleneck3d):  # every block starts as identity
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W), the Fast frames
        fast = x.transpose(1, 2)  # (B, 3, T, H, W)
        slow = fast[:, :, slow_indices(x.shape[1], self.alpha)]
        slow, fast = self.pool(self.slow_stem(slow)), self.pool(self.fast_stem(fast))
        for lateral, s, f in zip(self.laterals, self.slow_stages, self.fast_stages, strict=True):
            slow, fast = s(lateral(slow, fast)), f(fast)
        pooled = torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)
        return self.fc(self.dropout(pooled))


@dataclass(frozen=True)
class SlowFastArgs:
    """SlowFast's own arguments (`ModelConfig.backbone`)."""

    width: float = 1.0  # channel multiplier of both pathways
    alpha: int = 8  # Fast frames per Slow frame
    beta_inv: int = 8  # Slow channels per Fast channel

    def __post_init__(self):
        c = Check(self)
        c.real("width", lambda w: 0 < w <= 16, "in (0, 16]")
        c.integer("alpha", 1, 64)
        c.integer("beta_inv", 1, 64)


@register_backbone(
    args=SlowFastArgs,
    presets={
        # the FAN paper's frame counts are the Fast pathway's: 16/32/64 (Slow 2/4/8)
        "slowfast-r50": dict(input_size=224, dropout=0.5, frames=(16, 32, 64)),
        # the tiny preset's scale: 32 px, a quarter of the channels, alpha 4 so that the
        # synthetic benchmark's 4-16 frames give the Slow pathway 1-4
        "tiny-slowfast": dict(
            input_size=32, dropout=0.2, backbone=dict(width=0.25, alpha=4, beta_inv=4)
        ),
    },
    # the paper's views are 256 px (the FAN paper evaluates SlowFast at 256 too)
    published={
        "slowfast-r50": [
            Published(32, 256, 36.1, "SlowFast (Feichtenhofer et al., ICCV 2019), Table 2: 4x16")
        ]
    },
)
def slowfast_r50(**kwargs) -> SlowFast:
    return SlowFast(layers=(3, 4, 6, 3), **kwargs)
