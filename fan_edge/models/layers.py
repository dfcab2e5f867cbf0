"""The building blocks of a Frame Adaptive Network.

Tensor layout at every public boundary is (B, T, C, H, W); 2D layers see (B*T, C, H, W).
"""

import copy

import torch
from torch import nn


class TemporalShift(nn.Module):
    """Shift 1/`fold_div` of the channels one frame back and 1/`fold_div` one frame forward.

    Takes (B, T, C, H, W), so the frame count is always the input's own: the shift can never
    mix frames of two different clips (the reference implementation's bug, which reshaped
    4- and 8-frame inputs as if they had 16 frames). Written with slices and `cat` rather than
    in-place assignment so that it traces and exports to ONNX exactly.
    """

    def __init__(self, fold_div: int = 8):
        super().__init__()
        self.fold_div = fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"TemporalShift expects (B, T, C, H, W), got shape {tuple(x.shape)}")
        fold = x.shape[2] // self.fold_div
        zeros = torch.zeros_like(x[:, :1, :fold])  # (B, 1, fold, H, W)
        from_future = torch.cat([x[:, 1:, :fold], zeros], dim=1)
        from_past = torch.cat([zeros, x[:, :-1, fold : 2 * fold]], dim=1)
        return torch.cat([from_future, from_past, x[:, :, 2 * fold :]], dim=2)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}"


class WeightAlteration(nn.Module):
    """x + dw(x), with dw a 1x1 depthwise convolution (a per-channel scale, no bias).

    Placed right before a convolution W, it makes that convolution act as W * (1 + a): a
    private version of the shared weight for one sub-network. Initialised near zero (std 1e-3,
    `init="small"`) so every sub-network starts as the shared network; `init="kaiming"` is the
    reference code's effective init (its backbone's kaiming init overwrote the small one).
    """

    INITS = ("small", "kaiming")

    def __init__(self, channels: int, dims: int = 2, init: str = "small"):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.dw = conv(channels, channels, kernel_size=1, groups=channels, bias=False)
        if init == "small":
            nn.init.normal_(self.dw.weight, std=1e-3)
        elif init == "kaiming":  # the reference code's effective init: std sqrt(2 / C)
            nn.init.kaiming_normal_(self.dw.weight, mode="fan_out", nonlinearity="relu")
        else:
            raise ValueError(f"unknown alteration init {init!r}: use one of {self.INITS}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dw(x)

    def scale(self) -> torch.Tensor:
        """The per-channel factor (1 + a) this layer applies, shape (C,)."""
        return 1.0 + self.dw.weight.flatten()


class AlterationSlot(nn.Identity):
    """Marks where a backbone wants a Weight Alteration (right before a block's first conv).

    An identity in the plain backbone; `convert_to_fan` replaces it with K alterations.
    Declaring the slot is all a new backbone has to do to support Weight Alteration.
    """

    def __init__(self, channels: int, dims: int = 2):
        super().__init__()
        self.channels = channels
        self.dims = dims


class Specialized(nn.Module):
    """K private copies of a layer, one per sub-network.

    It has no forward of its own: the active copy is chosen explicitly by building the
    sub-network (`FrameAdaptiveNet.subnetwork(i)`), which puts `branches[i]` in its place.
    There is no global "current frame count" that a caller could forget to set.
    """

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    @classmethod
    def copies(cls, template: nn.Module, k: int) -> "Specialized":
        return cls([copy.deepcopy(template) for _ in range(k)])

    def specialize(self, index: int) -> nn.Module:
        return self.branches[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            f"{type(self).__name__} holds {len(self.branches)} private copies; run the model "
            "through FrameAdaptiveNet (or .subnetwork(i)) so one copy is chosen"
        )


class SpecializedNorm(Specialized):
    """Specialized Normalization: private affine parameters and running statistics."""

    NORM_TYPES = (
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.SyncBatchNorm,
    )

    @classmethod
    def copies(cls, template: nn.Module, k: int) -> "SpecializedNorm":
        if not isinstance(template, cls.NORM_TYPES):
            raise TypeError(f"SpecializedNorm wraps normalization layers, got {type(template)}")
        return super().copies(template, k)
