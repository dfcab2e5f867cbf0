"""UniFormer (Li et al., ICLR 2022) for video: convolution in the shallow stages, global
self-attention in the deep ones.

Four stages, each opened by a patch embedding (a strided Conv3d and a LayerNorm over channels;
the first one also halves the frames: kernel 3, stride 2 in time):
- stages 1-2, **CBlock** (local relation aggregation): a 3x3x3 depthwise position encoding,
  then BatchNorm -> 1x1x1 -> 5x5x5 depthwise -> 1x1x1, then BatchNorm -> MLP of 1x1x1 convs;
- stages 3-4, **SABlock** (global relation aggregation): the same position encoding, then
  LayerNorm -> multi-head self-attention over all T*H*W tokens, then LayerNorm -> MLP.
The head pools every token after a final BatchNorm (no per-frame consensus: the network is
3D throughout).

For a FAN every BatchNorm and LayerNorm is specialized and every convolution and linear layer
is shared. Weight Alteration goes where the FAN authors' UniFormer code puts it: at the start
of every block, a per-channel scale of the block's input (B, C, T, H, W), which both the
position encoding and the residual stream see. The network takes (B, T, 3, H, W) like every
backbone here and runs at any frame count.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fan_edge.config import Check
from fan_edge.models.layers import AlterationSlot
from fan_edge.models.registry import Published, register_backbone


def _conv3d(cin: int, cout: int, k: tuple, stride: tuple = (1, 1, 1), groups: int = 1):
    """A Conv3d with bias (UniFormer's convs have one) padded to keep the size: no padding
    where kernel and stride are equal (patches)."""
    padding = tuple(0 if s == kk else kk // 2 for kk, s in zip(k, stride, strict=True))
    return nn.Conv3d(cin, cout, k, stride, padding, groups=groups)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability p."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class ChannelsLast(nn.Module):
    """Apply a channels-last layer (a LayerNorm) to (B, C, T, H, W)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class PatchEmbed(nn.Module):
    """A strided Conv3d (non-overlapping in space) and a LayerNorm over channels."""

    def __init__(self, cin: int, cout: int, patch: int, frames_kernel: int, frames_stride: int):
        super().__init__()
        k, s = (frames_kernel, patch, patch), (frames_stride, patch, patch)
        self.proj = _conv3d(cin, cout, k, s)
        self.norm = ChannelsLast(nn.LayerNorm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class CBlock(nn.Module):
    """Local relation aggregation: depthwise 5x5x5 between 1x1x1 convs. (B, C, T, H, W)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.alter = AlterationSlot(dim, dims=3)
        self.pos_embed = _conv3d(dim, dim, (3, 3, 3), groups=dim)
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = _conv3d(dim, dim, (1, 1, 1))
        self.attn = _conv3d(dim, dim, (5, 5, 5), groups=dim)
        self.conv2 = _conv3d(dim, dim, (1, 1, 1))
        self.norm2 = nn.BatchNorm3d(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            _conv3d(dim, hidden, (1, 1, 1)), nn.GELU(), _conv3d(hidden, dim, (1, 1, 1))
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.alter(x)
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C)."""

    def __init__(self, dim: int, head_dim: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = max(1, dim // head_dim)
        self.scale = (dim // self.heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SABlock(nn.Module):
    """Global relation aggregation: self-attention over every T*H*W token. (B, C, T, H, W)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, head_dim: int):
        super().__init__()
        self.alter = AlterationSlot(dim, dims=3)
        self.pos_embed = _conv3d(dim, dim, (3, 3, 3), groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.alter(x)
        x = x + self.pos_embed(x)
        shape = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, T*H*W, C)
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(shape)


class UniFormer(nn.Module):
    """UniFormer for (B, T, 3, H, W) clips."""

    def __init__(
        self,
        *,
        num_classes: int,
        depth: tuple[int, ...] = (3, 4, 8, 3),
        dims: tuple[int, ...] = (64, 128, 320, 512),
        head_dim: int = 64,
        mlp_ratio: float = 4.0,
        patch: int = 4,
        drop_path: float = 0.1,
        dropout: float = 0.5,
        norm_layer: Callable | None = None,  # unused: the blocks choose BatchNorm or LayerNorm
    ):
        super().__init__()
        total = sum(depth)  # stochastic depth grows linearly from 0 to drop_path
        rates = [drop_path * i / max(1, total - 1) for i in range(total)]
        stages, cin, r = [], 3, 0
        for i, (n, dim) in enumerate(zip(depth, dims, strict=True)):
            # the first embedding takes patch x patch pixels and halves the frames
            embed = PatchEmbed(cin, dim, patch, 3, 2) if i == 0 else PatchEmbed(cin, dim, 2, 1, 1)
            blocks = [
                CBlock(dim, mlp_ratio, rates[r + j])
                if i < 2
                else SABlock(dim, mlp_ratio, rates[r + j], head_dim)
                for j in range(n)
            ]
            stages.append(nn.Sequential(embed, *blocks))
            cin, r = dim, r + n
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm3d(cin)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W)
        x = self.norm(self.stages(x.transpose(1, 2)))  # (B, C, T', H', W')
        return self.head(self.dropout(x.mean(dim=(2, 3, 4))))


@dataclass(frozen=True)
class UniFormerArgs:
    """UniFormer's own arguments (`ModelConfig.backbone`); the defaults are UniFormer-S."""

    depth: tuple[int, ...] = (3, 4, 8, 3)  # blocks per stage: 2 convolutional, 2 attention
    dims: tuple[int, ...] = (64, 128, 320, 512)
    head_dim: int = 64
    mlp_ratio: float = 4.0
    patch: int = 4  # pixels per token side after the first embedding
    drop_path: float = 0.1

    def __post_init__(self):
        c = Check(self)
        c.integers("depth", 4, 1, 64)
        c.integers("dims", 4, 1, 4096)
        c.integer("head_dim", 1, 4096)
        c.real("mlp_ratio", lambda r: 0 < r <= 16, "in (0, 16]")
        c.integer("patch", 1, 32)
        c.real("drop_path", lambda p: 0 <= p < 1, "in [0, 1)")


@register_backbone(
    args=UniFormerArgs,
    presets={
        "uniformer-s": dict(input_size=224, dropout=0.5),
        # the tiny preset's scale: 32 px, 2 px patches, a quarter of the channels, one block
        # per stage but two in the first attention stage
        "tiny-uniformer": dict(
            input_size=32,
            dropout=0.2,
            backbone=dict(
                depth=(1, 1, 2, 1), dims=(16, 32, 80, 128), head_dim=16, patch=2, drop_path=0.0
            ),
        ),
    },
    published={
        "uniformer-s": [
            Published(
                16, 224, 41.8, "UniFormer (Li et al., ICLR 2022), Table: S 16x4, 167G / 4 views"
            )
        ]
    },
)
def uniformer(**kwargs) -> UniFormer:
    return UniFormer(**kwargs)
