"""A backbone registered from outside the library goes through train -> export -> run with no
edit anywhere else (issue 14's acceptance for the registry)."""

import pytest
import torch
from torch import nn

from exporters import export
from fan_edge.config import PRESETS
from fan_edge.models import (
    BACKBONES,
    AlterationSlot,
    TemporalShift,
    register_backbone,
    unregister_backbone,
)
from fan_edge.runtime import Predictor
from fan_edge.train.api import train_from_options


class ToyNet(nn.Module):
    """Two convolutions with norms, a temporal shift and an alteration slot between them."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.shift, self.alter = TemporalShift(4), AlterationSlot(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W)
        b, t = x.shape[:2]
        y = torch.relu(self.bn1(self.conv1(x.flatten(0, 1)))).unflatten(0, (b, t))
        y = torch.relu(self.bn2(self.conv2(self.alter(self.shift(y).flatten(0, 1)))))
        return self.fc(y.mean((2, 3))).unflatten(0, (b, t)).mean(1)


@pytest.fixture
def toy_preset():
    @register_backbone("toy_net", presets={"toy": dict(input_size=32, dropout=0.0)})
    def toy_net(num_classes: int, **unused) -> ToyNet:
        return ToyNet(num_classes)

    yield "toy"
    unregister_backbone("toy_net")
    assert "toy_net" not in BACKBONES and "toy" not in PRESETS


def test_a_registered_backbone_trains_exports_and_runs(toy_preset, tmp_path, example_video, cli):
    result = train_from_options(
        out=tmp_path / "run",
        mode="fan",
        frames=[4, 8],
        data="synthetic",
        val=None,
        preset=toy_preset,
        epochs=1,
        batch_size=4,
        lr=0.05,
        kd_lambda=1.0,
        seed=0,
        num_videos=8,
        num_val=4,
        quiet=True,
    )
    assert result["epochs"][0]["val"].keys() == {"4", "8"}
    bundle = export(result["checkpoint"], [4, 8], tmp_path / "bundle")
    prediction = Predictor(bundle).predict(example_video, frames=8)
    assert prediction.frames == 8 and len(prediction.labels) == 5
    code, out, err = cli("run", example_video, "--bundle", bundle, "--budget", "4frames")
    assert code == 0 and "4-frame sub-network" in out, err


def test_a_name_is_registered_once(toy_preset):
    with pytest.raises(ValueError, match="registered already"):
        register_backbone("toy_net")(lambda **kw: None)
    with pytest.raises(ValueError, match="registered already"):
        register_backbone("other", presets={"tiny": {}})(lambda **kw: None)
    assert "other" not in BACKBONES


@pytest.fixture
def inline_target():
    """A toy export target (each graph with its weights inline, one standalone file) and the
    backend that runs its artifacts, both registered from this file only."""
    import onnx
    import onnxruntime

    from exporters import register_target, unregister_target
    from fan_edge.runtime.backends import artifacts, register_backend, unregister_backend

    @register_target("inline", description="standalone ONNX graphs, weights inline")
    def build_inline(bundle, folder, **options):
        records = []
        for s in bundle.subnetworks:
            model = onnx.load(str(bundle.file(s.file)))  # loads weights.bin's tensors
            onnx.save_model(model, str(folder / s.file))
            records.append(
                {
                    "frames": s.frames,
                    "file": s.file,
                    "precision": "fp32",
                    "versions": {"onnx": onnx.__version__},
                }
            )
        return records

    class InlineBackend:
        name = "inline-cpu"

        def available(self):
            return True

        def load(self, bundle, sub):
            path = bundle.file(artifacts(bundle, "inline")[sub.frames]["file"])
            sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return lambda x: sess.run(None, {"clip": x})[0]

    register_backend(
        "inline-cpu",
        rank=5,
        device="cpu",
        target="inline",
        description="the inline graphs on ONNX Runtime",
    )(lambda share_weights, threads: InlineBackend())
    yield "inline"
    unregister_target("inline")
    unregister_backend("inline-cpu")


def test_a_registered_target_builds_and_its_backend_runs(
    inline_target, tiny_bundle, tmp_path, example_video, cli
):
    import shutil

    import numpy as np

    from fan_edge.bundle import Bundle

    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    code, out, err = cli("build", bundle, "--target", "inline")
    assert code == 0, err
    records = Bundle(bundle).manifest["engines"]  # verified: every artifact hashed, sealed
    assert [(r["target"], r["frames"]) for r in records] == [("inline", n) for n in (4, 8, 16)]
    assert all(r["versions"]["onnx"] and r["versions"]["fan_edge"] for r in records)
    auto = Predictor(bundle).predict(example_video, frames=8)
    assert auto.backend == "inline-cpu"  # auto ranks it first, and the bundle has its artifacts
    plain = Predictor(bundle, backend="ort-cpu").predict(example_video, frames=8)
    assert auto.labels == plain.labels and np.allclose(auto.probs, plain.probs, atol=1e-5)
    code, out, err = cli("run", example_video, "--bundle", bundle, "--backend", "inline-cpu")
    assert code == 0 and "backend inline-cpu" in out, err
    assert Predictor(tiny_bundle).backend_name == "ort-cpu"  # no inline artifacts: skipped
    code, _, err = cli("build", bundle, "--target", "inline", "--fp16")
    assert code == 1 and "--fp16 is not an option of --target inline" in err


def test_a_first_format_checkpoint_of_any_backbone_still_resolves(toy_preset):
    """The first checkpoint format stored a ResNet's width, stem and shift_div for every
    backbone; for one that takes none of them, their defaults go and anything else is an
    error naming the field."""
    from fan_edge.config import ModelConfig
    from fan_edge.errors import FanEdgeError
    from fan_edge.models import resolve

    legacy = {
        "arch": "toy_net",
        "num_classes": 5,
        "frames": [4, 8],
        "input_size": 32,
        "dropout": 0.0,
        "specialize_norm": True,
        "weight_alteration": True,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "width": 1.0,
        "stem": "imagenet",
        "shift_div": 8,
    }
    assert resolve(ModelConfig.from_dict(legacy)).backbone == {}
    with pytest.raises(FanEdgeError, match="toy_net takes no arguments of its own, got width"):
        resolve(ModelConfig.from_dict({**legacy, "width": 0.5}))
