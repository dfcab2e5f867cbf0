"""The FAN paper's checkpoints (BeSpontaneous/FFN-pytorch, TSM-FFN): one branch per frame
count, named by suffix (`bn1_4`, `adaconv_8`, `downsample_bn_16`); becomes a full FAN.

The rules (verified against the reference code: strict load, bit-identical logits at 4, 8
and 16 frames): strip `module.`; `new_fc.*` -> `fc`; `base_model.conv1.weight` -> the stem's
conv; `base_model.bn1_{k}.*` -> the stem's norm, branch of k; in `layerL.B`: `adaconv_{k}`
-> the block's alteration, `bn{n}_{k}.*` -> its norm n, `downsample_conv.weight` and
`downsample_bn_{k}.*` -> its downsample; `conv{n}.weight` unchanged."""

import re

from fan_edge.errors import FanEdgeError
from fan_edge.imports.registry import Converted, register_source
from fan_edge.imports.resnet import depth, strip_prefix, unknown

BRANCHED = re.compile(r"^(layer[1-4]\.\d+)\.(adaconv|bn[1-3]|downsample_bn)_(\d+)\.(.+)$")
PLAIN = re.compile(r"^(layer[1-4]\.\d+)\.(conv[1-3]|downsample_conv)\.weight$")
STEM_NORM = re.compile(r"^bn1_(\d+)\.(.+)$")


@register_source("ffn", description="the FAN paper's checkpoints (BeSpontaneous/FFN-pytorch)")
def convert(state: dict, filename: str):
    state = strip_prefix(strip_prefix(state, "module."), "base_model.")
    found = set()
    for key in state:
        m = BRANCHED.match(key) or STEM_NORM.match(key)
        if m:
            found.add(int(m.group(3) if m.re is BRANCHED else m.group(1)))
    if not found:
        raise FanEdgeError("no per-frame-count branches (bn1_4, ...): not an FFN checkpoint")
    frames = tuple(sorted(found))
    branch = {k: i for i, k in enumerate(frames)}
    out, blocks, left = {}, {}, []
    for key, t in state.items():
        if key == "conv1.weight":
            out["backbone.stem.0.weight"] = t
        elif m := STEM_NORM.match(key):
            out[f"backbone.stem.1.branches.{branch[int(m.group(1))]}.{m.group(2)}"] = t
        elif key.startswith("new_fc."):
            out["backbone.fc." + key[len("new_fc.") :]] = t
        elif m := BRANCHED.match(key):
            block, part, k, rest = m.groups()
            i = branch[int(k)]
            name = {"adaconv": "alter", "downsample_bn": "downsample.1"}.get(part, part)
            rest = "dw.weight" if part == "adaconv" else rest
            out[f"backbone.{block}.{name}.branches.{i}.{rest}"] = t
        elif m := PLAIN.match(key):
            block, part = m.groups()
            layer, index = block[5], int(block.split(".")[1])
            blocks.setdefault(int(layer), set()).add(index)
            name = "downsample.0" if part == "downsample_conv" else part
            out[f"backbone.{block}.{name}.weight"] = t
        else:
            left.append(key)
    if left:
        raise unknown(left, "FFN")
    counts = tuple(len(blocks.get(i, ())) for i in (1, 2, 3, 4))
    preset = depth(counts, any(k.endswith(".conv3.weight") for k in state), "FFN")
    stem = state["conv1.weight"]
    if "new_fc.weight" not in state:
        raise FanEdgeError("the checkpoint has no classifier (new_fc.weight): not a full model")
    return Converted(
        out,
        preset,
        stem.shape[0] / 64,
        "imagenet" if stem.shape[-1] == 7 else "small",
        int(state["new_fc.weight"].shape[0]),
        frames,
    )
