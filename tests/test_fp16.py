"""`fan-edge build --target fp16`: fp16 graphs for GPUs, checked here on the CPU provider."""

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from exporters import build
from fan_edge import FanEdgeError
from fan_edge.bundle import Bundle
from fan_edge.runtime import Predictor


@pytest.fixture(scope="module")
def half(tiny_bundle, tmp_path_factory):
    path = shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("fp16") / "bundle")
    build(path, "fp16")
    return Bundle(path)


def records(bundle):
    return {e["frames"]: e for e in bundle.manifest["engines"] if e["target"] == "fp16"}


def test_fp16_graphs_are_valid_half_precision_and_match_fp32(half):
    rng = np.random.default_rng(1)
    for sub in half.subnetworks:
        rec = records(half)[sub.frames]
        path = half.file(rec["file"])
        onnx.checker.check_model(str(path), full_check=True)
        graph = onnx.load(str(path), load_external_data=False).graph
        convs = [n for n in graph.node if n.op_type == "Conv"]
        weights = {t.name: t for t in graph.initializer}
        assert convs and all(
            weights[n.input[1]].data_type == onnx.TensorProto.FLOAT16 for n in convs
        )
        # the input contract holds: float32 in, float32 out
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        x = rng.standard_normal((2, sub.frames, 3, 32, 32), dtype=np.float32)
        want = Predictor(half).logits(x, sub)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
        assert np.abs(got - want).max() > 0  # really computed in half precision
        assert rec["precision"] == "fp16" and rec["parity"]["relative"] <= 0.05


def test_fp16_weights_are_stored_once_at_half_the_size(half):
    fp32 = half.file("weights.bin").stat().st_size
    fp16 = half.file("fp16/weights.bin").stat().st_size
    assert 0.45 * fp32 <= fp16 <= 0.55 * fp32
    for rec in records(half).values():
        assert rec["reads"] == ["fp16/weights.bin"]
        assert half.file(rec["file"]).stat().st_size < 0.2 * fp16  # graph, no weights inline


def test_fp16_accuracy_is_recorded_and_fp16_runs_only_where_a_gpu_engine_is(half):
    for rec in records(half).values():
        assert rec["accuracy"]["clips"] == 8  # the bundle's validation data
    with pytest.raises(FanEdgeError, match="fp16 artifacts for ort-cuda-fp16, which this device"):
        Predictor(half, precision="fp16")  # ort-cuda-fp16 needs CUDA: not here
    auto = Predictor(half, precision="auto")  # fp16 built for a GPU is skipped on the CPU
    assert {a.precision for a in auto.plan.values()} == {"fp32"}
