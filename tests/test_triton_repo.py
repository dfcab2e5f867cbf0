"""`fan-edge build --target triton-repo`: a Triton model repository. Checked here without a
Triton server (PyTriton's ships neither the onnxruntime nor the python backend): configs
parse as Triton's ModelConfig, each model's files run to the bundle's logits, the weights are
one file on disk, and the router's code answers as the runtime's rule does."""

import importlib.util
import sys
import types

import numpy as np
import pytest

from fan_edge.runtime import Predictor
from fan_edge.serve.route import route, softmax

model_config = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed"
)
from google.protobuf import text_format  # noqa: E402


@pytest.fixture(scope="module")
def repo(tiny_bundle, tmp_path_factory):
    from exporters import build

    return build(tiny_bundle, "triton-repo", repo=tmp_path_factory.mktemp("t") / "repo")


def config(path):
    return text_format.Parse(path.read_text(), model_config.ModelConfig())


def test_every_model_config_is_a_valid_triton_config(repo, tiny_bundle):
    predictor = Predictor(tiny_bundle)
    size, classes = predictor.bundle.input["size"], len(predictor.bundle.classes)
    names = sorted(p.name for p in repo.iterdir())
    assert names == sorted(["fan", *(f"fan_{s.frames}f" for s in predictor.bundle.subnetworks)])
    for sub in predictor.bundle.subnetworks:
        c = config(repo / f"fan_{sub.frames}f" / "config.pbtxt")
        assert c.name == f"fan_{sub.frames}f" and c.backend == "onnxruntime"
        assert c.max_batch_size == 16 and c.HasField("dynamic_batching")
        assert list(c.input[0].dims) == [sub.frames, 3, size, size]
        assert list(c.output[0].dims) == [classes]
        accel = c.optimization.execution_accelerators.gpu_execution_accelerator[0]
        assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP32"
        shape = f"{sub.frames}x3x{size}x{size}"  # one engine for every batch up to 16
        assert accel.parameters["trt_profile_min_shapes"] == f"clip:1x{shape}"
        assert accel.parameters["trt_profile_max_shapes"] == f"clip:16x{shape}"
    router = config(repo / "fan" / "config.pbtxt")
    assert router.backend == "python" and router.input[1].optional


def test_each_model_runs_to_the_bundles_logits_reading_one_weights_file(repo, tiny_bundle):
    import onnxruntime as ort

    predictor = Predictor(tiny_bundle)
    inodes = set()
    rng = np.random.default_rng(0)
    for sub in predictor.bundle.subnetworks:
        folder = repo / f"fan_{sub.frames}f" / "1"
        inodes.add((folder / "weights.bin").stat().st_ino)
        session = ort.InferenceSession(str(folder / "model.onnx"))
        x = rng.standard_normal((2, sub.frames, 3, 32, 32), dtype=np.float32)
        np.testing.assert_allclose(
            session.run(None, {"clip": x})[0], predictor.logits(x, sub), rtol=1e-5, atol=1e-5
        )
    assert len(inodes) == 1  # hard links: one copy on disk


def router_module(predictor):
    """The router's model.py with a stand-in for Triton's Python backend (BLS calls run the
    bundle's graphs through Predictor)."""

    class Tensor:
        def __init__(self, name, value):
            self.name, self.value = name, value

        def as_numpy(self):
            return self.value

    class TritonError:
        def __init__(self, message):
            self._message = message

        def message(self):
            return self._message

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.outputs = {t.name: t.value for t in output_tensors}
            self.error_ = error

        def has_error(self):
            return self.error_ is not None

        def error(self):
            return self.error_

    class InferenceRequest:
        def __init__(self, model_name, requested_output_names, inputs, preferred_memory=None):
            self.model, self.inputs = model_name, {t.name: t.value for t in inputs}
            assert preferred_memory == ("cpu", 0)  # GPU models must answer in CPU memory

        def exec(self):
            frames = int(self.model.removeprefix("fan_").removesuffix("f"))
            sub = predictor.bundle.subnetwork_for(frames)
            return InferenceResponse([Tensor("logits", predictor.logits(self.inputs["clip"], sub))])

    pb = types.SimpleNamespace(
        Tensor=Tensor,
        TritonError=TritonError,
        InferenceResponse=InferenceResponse,
        InferenceRequest=InferenceRequest,
        get_input_tensor_by_name=lambda r, name: r.get(name),
        PreferredMemory=lambda kind, device: (kind, device),
        TRITONSERVER_MEMORY_CPU="cpu",
        get_output_tensor_by_name=lambda r, name: Tensor(name, r.outputs[name]),
    )
    return pb


def test_the_router_answers_as_the_runtime_rule_does(repo, tiny_bundle):
    predictor = Predictor(tiny_bundle)
    spec = importlib.util.spec_from_file_location("fan_router", repo / "fan" / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.pb_utils = pb = router_module(predictor)
    model = module.TritonPythonModel()
    model.initialize({})
    rng = np.random.default_rng(1)
    for frames, budget in [(8, None), (11, None), (40, None), (16, "4frames"), (16, "0.2gflops")]:
        clip = rng.standard_normal((frames, 3, 32, 32), dtype=np.float32)
        request = {"clip": pb.Tensor("clip", clip)}
        if budget:
            request["budget"] = pb.Tensor("budget", np.array([budget.encode()], dtype=object))
        (response,) = model.execute([request])
        assert not response.has_error(), response.error().message()
        sub, taken, _ = route(predictor, clip, budget)
        want = softmax(predictor.logits(taken[None], sub)[0])
        assert int(response.outputs["frames"][0]) == sub.frames
        np.testing.assert_allclose(response.outputs["probs"], want, rtol=1e-5, atol=1e-6)
    request = {
        "clip": pb.Tensor("clip", np.zeros((8, 3, 32, 32), np.float32)),
        "budget": pb.Tensor("budget", np.array([b"0.0001gflops"], dtype=object)),
    }
    (response,) = model.execute([request])
    assert response.has_error() and "nothing fits" in response.error().message()
    request["budget"] = pb.Tensor("budget", np.array([b"1.5frames"], dtype=object))
    (response,) = model.execute([request])
    assert response.has_error() and "whole number" in response.error().message()
    assert "triton_python_backend_utils" not in sys.modules


def test_an_existing_folder_is_not_replaced(repo, tiny_bundle, cli):
    code, _, err = cli("build", tiny_bundle, "--target", "triton-repo", "--repo", repo)
    assert code == 1 and "exists" in err and (repo / "fan" / "1" / "model.py").is_file()
    code, _, err = cli("export", "x.pt", "--engine", "triton-repo", "--out", repo.parent / "b")
    assert code == 1 and "--engine triton-repo writes a folder of its own" in err
