"""Native TensorRT: runs the engines `fan-edge build BUNDLE --target trt` recorded in the
bundle (pycuda for buffers).

NOT VERIFIED HERE: no GPU or TensorRT on the project's machines. The code follows the
official Python API and imports tensorrt and pycuda only when an engine is loaded.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.backends.registry import artifacts, register_backend


@register_backend(
    "trt",
    rank=0,
    device="gpu",
    target="trt",
    verified_here=False,
    description="TensorRT engines from `fan-edge build --target trt`",
)
def make(share_weights: bool = True, threads: int | None = None) -> "TensorRTBackend":
    return TensorRTBackend()  # one engine per sub-network: nothing to share or thread


@dataclass
class TensorRTBackend:
    """TensorRT engines, one per sub-network, deserialized from the bundle."""

    name: str = "trt"

    def available(self) -> bool:
        try:
            import pycuda  # noqa: F401
            import tensorrt  # noqa: F401
        except ImportError:
            return False
        return True

    def load(self, bundle: Bundle, sub: Subnetwork):
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            import pycuda.driver as cuda
            import tensorrt as trt
        except ImportError:
            raise FanEdgeError(
                "native TensorRT needs tensorrt and pycuda: install TensorRT "
                "(JetPack on Jetson) and pip install 'fan-edge[trt]'"
            ) from None
        engines = artifacts(bundle, "trt")
        if sub.frames not in engines:
            raise FanEdgeError(
                f"{bundle.path} has no TensorRT engine for {sub.frames} frames: "
                f"run `fan-edge build {bundle.path} --target trt` on this device"
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
