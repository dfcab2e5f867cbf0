"""`fan-edge flops --preset` against the GFLOPs each backbone's paper publishes for the same
frames and resolution (one multiply-add = one FLOP, one view), within 2%. Counted on
PyTorch's meta device, so full-size models cost no time here."""

import pytest

from fan_edge.train.api import model_costs

# (preset, frames, size, classes) -> (published GFLOPs, where)
PUBLISHED = {
    ("r50", 4, 224, 174): (16.4, "FAN (Zhang et al., 2023), Table 1: TSM at 4 frames"),
    ("r50", 8, 224, 174): (32.8, "FAN, Table 1: TSM at 8 frames (TSM paper, Table 2: 33G)"),
    ("r50", 16, 224, 174): (65.5, "FAN, Table 1: TSM at 16 frames (TSM paper, Table 2: 65G)"),
    ("r18", 8, 224, 1000): (14.4, "ResNet (He et al., 2016), Table 1: 1.8G per 224 frame"),
    ("tea50", 8, 224, 174): (35.0, "TEA (Li et al., CVPR 2020), Table 2: 8 frames, 35G"),
    ("tea50", 16, 224, 174): (70.0, "TEA, Table 2: 16 frames, 70G"),
    ("mbv2", 8, 224, 1000): (2.4, "MobileNetV2 (Sandler et al., 2018), Table 4: 300M a frame"),
    ("uniformer-s", 16, 224, 400): (41.8, "UniFormer (Li et al., ICLR 2022): S 16x4, 167G / 4"),
    ("slowfast-r50", 32, 256, 400): (
        36.1,
        "SlowFast (Feichtenhofer et al., ICCV 2019), Table 2: R50 4x16, 36.1G a 256px view",
    ),
}


@pytest.mark.parametrize(
    ("key", "published"), PUBLISHED.items(), ids=[f"{p}-{t}f-{s}px" for p, t, s, _ in PUBLISHED]
)
def test_gflops_match_the_paper(key, published):
    name, frames, size, classes = key
    paper, where = published
    [cost] = model_costs(name, [frames], size, classes)["subnets"]
    assert abs(cost["gflops"] - paper) / paper < 0.02, (where, cost["gflops"])


def test_a_preset_brings_its_frame_set():
    """SlowFast's counts are its Fast pathway's: 16/32/64, as the FAN paper trains it."""
    from fan_edge.train.modes import MODES

    costs = model_costs("slowfast-r50", None, None, 400)["subnets"]
    assert [c["frames"] for c in costs] == [16, 32, 64]
    assert MODES["standard"].default_frames((16, 32, 64)) == (64,)
    assert MODES["mixed"].default_frames((64, 16, 32)) == (16, 64)
    assert MODES["fan"].default_frames() == (4, 8, 16)
