"""Checkpoint -> bundle of per-frame-count ONNX graphs that share one weights file.

Each requested frame count gets its own graph (T is static, batch is dynamic). Every tensor
the sub-networks share (convolutions, classifier) is written once to `weights.bin`, each at
a 4096-byte-aligned offset so it can be memory-mapped, and every graph points into that file;
a graph carries inline only its own normalization and alteration tensors. With `fold=True`
the graphs are standalone instead: the same graphs are exported, then norms and alterations
are folded into the convolutions by the runtime's ONNX pass (`fan_edge/runtime/fold.py`).
Every graph is checked by the ONNX checker and against PyTorch in ONNX Runtime before the
bundle appears; on any failure nothing is left behind.
"""

import datetime
import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

import fan_edge
from fan_edge.bundle import (
    MANIFEST,
    SCHEMA,
    SCHEMA_VERSION,
    Bundle,
    file_record,
    owned_files,
    seal,
    sha256_file,
)
from fan_edge.config import ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_dir, check_new_dir, write_json
from fan_edge.frames import validate_frame_set
from fan_edge.models import FrameAdaptiveNet, Specialized
from fan_edge.models.cost import subnet_costs
from fan_edge.runtime.fold import fold_graph
from fan_edge.train.checkpoint import load_model

log = logging.getLogger("fan_edge.export")  # progress messages (the CLI shows them)

OPSET = 18
ALIGN = 4096
WEIGHTS = "weights.bin"
TOLERANCE = 1e-4
INPUT, OUTPUT = "clip", "logits"
EP_NOTES = (
    "ONNX Runtime can run these graphs with CUDAExecutionProvider or TensorrtExecutionProvider "
    "(pip install onnxruntime-gpu instead of onnxruntime); `fan-edge export --engine trt` "
    "builds native TensorRT engines from them on the target device."
)


def export_onnx_bundle(
    checkpoint: str | Path,
    frames: list[int] | None,
    out: str | Path,
    *,
    fold: bool = False,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
) -> Path:
    """Write the bundle folder `out` and return its path; `frames` None: the frame counts
    the checkpoint was trained at."""
    out = Path(os.path.abspath(out))  # `--out .` stays valid after the folder is replaced
    replace = {
        "overwrite": overwrite,
        "owned": owned_files,
        "kind": "bundle",
        "inputs": [checkpoint],
    }
    check_new_dir(out, **replace)  # before the export's minutes, not after
    if frames is not None:
        validate_frame_set(frames)  # before loading anything
    model, ckpt = load_model(checkpoint)
    frames = list(validate_frame_set(frames or model.frames))
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    costs = {c.frames: c for c in subnet_costs(model, cfg.input_size, frames)}
    with atomic_dir(out, **replace) as tmp:
        graphs, records = {}, []
        for n in frames:
            index = model.select(n)
            net = model.subnetwork(index)
            name = f"fan_{n}f.onnx"
            log.info(f"exporting {name} ({n} frames, sub-network {model.frames[index]}F)")
            proto = _to_onnx(net, n, cfg.input_size)
            _name_by_checkpoint_key(proto, net, model)
            if fold:
                done = fold_graph(proto, batchnorm=True)
                log.info(
                    f"  folded {done.alterations} alterations and {done.batchnorms} norms "
                    "into the convolutions"
                )
            graphs[name] = (proto, net, n)
            records.append(
                {
                    "frames": n,
                    "trained_frames": model.frames[index],
                    "file": name,
                    "gflops": costs[n].gflops,
                    "params": costs[n].params,
                }
            )
        if fold:
            for name, (proto, _, _) in graphs.items():
                onnx.save_model(proto, str(tmp / name))
        else:
            _write_shared(graphs, set(model.state_dict()) - _private_keys(model), tmp)
        for rec in records:
            proto, net, n = graphs[rec["file"]]
            rec["max_abs_diff"] = _verify(tmp / rec["file"], net, n, cfg.input_size, tolerance)
            log.info(f"  verified {rec['file']}: max |ORT - PyTorch| = {rec['max_abs_diff']:.2e}")
        manifest = _manifest(cfg, ckpt, checkpoint, records, fold)
        manifest["files"] = {p.name: file_record(p) for p in sorted(tmp.iterdir())}
        write_json(tmp / MANIFEST, seal(manifest))  # records the manifest's own sha256
        Bundle(tmp)  # the runtime's own checks, before the bundle appears
    return out


def _to_onnx(net: torch.nn.Module, frames: int, size: int) -> onnx.ModelProto:
    import onnxscript.optimizer as oo

    x = torch.randn(2, frames, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), _quiet_loggers():
        warnings.simplefilter("ignore")
        # optimize=False: the default optimizer fuses BatchNorm into the convolutions, which
        # would give every graph private copies of the shared weights. We fold constants only.
        program = torch.onnx.export(
            net.eval(),
            (x,),
            dynamo=True,
            optimize=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    proto = program.model_proto
    # Fold shape arithmetic, but never a weight: folding Transpose(fc.weight) into a new
    # constant would give each graph a private copy of a shared tensor.
    weights = set(net.state_dict())
    oo.fold_constants(
        proto,
        should_fold=lambda node: (
            False if any(v is not None and v.name in weights for v in node.inputs) else None
        ),
    )
    _drop_zero_biases(proto, weights)
    oo.remove_unused_nodes(proto)
    del proto.metadata_props[:]
    del proto.graph.value_info[:]  # intermediate shapes: ONNX Runtime infers them
    for node in proto.graph.node:  # stack traces and fx dumps: large, and leak local paths
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def _drop_zero_biases(proto: onnx.ModelProto, weights: set[str]) -> None:
    """Remove the all-zero bias the exporter gives every bias-free convolution.

    It is a graph-private constant (the size of the conv's outputs, in every graph), and for
    a Conv3d torch 2.13's exporter gets its shape wrong, which ONNX Runtime refuses. A zero
    bias adds nothing, so the Conv loses its third input. A model's own biases (weights) stay.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.input[2] in weights:
            continue
        bias = inits.get(node.input[2])
        if bias is not None and not numpy_helper.to_array(bias).any():
            del node.input[2]


class _quiet_loggers:
    """The exporter logs warnings about optional torchvision ops; they do not concern us."""

    def __enter__(self):
        self.logger = logging.getLogger("torch.onnx")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def _private_keys(model: FrameAdaptiveNet) -> set[str]:
    prefixes = [f"{n}.branches." for n, m in model.named_modules() if isinstance(m, Specialized)]
    return {k for k in model.state_dict() if any(k.startswith(p) for p in prefixes)}


def _name_by_checkpoint_key(proto: onnx.ModelProto, net, model: FrameAdaptiveNet) -> None:
    """Rename initializers from the sub-network's names to the FAN checkpoint's keys.

    In every sub-network the private norm of a layer has the same name (`layer1.0.bn1.weight`)
    but different values; the checkpoint key (`...bn1.branches.2.weight`) is unique, and a
    shared tensor gets the same key in every graph.
    """
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    renames = {}
    for init in proto.graph.initializer:
        t = tensors.get(init.name)
        if t is None or id(t) not in key_of:
            continue  # a constant made by the exporter: stays private to the graph
        if not np.array_equal(numpy_helper.to_array(init), t.detach().numpy()):
            raise FanEdgeError(f"exporter changed tensor {init.name}; cannot share it")
        renames[init.name] = key_of[id(t)]
    for init in proto.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]


def _write_shared(graphs: dict, shared: set[str], folder: Path) -> None:
    """Write `weights.bin` (each shared tensor once, aligned) and graphs pointing into it."""
    offsets: dict[str, tuple[int, int, str]] = {}
    with open(folder / WEIGHTS, "wb") as f:
        for proto, _, _ in graphs.values():
            for init in proto.graph.initializer:
                if init.name not in shared or init.name in offsets:
                    continue
                data = numpy_helper.to_array(init).tobytes()
                pad = -f.tell() % ALIGN
                f.write(b"\0" * pad)
                offsets[init.name] = (f.tell(), len(data), hashlib.sha256(data).hexdigest())
                f.write(data)
    for name, (proto, _, _) in graphs.items():
        for init in proto.graph.initializer:
            if init.name not in offsets:
                continue
            offset, length, digest = offsets[init.name]
            data = numpy_helper.to_array(init).tobytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise FanEdgeError(f"tensor {init.name} differs between graphs; cannot share it")
            init.raw_data = data
            set_external_data(init, WEIGHTS, offset=offset, length=length)
            init.ClearField("raw_data")
        onnx.save_model(proto, str(folder / name))


def _verify(path: Path, net: torch.nn.Module, frames: int, size: int, tol: float) -> float:
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path), full_check=False)
    except onnx.checker.ValidationError as e:
        raise FanEdgeError(
            f"{path.name} fails the ONNX checker: {str(e).splitlines()[0]}"
        ) from None
    x = torch.randn(2, frames, 3, size, size, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        want = net.eval()(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT], {INPUT: x.numpy()})[0]
    diff = float(np.abs(got - want).max())
    if not diff <= tol:
        raise FanEdgeError(
            f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.2e} "
            f"(> {tol:.0e}); export aborted, no bundle written"
        )
    return diff


def _manifest(cfg: ModelConfig, ckpt: dict, checkpoint, records: list, fold: bool) -> dict:
    import onnxruntime

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "arch": cfg.arch,
            "trained_frames": list(cfg.frames),
            "num_classes": cfg.num_classes,
            "mode": ckpt["train_config"]["mode"],
            "config": cfg.to_dict(),
        },
        "classes": [str(c) for c in ckpt["classes"]],
        "input": {
            "name": INPUT,
            "layout": "BTCHW",
            "shape": ["batch", "T", 3, cfg.input_size, cfg.input_size],
            "dtype": "float32",
            "color": "RGB",
            "size": cfg.input_size,
            "resize_to": cfg.resize or cfg.input_size,
            "interpolation": cfg.interpolation,
            "resize": "shorter side to resize_to, then center crop size x size",
            "scale": 1 / 255,
            "mean": list(cfg.mean),
            "std": list(cfg.std),
            "sampling": "tsn-center",
            "sampling_rule": "split the video into T equal segments; take each one's middle frame",
            **_clip_seconds(ckpt),
        },
        "output": {
            "name": OUTPUT,
            "shape": ["batch", cfg.num_classes],
            "meaning": "logits averaged over frames; softmax gives probabilities",
        },
        "weights": "folded" if fold else "shared",
        "weights_file": None if fold else WEIGHTS,
        "subnetworks": records,
        "opset": OPSET,
        "source": {
            "checkpoint": Path(checkpoint).name,
            "sha256": sha256_file(checkpoint),
            "epoch": ckpt.get("epoch"),
        },
        "versions": {
            "fan_edge": fan_edge.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "notes": {"execution_providers": EP_NOTES},
        "engines": [],
        **_validation(ckpt),
    }


def _clip_seconds(ckpt: dict, sample: int = 16) -> dict:
    """How long the training clips were (`fan-edge stream`'s default window): the median
    duration of up to `sample` of the training videos, from their headers, when the run
    trained on a CSV of videos that is on this machine; nothing otherwise (frame folders and
    the synthetic tasks have no frame rate)."""
    from fan_edge.config import DataSpec

    spec = DataSpec.of(ckpt)
    if spec is None or not spec.train.lower().endswith(".csv") or not Path(spec.train).is_file():
        return {}
    import av

    from fan_edge.data.sources import VideoCSV

    try:
        paths = VideoCSV(spec.train).paths
    except FanEdgeError:
        return {}
    seconds = []
    for path in paths[:: max(len(paths) // sample, 1)][:sample]:
        try:
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                if s.duration is not None and s.time_base:
                    seconds.append(float(s.duration * s.time_base))
                elif c.duration:
                    seconds.append(c.duration / av.time_base)
        except (av.error.FFmpegError, OSError, IndexError):
            continue
    seconds = [s for s in seconds if s > 0]
    return {"clip_seconds": round(float(np.median(seconds)), 3)} if seconds else {}


def _validation(ckpt: dict) -> dict:
    """The run's validation data, so that a build can measure accuracy on it (`--val`'s
    default): built-in data by name and seed, a list by its path and sha256."""
    from fan_edge.config import DataSpec

    spec = DataSpec.of(ckpt)
    if spec is None or not spec.val:
        return {}
    return {
        "validation": {
            "data": spec.val,
            "seed": spec.val_seed,
            "clips": spec.num_val,
            "sha256": spec.val_sha256,
        }
    }
