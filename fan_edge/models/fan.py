"""Turn any backbone into a Frame Adaptive Network, generically.

`convert_to_fan` walks the module tree once: every normalization layer becomes a
`SpecializedNorm` with one private copy per frame count, every `AlterationSlot` the backbone
declared becomes K `WeightAlteration`s. Everything else (convolutions, classifier) stays a
single shared module. No backbone is ever written out once per frame count.
"""

import copy
from collections.abc import Sequence

import torch
from torch import nn

from fan_edge.frames import select_subnetwork, validate_frame_set
from fan_edge.models.layers import AlterationSlot, Specialized, SpecializedNorm, WeightAlteration


class FrameAdaptiveNet(nn.Module):
    """A backbone whose specialized layers hold one private copy per frame count.

    `frames` are the trained frame counts, ascending. A model trained the ordinary way is
    the degenerate case: one frame count and no specialized layers.
    """

    def __init__(self, backbone: nn.Module, frames: Sequence[int]):
        super().__init__()
        self.backbone = backbone
        self.frames = validate_frame_set(frames)

    def subnetwork(self, index: int) -> nn.Module:
        """The plain network of sub-network `index`, sharing every parameter with this model.

        Built as a view: containers are shallow copies whose children are swapped, leaves
        are the very same module objects, so training one trains the FAN. Cheap enough
        (well under a millisecond for a ResNet-50) to build on every forward.
        """
        if not 0 <= index < len(self.frames):
            raise IndexError(f"sub-network {index} does not exist; have {len(self.frames)}")
        return _specialize(self.backbone, index)

    def select(self, num_frames: int) -> int:
        """Index of the sub-network that serves `num_frames` frames (nearest, ties up)."""
        return select_subnetwork(num_frames, self.frames)

    def forward(self, x: torch.Tensor, subnet: int | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> logits (B, num_classes), by the nearest sub-network to T."""
        index = self.select(x.shape[1]) if subnet is None else subnet
        return self.subnetwork(index)(x)

    def private_parameters(self, index: int) -> list[nn.Parameter]:
        """Parameters that belong to sub-network `index` alone."""
        return [
            p
            for m in self.modules()
            if isinstance(m, Specialized)
            for p in m.branches[index].parameters()
        ]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters used by every sub-network (convolutions, classifier, unspecialized)."""
        private = {id(p) for i in range(len(self.frames)) for p in self.private_parameters(i)}
        return [p for p in self.parameters() if id(p) not in private]


def _specialize(module: nn.Module, index: int) -> nn.Module:
    if isinstance(module, Specialized):
        return module.specialize(index)
    children = {name: _specialize(c, index) for name, c in module._modules.items() if c is not None}
    if all(children[name] is c for name, c in module._modules.items() if c is not None):
        return module  # nothing specialized below: share the module as it is
    view = copy.copy(module)  # shares _parameters/_buffers dicts with the original
    view.__dict__["_modules"] = {**module._modules, **children}
    return view


def convert_to_fan(
    backbone: nn.Module,
    frames: Sequence[int],
    *,
    specialize_norm: bool = True,
    weight_alteration: bool = True,
    alteration_init: str = "small",
) -> FrameAdaptiveNet:
    """Convert `backbone` (modified in place) into a FAN over `frames`.

    `specialize_norm=False` keeps the norms shared and `weight_alteration=False` leaves the
    slots empty: the paper's ablations, and with a single frame count a standard model.
    """
    frames = validate_frame_set(frames)
    k = len(frames)
    for parent in list(backbone.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, AlterationSlot):
                if weight_alteration:
                    alters = [
                        WeightAlteration(child.channels, child.dims, alteration_init)
                        for _ in range(k)
                    ]
                    setattr(parent, name, Specialized(alters))
                else:
                    setattr(parent, name, nn.Identity())
            elif specialize_norm and isinstance(child, SpecializedNorm.NORM_TYPES):
                setattr(parent, name, SpecializedNorm.copies(child, k))
    return FrameAdaptiveNet(backbone, frames)
