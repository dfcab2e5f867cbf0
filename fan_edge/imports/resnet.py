"""What every ResNet source shares: torchvision's names -> fan-edge's, depth and width from
the tensors, and the checks that name what fan-edge cannot import."""

import re

from fan_edge.errors import FanEdgeError
from fan_edge.imports.registry import Converted

# (blocks per stage, bottleneck?) -> fan-edge preset; what the others are called
DEPTHS = {((2, 2, 2, 2), False): "r18", ((3, 4, 6, 3), True): "r50"}
NAMED = {
    ((3, 4, 6, 3), False): "ResNet-34",
    ((3, 4, 23, 3), True): "ResNet-101",
    ((3, 8, 36, 3), True): "ResNet-152",
}
BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")
NORM_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def unknown(keys, source: str) -> FanEdgeError:
    keys = sorted(keys)
    return FanEdgeError(
        f"{len(keys)} tensor(s) of this {source} checkpoint have no fan-edge counterpart, "
        f"first {keys[0]!r}: not a supported architecture (TSM-ResNet-18/50)"
    )


def torchvision_names(state: dict, source: str) -> tuple[dict, str, float, str, int]:
    """torchvision ResNet names (`conv1`, `bn1`, `layerL.B.convN`, `.bnN`, `.downsample.0/1`,
    `fc`) -> fan-edge's standard model names; returns (state, preset, width, stem, classes)."""
    blocks: dict[int, set[int]] = {}
    out, left = {}, []
    for key, t in state.items():
        m = BLOCK.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            out[f"backbone.{key}"] = t
        elif key == "conv1.weight":
            out["backbone.stem.0.weight"] = t
        elif key.startswith("bn1.") and key[4:] in NORM_FIELDS:
            out[f"backbone.stem.1.{key[4:]}"] = t
        elif key in ("fc.weight", "fc.bias"):
            out[f"backbone.{key}"] = t
        else:
            left.append(key)
    if left:
        raise unknown(left, source)
    counts = tuple(len(blocks.get(i, ())) for i in (1, 2, 3, 4))
    preset = depth(counts, any(k.endswith(".conv3.weight") for k in state), source)
    stem = state["conv1.weight"]
    width = stem.shape[0] / 64
    return out, preset, width, "imagenet" if stem.shape[-1] == 7 else "small", fc_classes(state)


def depth(counts: tuple[int, ...], bottleneck: bool, source: str) -> str:
    """The fan-edge preset of a ResNet with these blocks per stage, or the reason it has none."""
    if (counts, bottleneck) not in DEPTHS:
        kind = "bottleneck" if bottleneck else "basic"
        name = NAMED.get((counts, bottleneck), f"a ResNet with {counts} {kind} blocks per stage")
        raise FanEdgeError(
            f"this {source} checkpoint is {name}: fan-edge imports ResNet-18 and ResNet-50"
        )
    return DEPTHS[counts, bottleneck]


def fc_classes(state: dict) -> int:
    if "fc.weight" not in state:
        raise FanEdgeError("the checkpoint has no classifier (fc.weight): not a full model")
    return int(state["fc.weight"].shape[0])


def strip_prefix(state: dict, *prefixes: str) -> dict:
    """Remove the first of `prefixes` that a key starts with (DataParallel's `module.`...)."""
    out = {}
    for key, t in state.items():
        for p in prefixes:
            if key.startswith(p):
                key = key[len(p) :]
                break
        out[key] = t
    return out


def check_shift(shifted: set, blocks: set, source: str) -> None:
    """Temporal shift in every block's first convolution: what fan-edge's TSM-ResNet has."""
    if not shifted:
        raise FanEdgeError(
            f"this {source} checkpoint has no temporal shift (a TSN or plain ResNet): import "
            "it --from torchvision to start from its weights, or use a TSM checkpoint"
        )
    if shifted != blocks:
        raise FanEdgeError(
            f"this {source} checkpoint shifts in {len(shifted)} of {len(blocks)} blocks (e.g. "
            "every second block, as TSM's R101 configuration): fan-edge's TSM shifts in every "
            "block"
        )


def standard(state: dict, source: str, frames: tuple[int, ...], notes=()) -> Converted:
    out, preset, width, stem, classes = torchvision_names(state, source)
    return Converted(out, preset, width, stem, classes, frames, list(notes))
