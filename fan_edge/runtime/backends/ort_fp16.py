"""ONNX Runtime on CUDA running a bundle's fp16 graphs (`fan-edge build --target fp16`).

NOT VERIFIED HERE (no GPU on the project's machines): the graphs themselves are checked at
build on the CPU provider, against fp32. Same engine as ort-cuda, other graphs; with
`share_weights` the fp16 weights of `fp16/weights.bin` are memory-mapped once for every
loaded sub-network, without it each session holds its own (ONNX Runtime fuses freely).
"""

from fan_edge.bundle import Bundle
from fan_edge.runtime.backends.ort import OrtBackend
from fan_edge.runtime.backends.registry import register_backend

TARGET = "fp16"


class OrtFp16Backend(OrtBackend):
    def _private_source(self, bundle: Bundle, graph: str) -> bytes:
        """The fp16 graph with its weights loaded (the alteration fold is an fp32 pass; the
        session fuses what it can itself)."""
        import onnx

        return onnx.load(str(bundle.file(graph))).SerializeToString()


@register_backend(
    "ort-cuda-fp16",
    rank=25,  # `auto` keeps fp32 (ort-cuda) unless asked: --precision fp16 or auto
    device="gpu",
    target=TARGET,
    verified_here=False,
    description="ONNX Runtime on CUDA, fp16 graphs (--target fp16)",
)
def make(share_weights: bool, threads: int | None) -> OrtFp16Backend:
    return OrtFp16Backend(
        "ort-cuda-fp16",
        "CUDAExecutionProvider",
        share_weights=share_weights,
        threads=threads,
        target=TARGET,
    )
