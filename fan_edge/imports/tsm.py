"""The TSM authors' checkpoints (mit-han-lab/temporal-shift-module): torchvision names under
`module.base_model.`, the shifted `conv1` wrapped (`.conv1.net.`), the classifier `new_fc`;
the frame count is in the file name (`..._segment8_...`)."""

import re

from fan_edge.errors import FanEdgeError
from fan_edge.imports.registry import register_source
from fan_edge.imports.resnet import check_shift, standard, strip_prefix

SHIFTED = re.compile(r"^(layer[1-4]\.\d+)\.conv1\.net\.weight$")


def frames_from_name(filename: str, pattern: str) -> tuple[tuple[int, ...], list[str]]:
    m = re.search(pattern, filename)
    if m:
        return (int(m.group(1)),), []
    return (8,), [f"no frame count in the file name {filename!r}: 8 assumed (pass --frames)"]


@register_source("tsm", description="TSM authors' checkpoints (mit-han-lab/temporal-shift-module)")
def convert(state: dict, filename: str):
    state = strip_prefix(state, "module.")
    if any(".nl." in k or "non_local" in k for k in state):
        raise FanEdgeError("this is a non-local TSM checkpoint: fan-edge has no non-local blocks")
    out, shifted, blocks = {}, set(), set()
    for key, t in state.items():
        key = key.removeprefix("base_model.")
        if key.startswith("new_fc."):
            key = "fc." + key[len("new_fc.") :]
        m = SHIFTED.match(key)
        if m:
            shifted.add(m.group(1))
            key = f"{m.group(1)}.conv1.weight"
        if re.match(r"^layer[1-4]\.\d+\.conv1\.weight$", key):
            blocks.add(key.rsplit(".", 2)[0])
        out[key] = t
    check_shift(shifted, blocks | shifted, "TSM")
    frames, notes = frames_from_name(filename, r"segment(\d+)")
    return standard(out, "TSM", frames, notes)
