"""INT8 sub-networks for ONNX Runtime: static post-training quantization in QDQ format,
calibrated per sub-network at its own frame count, int8 weights shared on disk.

Each sub-network is calibrated on clips read and preprocessed exactly as `fan-edge run` reads
them (the bundle's sampling rule, resize and normalization) at that sub-network's frame
count: a 4-frame graph sees 4-frame clips. Weights are int8 per output channel (symmetric, 7
bits: see `reduce_range` below), activations uint8 per tensor; ONNX Runtime fuses the QDQ
pairs into integer kernels.

One set of weights: a sub-network's norms and alterations differ, its convolution weights
do not. Quantizing the shared graphs (norms and alterations left as their own ops) gives
every sub-network the same int8 convolution weights (they depend on the weights alone), so
they are stored once, in `int8/weights.bin`; each graph holds only its own activation scales,
norms and alterations. `--private` folds each sub-network's norms and alterations into its
convolutions first (as `export --fold`): fewer ops at run time, but private int8 weights.

Torch-free (onnx, onnxruntime's quantization tools, the runtime's video reader).
"""

import logging
import tempfile
from pathlib import Path

import numpy as np

from exporters.registry import register_target
from exporters.shared_weights import WEIGHTS, share_weights
from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.accuracy import check_val, record_accuracy

TARGET = "ort-int8"
FOLDER = "int8"
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CLIPS = 32
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
# What is quantized: the ops with int8 kernels. Norms stay fp32 (per channel, cheap; the
# quantizer would otherwise turn their parameters into per-tensor int8). A one-off trial on
# TSM-R50 4F (the project's machine): 234 ms quantizing every op it knows, 179 ms these.
OPS = ("Conv", "MatMul", "Gemm", "Add", "MaxPool", "Relu")


def _requires():
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise FanEdgeError(
            "ONNX Runtime's quantization tools are missing: pip install 'fan-edge[cpu]'"
        ) from None


def calibration_videos(calib: str | Path, clips: int, scratch: Path) -> list[Path]:
    """The first `clips` videos of a calibration set: a folder of videos (searched
    recursively, sorted), a text file listing one video per line (relative to the file), or
    `synthetic` (clips of the synthetic task, written as .mp4 into `scratch`)."""
    if clips < 1:
        raise FanEdgeError(f"--calib-clips must be at least 1, got {clips}")
    if str(calib) == "synthetic":
        return _synthetic_videos(clips, scratch)
    path = Path(calib)
    if path.is_dir():
        videos = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        )
    elif path.is_file():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise FanEdgeError(f"cannot read the calibration list {path}: {e}") from None
        videos = [path.parent / line.split()[0] for line in lines if line.strip()]
        missing = [v for v in videos if not v.is_file()]
        if missing:
            raise FanEdgeError(
                f"calibration list {path} names {len(missing)} missing video(s), first "
                f"{missing[0]}: fix the list (paths are relative to it)"
            )
    else:
        raise FanEdgeError(
            f"no calibration set at {calib}: give a folder of videos, a file listing videos, "
            "or 'synthetic'"
        )
    if len(videos) < clips:
        raise FanEdgeError(
            f"calibration set {calib} has {len(videos)} video(s) but --calib-clips asks for "
            f"{clips}: add videos or lower --calib-clips"
        )
    return videos[:clips]


def _synthetic_videos(clips: int, folder: Path) -> list[Path]:
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.data.video import write_video

    data = SyntheticActions(clips, seed=2024)  # not the training (0) or validation seeds
    videos = [folder / f"clip{i:04d}.mp4" for i in range(clips)]
    for i, path in enumerate(videos):
        write_video(path, data.render(i))
    return videos


def calibration_clips(bundle: Bundle, sub: Subnetwork, videos: list[Path]) -> list[np.ndarray]:
    """Each video read as `fan-edge run` reads it for `sub`: (1, T, 3, S, S) float32."""
    from fan_edge.runtime.video import open_video

    out = []
    for video in videos:
        try:
            with open_video(video) as source:
                raw, _ = source.read(sub.frames, short_side=bundle.read_size)
        except FanEdgeError as e:
            raise FanEdgeError(f"calibration video {video}: {e}") from None
        out.append(bundle.transform(raw)[None])
    return out


class _Clips:
    """The CalibrationDataReader interface over a list of preprocessed clips."""

    def __init__(self, name: str, clips: list[np.ndarray]):
        self.name, self.clips, self.it = name, clips, iter(clips)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x}

    def rewind(self):
        self.it = iter(self.clips)


def quantize_subnetwork(
    bundle: Bundle, sub: Subnetwork, clips, *, method: str, private: bool, symmetric: bool = False
):
    """The sub-network's graph quantized (QDQ; int8 per-channel weights, uint8 activations)
    with `clips` as calibration data; returns the ModelProto with its weights inline.

    `symmetric`: int8 activations with zero points 0 and full-range weights, as TensorRT's
    explicit quantization requires (GPUs have no int16 saturation to avoid)."""
    import onnx

    from fan_edge.runtime.fold import fold_graph

    model = onnx.load(str(bundle.file(sub.file)))  # external weights loaded
    if private:
        fold_graph(model, batchnorm=True)
    root = logging.getLogger()  # the quantizer advises its pre-processing on the root logger;
    level = root.level  # we skip it on purpose (its Conv+BN fusion would unshare the weights)
    root.setLevel(logging.ERROR)
    try:
        return _quantize(model, clips, method, symmetric)
    finally:
        root.setLevel(level)


def _quantize(model, clips, method: str, symmetric: bool = False):
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="fan-edge-int8-") as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_static(
            model,
            str(out),
            _Clips(model.graph.input[0].name, clips),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
            op_types_to_quantize=list(OPS),
            # 7-bit weights: x86 CPUs without VNNI multiply uint8 x int8 in pairs summed into
            # int16, which saturates with full-range weights (ONNX Runtime's documented
            # caveat). Seen here: UniFormer's 16-frame graph fell to chance without it.
            reduce_range=not symmetric,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": symmetric},
        )
        return onnx.load(str(out))


def _agreement(bundle: Bundle, sub: Subnetwork, graph: Path, clips) -> dict:
    """int8 against fp32 on the calibration clips: largest logit difference, top-1 agreement."""
    import onnxruntime as ort

    def run(path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: x})[0] for x in clips])

    fp32, int8 = run(bundle.file(sub.file)), run(graph)
    return {
        "max_abs_diff": float(np.abs(fp32 - int8).max()),
        "top1_agreement": float((fp32.argmax(1) == int8.argmax(1)).mean()),
    }


def check_options(
    *,
    fold: bool = False,
    calib: str | None = None,
    calib_clips: int | None = None,
    calib_method: str | None = None,
    private: bool = False,
    val: str | None = None,
    val_clips: int | None = None,
) -> None:
    """What can be refused before any work (`export --engine` checks it before exporting)."""
    if calib is None:
        raise FanEdgeError(
            f"--target {TARGET} needs calibration clips: --calib FOLDER|LIST|synthetic"
        )
    if str(calib) != "synthetic" and not Path(calib).exists():
        raise FanEdgeError(
            f"no calibration set at {calib}: give a folder of videos, a file listing videos, "
            "or 'synthetic'"
        )
    if calib_method is not None and calib_method not in METHODS:
        raise FanEdgeError(
            f"unknown --calib-method {calib_method!r}: choose one of {', '.join(METHODS)}"
        )
    if calib_clips is not None and calib_clips < 1:
        raise FanEdgeError(f"--calib-clips must be at least 1, got {calib_clips}")
    check_val(val, val_clips)
    if fold:
        raise FanEdgeError(
            f"--target {TARGET} quantizes a shared bundle; this one was exported with --fold: "
            "export it without --fold (use --private for folded int8 graphs)"
        )


@register_target(
    TARGET,
    folder=FOLDER,
    options=("calib", "calib_clips", "calib_method", "private", "val", "val_clips"),
    requires=_requires,
    check=check_options,
    description="int8 ONNX graphs (QDQ), calibrated per sub-network, int8 weights shared",
)
def build_int8(
    bundle: Bundle,
    folder: Path,
    *,
    calib: str | None = None,
    calib_clips: int | None = None,
    calib_method: str | None = None,
    private: bool = False,
    val: str | None = None,
    val_clips: int | None = None,
) -> list[dict]:
    import onnxruntime

    method = calib_method or "minmax"  # options checked by `build` (check_options)
    models, records, clips_by_file = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="fan-edge-calib-") as scratch:
        videos = calibration_videos(calib, calib_clips or DEFAULT_CLIPS, Path(scratch))
        clips_per_count = {
            s.frames: calibration_clips(bundle, s, videos) for s in bundle.subnetworks
        }
    for sub in bundle.subnetworks:
        clips = clips_per_count[sub.frames]
        name = Path(sub.file).with_suffix(".int8.onnx").name
        models[name] = quantize_subnetwork(bundle, sub, clips, method=method, private=private)
        clips_by_file[name] = (sub, clips)
        records.append(
            {
                "frames": sub.frames,
                "file": name,
                "precision": "int8",
                "weights": "private" if private else "shared",
                "calibration": {
                    "clips": len(clips),
                    "method": method,
                    "input_shape": list(clips[0].shape),
                    "source": str(calib),
                },
                "versions": {"onnxruntime": onnxruntime.__version__},
            }
        )
    shared = share_weights(models, folder)
    for r in records:
        sub, clips = clips_by_file[r["file"]]
        r["agreement"] = _agreement(bundle, sub, folder / r["file"], clips)
        if shared:
            r["reads"] = [WEIGHTS]
    record_accuracy(bundle, folder, records, val, val_clips)
    return records
