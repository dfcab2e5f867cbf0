"""Native TensorRT engines, one per frame count, built from a bundle's ONNX graphs.

NOT VERIFIED HERE: TensorRT cannot be installed on the project's machines (it is not a real
PyPI wheel; on Jetson it comes with JetPack). The code follows the official Python API
(TensorRT 8.5 - 11) and imports `tensorrt` only when called.
"""

from pathlib import Path

from exporters.registry import register_target
from fan_edge.errors import FanEdgeError

ENGINE_DIR = "engines"
INSTALL_HINT = (
    "TensorRT is not installed: on Jetson install JetPack's python3-libnvinfer, on a desktop GPU "
    "NVIDIA's tensorrt wheel; `pip install fan-edge[trt]` adds pycuda for the runtime"
)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise FanEdgeError(INSTALL_HINT) from None
    return trt


def _major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def build_engine(
    onnx_path: Path,
    plan_path: Path,
    *,
    frames: int,
    size: int,
    fp16: bool,
    strip: bool,
    max_batch: int = 8,
    workspace_gb: float = 2.0,
) -> dict:
    """Parse one graph, build a serialized engine, write it to `plan_path`."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if _major(trt) < 10:  # explicit batch is the only mode from 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves weights.bin beside the graph
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FanEdgeError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        if _major(trt) >= 11:  # precision flags were removed: networks are strongly typed
            raise FanEdgeError(
                "TensorRT 11 builds fp16 only from an fp16 ONNX graph; "
                "export without --fp16 or convert the bundle to fp16 first"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    if strip:
        if _major(trt) < 10:
            raise FanEdgeError("weight-stripped engines need TensorRT 10 or newer")
        config.set_flag(trt.BuilderFlag.STRIP_PLAN)
        config.set_flag(trt.BuilderFlag.REFIT_IDENTICAL)
    profile = builder.create_optimization_profile()
    shape = (frames, 3, size, size)
    profile.set_shape("clip", (1, *shape), (1, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise FanEdgeError(f"TensorRT failed to build an engine for {onnx_path.name}")
    plan_path.write_bytes(bytes(plan))
    return {
        "frames": frames,
        "file": plan_path.name,
        "precision": "fp16" if fp16 else "fp32",
        "stripped": strip,
        "versions": {"tensorrt": trt.__version__},
        "max_batch": max_batch,
    }


@register_target(
    "trt",
    folder=ENGINE_DIR,
    options=("fp16", "strip"),
    needs_gpu=True,
    verified_here=False,
    requires=import_tensorrt,
    description="TensorRT engines built from the ONNX graphs",
)
def build_engines(bundle, folder: Path, *, fp16: bool = False, strip: bool = False) -> list[dict]:
    """Build an engine for every graph of a bundle into `folder` (the bundle's engines/)."""
    out = []
    for s in bundle.subnetworks:
        plan = folder / Path(s.file).with_suffix(".plan").name
        out.append(
            build_engine(
                bundle.file(s.file),
                plan,
                frames=s.frames,
                size=bundle.input["size"],
                fp16=fp16,
                strip=strip,
            )
        )
    return out
