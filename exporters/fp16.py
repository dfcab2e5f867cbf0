"""FP16 sub-networks for GPUs: every graph converted to half precision, weights shared.

What GPU engines want: ONNX Runtime's CUDA provider runs an fp16 graph on tensor cores, and
TensorRT 11 (strongly typed networks, no precision flags) builds fp16 engines only from an
fp16 ONNX graph (`--target trt --fp16` uses these graphs there). Inputs and outputs stay
float32, so the bundle's input contract holds: the graph casts on entry and exit.

Verified here: each graph passes the ONNX checker and matches the fp32 graph within fp16
tolerance on ONNX Runtime's CPU provider (which runs fp16 graphs by casting around the ops
it has no fp16 kernel for), and its top-1 against fp32 is measured on validation clips.
The speed on a GPU is NOT verified here (no GPU on the project's machines).

Converted weights are identical across sub-networks (a conversion of identical fp32 weights),
so they are stored once, in `fp16/weights.bin`, as the fp32 bundle stores its own.
Torch-free (onnx, onnxruntime's float16 converter).
"""

from pathlib import Path

import numpy as np

from exporters.registry import register_target
from exporters.shared_weights import WEIGHTS, share_weights
from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.accuracy import check_val, record_accuracy

TARGET = "fp16"
# |fp16 - fp32| on parity clips, relative to the largest fp32 logit: a graph further off
# than this is a conversion bug, not rounding (seen here: <= 3% on the tiny model at 16F).
TOLERANCE = 0.05
PARITY_CLIPS = 2


def _requires():
    try:
        import onnxruntime.transformers.float16  # noqa: F401
    except ImportError:
        raise FanEdgeError(
            "ONNX Runtime's float16 converter is missing: pip install 'fan-edge[cpu]'"
        ) from None


def topological_sort(graph) -> None:
    """Order `graph`'s nodes so each follows its inputs' producers (the converter appends
    the output casts last, which the ONNX checker and TensorRT's parser refuse)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise FanEdgeError(
                f"the fp16 graph has a node whose input is never produced "
                f"({waiting[0].op_type} {waiting[0].name!r}): a bug, please report it"
            )
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def convert(bundle: Bundle, sub: Subnetwork):
    """The sub-network's graph in fp16 (float32 input and output), weights inline."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(bundle.file(sub.file)))  # external weights loaded
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    topological_sort(half.graph)
    onnx.checker.check_model(half, full_check=True)
    return half


def parity(bundle: Bundle, sub: Subnetwork, graph: Path) -> dict:
    """fp16 against fp32 on ONNX Runtime's CPU provider: largest logit difference (absolute
    and relative to the largest logit) and top-1 agreement, on fixed random clips."""
    import onnxruntime as ort

    size = bundle.input["size"]
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((PARITY_CLIPS, sub.frames, 3, size, size), dtype=np.float32)

    def run(path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: clips})[0]

    fp32, fp16 = run(bundle.file(sub.file)), run(graph)
    diff = float(np.abs(fp32 - fp16).max())
    relative = diff / max(float(np.abs(fp32).max()), 1e-6)
    if not relative <= TOLERANCE:
        raise FanEdgeError(
            f"the fp16 graph for {sub.frames} frames differs from fp32 by {diff:.3g} "
            f"({100 * relative:.1f}% of the largest logit, > {100 * TOLERANCE:.0f}%): "
            "this model does not survive fp16; deploy fp32 or int8"
        )
    return {
        "max_abs_diff": diff,
        "relative": relative,
        "top1_agreement": float((fp32.argmax(1) == fp16.argmax(1)).mean()),
        "clips": PARITY_CLIPS,
    }


def check_options(*, fold: bool = False, val: str | None = None, val_clips=None) -> None:
    check_val(val, val_clips)


@register_target(
    TARGET,
    options=("val", "val_clips"),
    requires=_requires,
    check=check_options,
    description="fp16 ONNX graphs for GPUs (ORT CUDA, TensorRT 11), weights shared",
)
def build_fp16(
    bundle: Bundle, folder: Path, *, val: str | None = None, val_clips: int | None = None
) -> list[dict]:
    import onnxruntime

    models, records = {}, []  # options checked by `build` (check_options)
    for sub in bundle.subnetworks:
        name = Path(sub.file).with_suffix(".fp16.onnx").name
        models[name] = convert(bundle, sub)
        records.append(
            {
                "frames": sub.frames,
                "file": name,
                "precision": "fp16",
                "weights": bundle.manifest["weights"],
                "versions": {"onnxruntime": onnxruntime.__version__},
            }
        )
    shared = share_weights(models, folder)
    by_frames = {s.frames: s for s in bundle.subnetworks}
    for r in records:
        r["parity"] = parity(bundle, by_frames[r["frames"]], folder / r["file"])
        if shared:
            r["reads"] = [WEIGHTS]
    record_accuracy(bundle, folder, records, val, val_clips)
    return records
