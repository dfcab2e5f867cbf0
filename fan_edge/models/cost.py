"""Parameters and GFLOPs per sub-network, with PyTorch's own FLOP counter.

The paper counts one multiply-add as one FLOP; `FlopCounterMode` counts two, so we halve.
"""

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from fan_edge.models.fan import FrameAdaptiveNet


@dataclass(frozen=True)
class SubnetCost:
    frames: int
    gflops: float  # multiply-adds, in billions, for one clip
    params: int  # parameters this sub-network uses (shared + its own)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def subnet_costs(
    model: FrameAdaptiveNet, input_size: int, frames: list[int] | None = None
) -> list[SubnetCost]:
    """Cost of one clip at each frame count in `frames` (default: the trained ones). The
    model may live on the meta device: the count needs shapes only."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    out = []
    for n in frames or model.frames:
        net = model.subnetwork(model.select(n))
        x = torch.zeros(1, n, 3, input_size, input_size, device=device)
        with FlopCounterMode(display=False) as counter:
            net(x)
        out.append(SubnetCost(n, counter.get_total_flops() / 2 / 1e9, count_params(net)))
    model.train(was_training)
    return out
