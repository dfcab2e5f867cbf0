"""`fan-edge flops --preset` against the GFLOPs each backbone's paper publishes for the same
frames and resolution (one multiply-add = one FLOP, one view), within 2%: every cost a
backbone registers (`published=`) is checked here. Counted on PyTorch's meta device, so
full-size models cost no time."""

import pytest

import fan_edge.models  # noqa: F401  (the backbones register their presets)
from fan_edge.models.registry import PUBLISHED
from fan_edge.train.api import model_costs

CASES = [(name, p) for name, costs in sorted(PUBLISHED.items()) for p in costs]


def test_every_full_size_backbone_has_a_published_cost():
    assert {"r50", "mbv2", "tea50", "uniformer-s", "slowfast-r50"} <= set(PUBLISHED)


@pytest.mark.parametrize(("name", "paper"), CASES, ids=[f"{n}-{p.frames}f" for n, p in CASES])
def test_gflops_match_the_paper(name, paper):
    [cost] = model_costs(name, [paper.frames], paper.size, 174)["subnets"]
    assert cost["paper_gflops"] == paper.gflops  # and flops shows it
    assert abs(cost["gflops"] - paper.gflops) / paper.gflops < 0.02, (paper.source, cost)


def test_a_preset_brings_its_frame_set():
    """SlowFast's counts are its Fast pathway's: 16/32/64, as the FAN paper trains it."""
    from fan_edge.train.modes import MODES

    costs = model_costs("slowfast-r50", None, None, 400)["subnets"]
    assert [c["frames"] for c in costs] == [16, 32, 64]
    assert MODES["standard"].default_frames((16, 32, 64)) == (64,)
    assert MODES["mixed"].default_frames((64, 16, 32)) == (16, 64)
    assert MODES["fan"].default_frames() == (4, 8, 16)
