"""Inference engines behind one small interface: `Backend.load(bundle, sub) -> run(x)`.

`x` is (B, T, 3, H, W) float32 and `run` returns logits (B, classes) as numpy. Engines are
imported only when used; a missing one is a one-line error naming the extra to install.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError

RunFn = Callable[[np.ndarray], np.ndarray]
ORT_HINT = "ONNX Runtime is not installed: pip install 'fan-edge[cpu]' (or [gpu] for CUDA)"

# ONNX Runtime rewrites that create new weight tensors (so each session gets a private copy).
WEIGHT_REWRITING_OPTIMIZERS = ["ConvBNFusion", "ConvAddFusion", "ConvMulFusion",
                               "MatMulAddFusion", "GemmTransposeFusion"]  # fmt: skip


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise FanEdgeError(ORT_HINT) from None
    return onnxruntime


@dataclass
class OrtBackend:
    """ONNX Runtime with one execution provider (CPU, CUDA or TensorRT).

    `share_weights=True` keeps one copy of the shared weights in memory however many
    sub-networks are loaded: the tensors of weights.bin are memory-mapped once and handed
    to every session (`add_initializer`), and the optimizations that would rewrite them
    (Conv+BatchNorm fusion, weight pre-packing) are turned off. `False` lets ONNX Runtime
    fuse and pre-pack: faster, but each session holds its own weights.
    """

    name: str
    provider: str
    share_weights: bool = True
    threads: int | None = None
    _shared: dict = field(default_factory=dict, repr=False)

    def available(self) -> bool:
        try:
            return self.provider in _ort().get_available_providers()
        except FanEdgeError:
            return False

    def load(self, bundle: Bundle, sub: Subnetwork) -> RunFn:
        ort = _ort()
        if not self.available():
            raise FanEdgeError(
                f"ONNX Runtime here has no {self.provider}: "
                "pip install 'fan-edge[gpu]' (onnxruntime-gpu) on a CUDA machine"
            )
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        kwargs = {}
        if self.share_weights and bundle.manifest.get("weights_file"):
            # Layout optimisations (NCHWc) re-order conv weights into new private tensors.
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.add_session_config_entry("session.disable_prepacking", "1")
            # Without the arena, activations are freed after each run instead of being held
            # per session: loaded sub-networks then cost little more than one.
            so.enable_cpu_mem_arena = False
            for name, value in self._shared_initializers(bundle, sub).items():
                so.add_initializer(name, value)
            kwargs["disabled_optimizers"] = WEIGHT_REWRITING_OPTIMIZERS
        source = str(bundle.file(sub.file))
        if not self.share_weights:
            source = self._folded_bytes(bundle, sub)
        sess = ort.InferenceSession(source, so, providers=[self.provider], **kwargs)
        in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        return lambda x: sess.run([out_name], {in_name: x})[0]

    @staticmethod
    def _folded_bytes(bundle: Bundle, sub: Subnetwork) -> bytes:
        """The graph with its weights loaded and Weight Alteration folded (private copy)."""
        import onnx

        from fan_edge.runtime.fold import fold_alterations

        model = onnx.load(str(bundle.file(sub.file)))  # external data: checked by Bundle
        fold_alterations(model)
        return model.SerializeToString()

    def _shared_initializers(self, bundle: Bundle, sub: Subnetwork) -> dict:
        """OrtValues over one memory map of weights.bin, created once per bundle."""
        import onnx

        ort = _ort()
        graph = onnx.load(str(bundle.file(sub.file)), load_external_data=False).graph
        out = {}
        for t in graph.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in t.external_data}
            # `location` was checked by Bundle.verify: listed, hashed, inside the bundle.
            key = str(bundle.file(info["location"]).resolve())
            if key not in self._shared:
                self._shared[key] = ({}, np.memmap(key, dtype=np.uint8, mode="r"))
            values, mm = self._shared[key]
            if t.name not in values:
                off, n = int(info.get("offset", 0)), int(info["length"])
                if off + n > len(mm):
                    raise FanEdgeError(f"{sub.file}: tensor {t.name} lies past the end of "
                                       f"{info['location']}; re-export the bundle")  # fmt: skip
                dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
                arr = mm[off : off + n].view(dtype).reshape(tuple(t.dims))
                values[t.name] = (arr, ort.OrtValue.ortvalue_from_numpy(arr))  # no copy
            out[t.name] = values[t.name][1]
        return out


@dataclass
class TensorRTBackend:
    """Native TensorRT engines from `fan-edge export --engine trt` (pycuda for buffers).

    NOT VERIFIED HERE: no GPU or TensorRT on the project's machines.
    """

    name: str = "trt"

    def available(self) -> bool:
        try:
            import pycuda  # noqa: F401
            import tensorrt  # noqa: F401
        except ImportError:
            return False
        return True

    def load(self, bundle: Bundle, sub: Subnetwork) -> RunFn:
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            import pycuda.driver as cuda
            import tensorrt as trt
        except ImportError:
            raise FanEdgeError(
                "native TensorRT needs tensorrt and pycuda: install TensorRT "
                "(JetPack on Jetson) and pip install 'fan-edge[trt]'"
            ) from None
        engines = {e["frames"]: e for e in bundle.manifest.get("engines", [])}
        if sub.frames not in engines:
            raise FanEdgeError(
                f"{bundle.path} has no TensorRT engine for {sub.frames} frames: "
                "export with --engine trt on this device"
            )
        plan = Path(bundle.file(engines[sub.frames]["file"])).read_bytes()
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        if engine is None:
            raise FanEdgeError(
                "TensorRT could not load the engine: it was built for another "
                "GPU or TensorRT version; rebuild it on this device"
            )
        if engines[sub.frames].get("stripped"):
            refitter = trt.Refitter(engine, logger)
            parser = trt.OnnxParserRefitter(refitter, logger)
            if (
                not parser.refit_from_file(str(bundle.file(sub.file)))
                or not refitter.refit_cuda_engine()
            ):
                raise FanEdgeError(
                    "refitting the weight-stripped engine from the ONNX graph failed"
                )
        context = engine.create_execution_context()
        stream = cuda.Stream()

        def run(x: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(x, dtype=np.float32)
            context.set_input_shape("clip", x.shape)
            out = np.empty(tuple(context.get_tensor_shape("logits")), np.float32)
            d_in, d_out = cuda.mem_alloc(x.nbytes), cuda.mem_alloc(out.nbytes)
            cuda.memcpy_htod_async(d_in, x, stream)
            context.set_tensor_address("clip", int(d_in))
            context.set_tensor_address("logits", int(d_out))
            context.execute_async_v3(stream.handle)
            cuda.memcpy_dtoh_async(out, d_out, stream)
            stream.synchronize()
            return out

        return run


def make_backends(share_weights: bool = True, threads: int | None = None) -> dict:
    """The table of backends, best first (the order `auto` tries them in)."""
    ort = [("ort-trt", "TensorrtExecutionProvider"), ("ort-cuda", "CUDAExecutionProvider"),
           ("ort-cpu", "CPUExecutionProvider")]  # fmt: skip
    table = {"trt": TensorRTBackend()}
    for name, provider in ort:
        table[name] = OrtBackend(name, provider, share_weights=share_weights, threads=threads)
    return table


BACKEND_NAMES = ("auto", "trt", "ort-trt", "ort-cuda", "ort-cpu")


def pick_backend(name: str, bundle: Bundle, **kwargs):
    """The backend called `name`, or for `auto` the best one available for this bundle."""
    table = make_backends(**kwargs)
    if name == "auto":
        for b in table.values():
            if b.available() and (b.name != "trt" or bundle.manifest.get("engines")):
                return b
        raise FanEdgeError(ORT_HINT)
    if name not in table:
        raise FanEdgeError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    return table[name]
