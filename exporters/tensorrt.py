"""Native TensorRT engines, one per frame count, built from a bundle's ONNX graphs.

NOT VERIFIED HERE: TensorRT cannot be installed on the project's machines (it is not a real
PyPI wheel; on Jetson it comes with JetPack). The code follows the official Python API
(TensorRT 8.5 - 11) and imports `tensorrt` only when called.

Precision (also not verified here):
- fp16: TensorRT < 11 sets the FP16 builder flag on the fp32 graphs; TensorRT 11 builds
  strongly typed networks, so it builds from the bundle's fp16 graphs
  (`fan-edge build B --target fp16` first, which checks them against fp32 on the CPU).
- int8: calibrated per sub-network at its own frame count, on clips read as `fan-edge run`
  reads them (`--calib`, as for ort-int8). TensorRT < 11: implicit quantization with an
  entropy calibrator and a calibration cache per frame count (`engines/fan_4f.calib`,
  reused by a rebuild); TensorRT 11 removed it, so the graphs are quantized first to QDQ
  with symmetric int8 activations (TensorRT's explicit quantization takes no zero points)
  by the ort-int8 target's quantizer, then built.
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
    calibration: tuple[list, Path] | None = None,
) -> dict:
    """Parse one graph, build a serialized engine, write it to `plan_path`.

    `calibration`: (clips, cache path) for an implicitly quantized int8 engine (TensorRT <
    11); a graph with QDQ nodes needs none (explicit quantization)."""
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
    if fp16 and _major(trt) < 11:  # 11: precision flags are gone (strongly typed networks)
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
    if calibration is not None:
        clips, cache = calibration
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, clips, cache)
        config.set_calibration_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise FanEdgeError(f"TensorRT failed to build an engine for {onnx_path.name}")
    plan_path.write_bytes(bytes(plan))
    return {
        "frames": frames,
        "file": plan_path.name,
        "precision": "int8" if calibration or _has_qdq(onnx_path) else "fp16" if fp16 else "fp32",
        "stripped": strip,
        "versions": {"tensorrt": trt.__version__},
        "max_batch": max_batch,
    }


def _has_qdq(onnx_path: Path) -> bool:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(n.op_type == "QuantizeLinear" for n in graph.node)


def _calibrator(trt, clips: list, cache: Path):
    """TensorRT's entropy calibrator over preprocessed clips, caching its table in `cache`."""
    import numpy as np

    try:
        import pycuda.autoinit  # noqa: F401  (a CUDA context)
        import pycuda.driver as cuda
    except ImportError:
        raise FanEdgeError("int8 calibration needs pycuda: pip install 'fan-edge[trt]'") from None

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.pending = iter(clips)
            self.device = cuda.mem_alloc(clips[0].nbytes)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            clip = next(self.pending, None)
            if clip is None:
                return None
            cuda.memcpy_htod(self.device, np.ascontiguousarray(clip, dtype=np.float32))
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, table):
            cache.write_bytes(bytes(table))

    return Calibrator()


def _same_calibration(bundle, frames: int, calib, calib_clips) -> bool:
    """Whether the last trt build of this sub-network calibrated on the same clips (its cache
    is then valid; with other clips it is not, and TensorRT would silently keep it)."""
    for e in bundle.manifest.get("engines", []):
        if e.get("target", "trt") == "trt" and e["frames"] == frames and e.get("reads"):
            options = e.get("options", {})
            same = options.get("calib") == calib and options.get("calib_clips") == calib_clips
            return same and (bundle.path / e["reads"][0]).is_file()
    return False


def _sources(bundle, folder: Path, trt, *, fp16: bool, int8: bool, calib, calib_clips) -> dict:
    """frames -> (graph to parse, calibration or None), by TensorRT version and precision."""
    from exporters import ort_int8

    major = _major(trt)
    graphs = {s.frames: (bundle.file(s.file), None) for s in bundle.subnetworks}
    if fp16 and not int8 and major >= 11:
        made = {
            e["frames"]: e for e in bundle.manifest.get("engines", []) if e.get("target") == "fp16"
        }
        if len(made) < len(bundle.subnetworks):
            raise FanEdgeError(
                "TensorRT 11 builds fp16 engines from fp16 graphs: run "
                f"`fan-edge build {bundle.path} --target fp16` first"
            )
        return {n: (bundle.file(made[n]["file"]), None) for n in graphs}
    if not int8:
        return graphs
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="fan-edge-trt-calib-", dir=folder))
    videos = ort_int8.calibration_videos(calib, calib_clips or ort_int8.DEFAULT_CLIPS, scratch)
    for s in bundle.subnetworks:
        clips = ort_int8.calibration_clips(bundle, s, videos)
        if major < 11:
            cache = folder / f"{Path(s.file).stem}.calib"
            if _same_calibration(bundle, s.frames, calib, calib_clips):  # reuse its table
                cache.write_bytes((bundle.path / ENGINE_DIR / cache.name).read_bytes())
            graphs[s.frames] = (bundle.file(s.file), (clips, cache))
        else:  # explicit quantization: symmetric int8 activations, as TensorRT requires
            qdq = scratch / Path(s.file).with_suffix(".qdq.onnx").name
            model = ort_int8.quantize_subnetwork(
                bundle, s, clips, method="entropy", private=False, symmetric=True
            )
            import onnx

            onnx.save_model(model, str(qdq))
            graphs[s.frames] = (qdq, None)
    return graphs


@register_target(
    "trt",
    folder=ENGINE_DIR,
    options=("fp16", "int8", "strip", "calib", "calib_clips"),
    needs_gpu=True,
    verified_here=False,
    requires=import_tensorrt,
    description="TensorRT engines built from the ONNX graphs",
)
def build_engines(
    bundle,
    folder: Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    strip: bool = False,
    calib: str | None = None,
    calib_clips: int | None = None,
) -> list[dict]:
    """Build an engine for every graph of a bundle into `folder` (the bundle's engines/)."""
    import shutil

    if int8 and calib is None:
        raise FanEdgeError("--target trt --int8 needs calibration clips: --calib FOLDER|LIST")
    if int8 and strip:
        raise FanEdgeError("--int8 engines cannot be weight-stripped here: drop --strip")
    if not int8 and calib is not None:
        raise FanEdgeError("--calib calibrates int8 engines: add --int8, or drop --calib")
    trt = import_tensorrt() if int8 or fp16 else None
    sources = (
        _sources(bundle, folder, trt, fp16=fp16, int8=int8, calib=calib, calib_clips=calib_clips)
        if trt
        else {s.frames: (bundle.file(s.file), None) for s in bundle.subnetworks}
    )
    out = []
    for s in bundle.subnetworks:
        plan = folder / Path(s.file).with_suffix(".plan").name
        graph, calibration = sources[s.frames]
        extra = {"calibration": calibration} if calibration else {}
        record = build_engine(
            graph, plan, frames=s.frames, size=bundle.input["size"], fp16=fp16, strip=strip, **extra
        )
        if calibration:
            record["reads"] = [calibration[1].name]  # the cache: a rebuild reuses it
        out.append(record)
    for scratch in folder.glob("fan-edge-trt-calib-*"):
        shutil.rmtree(scratch)
    return out
