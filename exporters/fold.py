"""Fold normalization and Weight Alteration into the convolutions of one sub-network.

Uses torch.fx to find the real data flow, so it works for any backbone whose blocks are
traceable: `WeightAlteration -> Conv` becomes the conv with weight W * (1 + a) on its input
channels (the paper's W* = theta (x) W), and `Conv -> BatchNorm` becomes one conv. The
result is a standalone network with private weights: faster, but nothing left to share.
"""

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from fan_edge.models.layers import TemporalShift, WeightAlteration


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, TemporalShift | WeightAlteration) or super().is_leaf_module(
            m, qualname
        )


def fold_subnetwork(net: nn.Module) -> fx.GraphModule:
    """A folded, independent copy of `net` (eval mode). `net` itself is left untouched."""
    net = copy.deepcopy(net).eval()
    graph = _Tracer().trace(net)
    gm = fx.GraphModule(net, graph)
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        mod = modules[node.target]
        if isinstance(mod, WeightAlteration):
            users = list(node.users)
            if not users or not all(_is(u, modules, nn.Conv2d) and u.args[0] is node
                                    and modules[u.target].groups == 1 for u in users):  # fmt: skip
                continue
            scale = mod.scale().detach()
            for u in users:
                conv = modules[u.target]
                with torch.no_grad():
                    conv.weight.mul_(scale.view(1, -1, 1, 1))
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
        elif isinstance(mod, nn.BatchNorm2d):
            src = node.args[0]
            if _is(src, modules, nn.Conv2d) and len(src.users) == 1:
                fused = fuse_conv_bn_eval(modules[src.target], mod)
                _set_module(gm, src.target, fused)
                modules[src.target] = fused
                node.replace_all_uses_with(src)
                gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _is(node: fx.Node, modules: dict, kind: type) -> bool:
    return node.op == "call_module" and isinstance(modules[node.target], kind)


def _set_module(gm: nn.Module, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, new)
