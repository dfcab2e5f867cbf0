"""Backbones' own temporal ops: TEA's learnable shift starts as TSM's shift, its Motion
Excitation looks one frame ahead, a built TEA keeps those starts, and SlowFast picks its Slow
frames as PySlowFast does."""

import pytest
import torch

from fan_edge.config import preset
from fan_edge.models import TemporalShift, build_model
from fan_edge.models.tea import MotionExcitation, TemporalConv


@pytest.mark.parametrize("t", [1, 2, 5])
def test_temporal_conv_starts_as_the_shift_or_identity(t):
    x = torch.randn(2, t, 6, 3, 4)
    with torch.no_grad():
        assert torch.equal(TemporalConv(6, shift=True)(x), TemporalShift(fold_div=2)(x))
        assert torch.equal(TemporalConv(6, shift=False)(x), x)


def test_a_built_tea_keeps_the_shift_start():
    model = build_model(preset("tiny-tea", num_classes=3))
    convs = [m for m in model.modules() if isinstance(m, TemporalConv)]
    fresh = [TemporalConv(c.conv.in_channels, c.shift) for c in convs]
    assert convs and all(
        torch.equal(a.conv.weight, b.conv.weight) for a, b in zip(convs, fresh, strict=True)
    )


def test_motion_excitation_gates_frame_t_by_frames_t_and_t_plus_1_only():
    me = MotionExcitation(16, 4, torch.nn.BatchNorm2d).eval()
    with torch.no_grad():
        for p in me.parameters():
            p.normal_()
        x = torch.randn(2, 5, 16, 6, 6)
        out = me(x)
        later = x.clone()
        later[:, 3:] += torch.randn_like(later[:, 3:])  # frames 3 and 4 change
        changed = (me(later) - out).abs().flatten(2).amax(dim=2)  # (B, T)
        assert torch.all(changed[:, :2] == 0)  # frames 0 and 1 look no further than 2
        assert torch.all(changed[:, 2:] > 0)  # frame 2 sees frame 3, the rest themselves
        # the last frame has no next one: its gate is the one for no motion
        single = me(x[:, -1:])
        assert torch.allclose(out[:, -1:], single, atol=1e-6)


@pytest.mark.parametrize(
    ("frames", "alpha", "slow"),
    [(32, 8, [0, 10, 20, 31]), (16, 8, [0, 15]), (12, 8, [0, 11]), (5, 8, [0]), (1, 4, [0])],
)
def test_slowfast_picks_its_slow_frames_as_pyslowfast_does(frames, alpha, slow):
    """ceil(T / alpha) frames, evenly spaced first to last: PySlowFast's PackPathway where
    alpha divides T, and as many as the lateral connection's output elsewhere."""
    from fan_edge.models.slowfast import slow_indices

    assert slow_indices(frames, alpha) == slow
    assert len(slow) == (frames + 2 * 2 - 5) // alpha + 1  # the lateral conv's output length
