"""MMAction2's TSM checkpoints: `backbone.` with ConvModules (`conv1.conv`, `conv1.bn`; the
shifted convolution wrapped, `conv1.conv.net`), `downsample.conv/bn`, the classifier
`cls_head.fc_cls`; the frame count in the file name (`..._1x1x8_...`)."""

import re

from fan_edge.errors import FanEdgeError
from fan_edge.imports.registry import register_source
from fan_edge.imports.resnet import check_shift, standard
from fan_edge.imports.tsm import frames_from_name

CONV = re.compile(r"^(layer[1-4]\.\d+)\.conv([1-3])\.(conv\.net|conv|bn)\.(.+)$")
DOWN = re.compile(r"^(layer[1-4]\.\d+)\.downsample\.(conv|bn)\.(.+)$")


@register_source("mmaction", description="MMAction2 TSM checkpoints (backbone + cls_head)")
def convert(state: dict, filename: str):
    if any("non_local" in k for k in state):
        raise FanEdgeError("this is a non-local TSM checkpoint: fan-edge has no non-local blocks")
    out, shifted, blocks, left = {}, set(), set(), []
    for key, t in state.items():
        if key.startswith("cls_head.fc_cls."):
            out["fc." + key[len("cls_head.fc_cls.") :]] = t
            continue
        if not key.startswith("backbone."):
            left.append(key)
            continue
        key = key[len("backbone.") :]
        if key.startswith("conv1."):  # the stem's ConvModule
            part, rest = key[len("conv1.") :].split(".", 1)
            out[("conv1." if part == "conv" else "bn1.") + rest] = t
        elif m := CONV.match(key):
            block, n, part, rest = m.groups()
            if n == "1" and rest == "weight" and part != "bn":
                blocks.add(block)
                if part == "conv.net":
                    shifted.add(block)
            out[f"{block}.{'bn' if part == 'bn' else 'conv'}{n}.{rest}"] = t
        elif m := DOWN.match(key):
            block, part, rest = m.groups()
            out[f"{block}.downsample.{0 if part == 'conv' else 1}.{rest}"] = t
        else:
            left.append("backbone." + key)
    if left:
        from fan_edge.imports.resnet import unknown

        raise unknown(left, "MMAction2")
    check_shift(shifted, blocks, "MMAction2")
    frames, notes = frames_from_name(filename, r"1x1x(\d+)")
    return standard(out, "MMAction2", frames, notes)
