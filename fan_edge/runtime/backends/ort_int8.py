"""ONNX Runtime on the CPU running a bundle's int8 graphs (`fan-edge build --target ort-int8`).

Same engine as ort-cpu, other graphs: with `share_weights` the int8 weights of
`int8/weights.bin` are memory-mapped once for every loaded sub-network (no pre-packing);
without it, each session gets its own, with the norms folded into the int8 convolutions at
load (fan_edge/runtime/fold.py) and ONNX Runtime's fusion and pre-packing: faster.
"""

from fan_edge.bundle import Bundle
from fan_edge.runtime.backends.ort import OrtBackend
from fan_edge.runtime.backends.registry import register_backend

TARGET = "ort-int8"


class OrtInt8Backend(OrtBackend):
    build_args = " --calib VIDEOS"

    def _private_source(self, bundle: Bundle, graph: str) -> bytes:
        """The graph with its weights loaded and its norms folded into the int8 convolutions'
        scales and biases (private copies; the int8 weights themselves are unchanged)."""
        import onnx

        from fan_edge.runtime.fold import fold_batchnorms_into_int8_convs

        model = onnx.load(str(bundle.file(graph)))  # external data: listed in the manifest
        fold_batchnorms_into_int8_convs(model)
        return model.SerializeToString()


@register_backend(
    "ort-int8-cpu",
    rank=40,  # `auto` keeps fp32 unless asked: int8 trades accuracy for speed
    device="cpu",
    target=TARGET,
    description="ONNX Runtime on the CPU, int8 graphs (--target ort-int8)",
)
def make(share_weights: bool, threads: int | None) -> OrtInt8Backend:
    return OrtInt8Backend(
        "ort-int8-cpu",
        "CPUExecutionProvider",
        share_weights=share_weights,
        threads=threads,
        target=TARGET,
    )
