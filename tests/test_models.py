"""The FAN model: shift correctness, specialization, parameter sharing, any-T execution."""

import pytest
import torch
from torch import nn

from fan_edge.config import PRESETS, preset
from fan_edge.models import (
    BACKBONES,
    FrameAdaptiveNet,
    Specialized,
    SpecializedNorm,
    TemporalShift,
    WeightAlteration,
    build_model,
)
from fan_edge.models.cost import count_params

ODD_AND_OUTSIDE_T = [1, 2, 3, 4, 5, 8, 16, 20]


@pytest.mark.parametrize("t", ODD_AND_OUTSIDE_T)
def test_shift_moves_channels_by_one_frame(t):
    x = torch.randn(2, t, 16, 3, 3)
    y = TemporalShift(fold_div=8)(x)  # fold = 2 channels each way
    assert y.shape == x.shape
    assert torch.equal(y[:, : t - 1, :2], x[:, 1:, :2])  # from the future
    assert torch.equal(y[:, 1:, 2:4], x[:, : t - 1, 2:4])  # from the past
    assert torch.equal(y[:, :, 4:], x[:, :, 4:])  # untouched
    assert torch.all(y[:, -1, :2] == 0) and torch.all(y[:, 0, 2:4] == 0)


@pytest.mark.parametrize("t", ODD_AND_OUTSIDE_T)
def test_no_information_crosses_clip_boundaries(t, tiny_cfg):
    """Perturb clip 1 of a batch of 2: clip 0's output must not change, in every sub-network."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg).eval()
    x = torch.randn(2, t, 3, 32, 32)
    x2 = x.clone()
    x2[1] += torch.randn_like(x2[1])
    for i in range(len(model.frames)):
        with torch.no_grad():
            a, b = model(x, subnet=i), model(x2, subnet=i)
        assert torch.equal(a[0], b[0]), f"clip 0 changed at T={t}, sub-network {i}"
        assert not torch.allclose(a[1], b[1])
    # And the shift alone, where a leak would be most direct.
    s, y = TemporalShift(), torch.randn(2, t, 16, 4, 4)
    y2 = y.clone()
    y2[1] += 1
    assert torch.equal(s(y)[0], s(y2)[0])


@pytest.mark.parametrize("arch", sorted(BACKBONES))
@pytest.mark.parametrize("t", [1, 3, 5, 20])
def test_runs_at_any_frame_count(arch, t):
    tiny = min(
        (p for p, f in PRESETS.items() if f["arch"] == arch),
        key=lambda p: PRESETS[p].get("input_size", 224),
    )
    model = build_model(preset(tiny, num_classes=7)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, t, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_conversion_is_generic_over_frame_sets(tiny_cfg):
    for frames in [(4, 16), (4, 8, 16), (4, 8, 12, 16)]:
        model = build_model(preset("tiny", num_classes=5, frames=frames))
        norms = [m for m in model.modules() if isinstance(m, SpecializedNorm)]
        plain = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(len(m.branches) == len(frames) for m in norms)
        assert len(plain) == len(norms) * len(frames)  # every norm was specialized
        alters = [m for m in model.modules() if isinstance(m, WeightAlteration)]
        assert len(alters) == 8 * len(frames)  # one per block per sub-network


def test_subnetworks_share_everything_but_their_own_layers(tiny_cfg):
    model = build_model(tiny_cfg)
    k = len(model.frames)
    params = [{id(p) for p in model.subnetwork(i).parameters()} for i in range(k)]
    private = [{id(p) for p in model.private_parameters(i)} for i in range(k)]
    shared = {id(p) for p in model.shared_parameters()}
    for i in range(k):
        assert params[i] == shared | private[i]
        for j in range(k):
            if i != j:
                assert not private[i] & private[j]
                assert not private[j] & params[i]
    # The very same convolution weight object in every sub-network, private norms.
    convs = [model.subnetwork(i).layer2[0].conv1.weight for i in range(k)]
    assert all(c is convs[0] for c in convs)
    bns = [model.subnetwork(i).layer2[0].bn1 for i in range(k)]
    assert len({id(b) for b in bns}) == k
    assert all(isinstance(b, nn.BatchNorm2d) for b in bns)


def test_gradients_land_only_on_the_active_subnetwork(tiny_cfg):
    model = build_model(tiny_cfg).train()
    with torch.no_grad():  # undo the zero-init of last norms, which blocks some gradients
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
    for i in range(len(model.frames)):
        model.zero_grad(set_to_none=True)
        model(torch.randn(2, model.frames[i], 3, 32, 32), subnet=i).sum().backward()
        for j in range(len(model.frames)):
            grads = [p.grad for p in model.private_parameters(j)]
            if j == i:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads)
        assert all(p.grad is not None for p in model.shared_parameters())


def test_running_stats_update_only_in_the_active_subnetwork(tiny_cfg):
    model = build_model(tiny_cfg).train()
    norm = next(m for m in model.modules() if isinstance(m, SpecializedNorm))
    before = [b.running_mean.clone() for b in norm.branches]
    model(torch.randn(2, 8, 3, 32, 32))  # 8 frames -> sub-network 1
    after = [b.running_mean for b in norm.branches]
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert changed == [False, True, False]


def test_specialized_layer_refuses_to_run_unspecialized(tiny_cfg):
    model = build_model(tiny_cfg)
    with pytest.raises(RuntimeError, match="subnetwork"):
        model.backbone(torch.randn(1, 4, 3, 32, 32))


def test_weight_alteration_keeps_its_small_init(tiny_cfg):
    model = build_model(tiny_cfg)
    w = torch.cat(
        [m.dw.weight.flatten() for m in model.modules() if isinstance(m, WeightAlteration)]
    )
    assert 0 < w.std() < 5e-3  # N(0, 1e-3): not overwritten by the backbone's kaiming init


def test_forward_picks_the_nearest_subnetwork(tiny_cfg):
    model = build_model(tiny_cfg).eval()
    x = torch.randn(1, 6, 3, 32, 32)  # 6 -> tie between 4 and 8 -> 8 (index 1)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, subnet=1))


def test_standard_model_has_no_specialized_layers():
    model = build_model(
        preset("tiny", num_classes=5, frames=(16,), specialize_norm=False, weight_alteration=False)
    )
    assert not any(isinstance(m, Specialized) for m in model.modules())
    assert model.subnetwork(0) is model.backbone


def test_fan_extra_parameters_under_one_percent_for_tsm_r50():
    fan = build_model(preset("r50", num_classes=174))
    plain = build_model(
        preset("r50", num_classes=174, frames=(16,), specialize_norm=False, weight_alteration=False)
    )
    extra = count_params(fan) - count_params(plain)
    assert 0 < extra < 0.01 * count_params(plain)


def test_flops_reports_every_private_copy_and_what_fan_adds(cli):
    from fan_edge.train.api import model_costs

    r = model_costs("tiny", [4, 8, 16], 32, 5)
    plain = build_model(
        preset("tiny", num_classes=5, frames=(16,), specialize_norm=False, weight_alteration=False)
    )
    assert r["extra_params"] == r["total_params"] - count_params(plain)
    # private: three copies of every norm and three alterations; extra: one copy fewer
    norms = sum(
        p.numel()
        for m in plain.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters()
    )
    assert r["private_params"] - r["extra_params"] == norms > 0
    code, out, _ = cli("flops", "--preset", "tiny", "--classes", "5", "--size", "32")
    assert code == 0 and f"FAN adds {r['extra_params'] / 1e3:.1f}K to a plain model" in " ".join(
        out.split()
    )


def test_subnetwork_view_is_not_a_registered_copy(tiny_cfg):
    model = build_model(tiny_cfg)
    assert isinstance(model, FrameAdaptiveNet)
    n = len(model.state_dict())
    model.subnetwork(0)
    assert len(model.state_dict()) == n
