"""Every registered backbone, through every stage, with no test written for it: forward and
backward at any frame count, the conversion to a FAN, export, ONNX Runtime against PyTorch
on every engine available here, and one copy of the shared weights. Each backbone is tested
at its smallest preset (by input size)."""

import numpy as np
import onnx
import pytest
import torch
from conftest import run_without_torch
from torch import nn

from exporters import export
from fan_edge.bundle import Bundle
from fan_edge.config import PRESETS, preset
from fan_edge.models import BACKBONES, Specialized, WeightAlteration, build_model
from fan_edge.runtime import Predictor
from fan_edge.runtime.backends import BACKENDS
from fan_edge.train.checkpoint import save_untrained

FRAMES = (2, 4)  # two sub-networks, small enough for every backbone on 2 CPU cores
NORMS = (nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def smallest_preset(arch: str) -> str:
    mine = [p for p, fields in PRESETS.items() if fields["arch"] == arch]
    return min(mine, key=lambda p: PRESETS[p].get("input_size", 224))


@pytest.fixture(params=sorted(BACKBONES))
def cfg(request):
    return preset(smallest_preset(request.param), num_classes=3, frames=FRAMES)


def test_forward_and_backward_at_any_frame_count(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).train()
    size = cfg.input_size
    for i, t in enumerate([*FRAMES, 3]):  # a trained count per sub-network, then an odd one
        model.zero_grad()
        out = model(torch.randn(2, t, 3, size, size), subnet=min(i, len(FRAMES) - 1))
        assert out.shape == (2, 3) and torch.isfinite(out).all()
        out.square().mean().backward()
        grads = [p.grad for p in model.shared_parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_the_conversion_specializes_every_norm_and_places_alterations(cfg):
    model = build_model(cfg)
    specialized = {
        id(b) for m in model.modules() if isinstance(m, Specialized) for b in m.branches.modules()
    }
    loose = [
        n for n, m in model.named_modules() if isinstance(m, NORMS) and id(m) not in specialized
    ]
    assert not loose, f"norms left shared: {loose[:3]}"
    alterations = [m for m in model.modules() if isinstance(m, WeightAlteration)]
    assert alterations and len(alterations) % len(FRAMES) == 0
    shared = {id(p) for p in model.shared_parameters()}
    for i in range(len(FRAMES)):
        mine = {id(p) for p in model.private_parameters(i)}
        assert mine and not mine & shared
        assert {id(p) for p in model.subnetwork(i).parameters()} == shared | mine


def test_export_matches_pytorch_on_every_engine_and_shares_the_weights(
    cfg, tmp_path, example_video
):
    ckpt = save_untrained(tmp_path / "checkpoint.pt", cfg, ["a", "b", "c"])
    path = export(ckpt, FRAMES, tmp_path / "bundle")
    bundle = Bundle(path)
    assert bundle.manifest["weights"] == "shared"
    model = build_model(cfg).eval()
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    model.load_state_dict(state)
    shared = sum(p.numel() * p.element_size() for p in model.shared_parameters())
    assert bundle.file(bundle.manifest["weights_file"]).stat().st_size >= shared
    for i, sub in enumerate(bundle.subnetworks):  # a graph holds its own tensors, no more
        graph = onnx.load(str(bundle.file(sub.file)), load_external_data=False).graph
        inline = {
            t.name: [d for d in t.dims if d > 1]
            for t in graph.initializer
            if t.data_location != onnx.TensorProto.EXTERNAL
        }
        others = [n for n in inline if n in state and f"branches.{i}." not in n]
        assert not others, f"{sub.file} holds other tensors inline: {others[:3]}"
        # the exporter's own constants (shapes, zero biases) are vectors, never weight-shaped
        weightlike = [n for n, dims in inline.items() if n not in state and len(dims) > 1]
        assert not weightlike, f"{sub.file} holds weight-shaped constants inline: {weightlike[:3]}"
    x = np.random.default_rng(0).standard_normal((2, 4, 3, cfg.input_size, cfg.input_size))
    x = x.astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x), subnet=model.select(4)).numpy()
    here = [
        n
        for n, b in BACKENDS.items()
        if b.target is None and b.make(share_weights=True, threads=None).available()
    ]
    assert "ort-cpu" in here
    for name in here:
        for share in (True, False):  # one copy of the weights, and the folded speed mode
            got = Predictor(bundle, backend=name, share_weights=share).logits(
                x, bundle.subnetwork_for(4)
            )
            assert np.abs(got - want).max() < 1e-4, (name, share)
    # and `fan-edge run` classifies a real video with it, torch-free
    run = ["run", str(example_video), "--bundle", str(path), "--frames", "4"]
    out = run_without_torch(
        f"""
from fan_edge.cli import main
try:
    main({run!r})
except SystemExit as e:
    assert e.code in (0, None), e.code
"""
    )
    assert "4 frames" in out or "4F" in out, out
