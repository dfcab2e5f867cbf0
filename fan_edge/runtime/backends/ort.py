"""ONNX Runtime backends: ort-trt, ort-cuda and ort-cpu run the bundle's ONNX graphs with
one execution provider each. onnxruntime is imported only when used; a missing one is a
one-line error naming the extra to install.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.backends.registry import register_backend

RunFn = Callable[[np.ndarray], np.ndarray]
_JOINT_LOCK = threading.Lock()
ORT_HINT = "ONNX Runtime is not installed: pip install 'fan-edge[cpu]' (or [gpu] for CUDA)"

# ONNX Runtime rewrites that create new weight tensors (so each session gets a private copy).
WEIGHT_REWRITING_OPTIMIZERS = [
    "ConvBNFusion",
    "ConvAddFusion",
    "ConvMulFusion",
    "MatMulAddFusion",
    "GemmTransposeFusion",
]


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
    sub-networks are loaded. On the CPU a bundle's own graphs all go into one session
    (joint.py; GPU providers keep a session each until that is verified on a GPU): the
    weights enter once and are re-laid out once, at nearly the speed of private fused
    weights. A build target's graphs (int8, fp16) get one session each over one memory map
    of their weights file (`add_initializer`), with the optimizations that would rewrite
    the weights (Conv+BatchNorm fusion, weight pre-packing) off. `False` gives each
    sub-network its own session, alterations folded, fused and pre-packed: the fastest,
    with a private copy of the weights each.
    """

    name: str
    provider: str
    share_weights: bool = True
    threads: int | None = None
    _shared: dict = field(default_factory=dict, repr=False)
    _joint: dict = field(default_factory=dict, repr=False)

    def available(self) -> bool:
        try:
            return self.provider in _ort().get_available_providers()
        except FanEdgeError:
            return False

    target: str | None = None  # runs this build target's graphs instead of the bundle's
    build_args = ""  # what `fan-edge build --target` needs besides the target (class-wide)

    def graph(self, bundle: Bundle, sub: Subnetwork) -> str:
        """The graph this engine runs for `sub`, relative to the bundle: the sub-network's,
        or the artifact `fan-edge build --target` made for it."""
        if self.target is None:
            return sub.file
        from fan_edge.runtime.backends.registry import artifacts

        record = artifacts(bundle, self.target).get(sub.frames)
        if record is None:
            raise FanEdgeError(
                f"{bundle.path} has no {self.target} graph for {sub.frames} frames: "
                f"fan-edge build {bundle.path} --target {self.target}{self.build_args}"
            )
        return record["file"]

    def load(self, bundle: Bundle, sub: Subnetwork) -> RunFn:
        ort = _ort()
        graph = self.graph(bundle, sub)
        if not self.available():
            raise FanEdgeError(
                f"ONNX Runtime here has no {self.provider}: "
                "pip install 'fan-edge[gpu]' (onnxruntime-gpu) on a CUDA machine"
            )
        if (
            self.share_weights
            and self.target is None
            and self.provider == "CPUExecutionProvider"  # GPU providers: not verified
            and bundle.manifest["weights"] == "shared"
        ):
            return self._joint_session(bundle).runner(sub.frames)
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        kwargs = {}
        if self.share_weights and self._has_external_data(bundle, graph):
            # Layout optimisations (NCHWc) re-order conv weights into new private tensors.
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.add_session_config_entry("session.disable_prepacking", "1")
            # Without the arena, activations are freed after each run instead of being held
            # per session: loaded sub-networks then cost little more than one.
            so.enable_cpu_mem_arena = False
            for name, value in self._shared_initializers(bundle, graph).items():
                so.add_initializer(name, value)
            kwargs["disabled_optimizers"] = WEIGHT_REWRITING_OPTIMIZERS
        source = str(bundle.file(graph))
        if not self.share_weights:
            source = self._private_source(bundle, graph)
        sess = ort.InferenceSession(source, so, providers=[self.provider], **kwargs)
        in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        return lambda x: sess.run([out_name], {in_name: x})[0]

    def _joint_session(self, bundle: Bundle, frames: tuple[int, ...] | None = None):
        """Every sub-network of the bundle (or those of `frames`) in one session, made on
        first use."""
        key = (str(bundle.path.resolve()), frames)
        with _JOINT_LOCK:  # two first calls at once build it once
            return self._joint_session_locked(bundle, frames, key)

    def _joint_session_locked(self, bundle: Bundle, frames, key):
        from fan_edge.runtime.joint import JointSession

        if key not in self._joint:
            ort = _ort()
            so = ort.SessionOptions()
            if self.threads:
                so.intra_op_num_threads = self.threads

            def make(model: bytes, arrays: dict):
                values = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]
                so.add_external_initializers(list(arrays), values)  # no copy of the weights
                session = ort.InferenceSession(
                    model,
                    so,
                    providers=[self.provider],
                    disabled_optimizers=WEIGHT_REWRITING_OPTIMIZERS,
                )
                session.fan_edge_weights = values  # alive as long as the session
                return session

            graphs = {
                s.frames: self.graph(bundle, s)
                for s in bundle.subnetworks
                if frames is None or s.frames in frames
            }
            self._joint[key] = JointSession(bundle, graphs, make)
        return self._joint[key]

    @staticmethod
    def _has_external_data(bundle: Bundle, graph: str) -> bool:
        from fan_edge.bundle import external_locations

        return bool(external_locations(bundle.file(graph)))

    def _private_source(self, bundle: Bundle, graph: str) -> bytes | str:
        return self._folded_bytes(bundle, graph)

    @staticmethod
    def _folded_bytes(bundle: Bundle, graph: str) -> bytes:
        """The graph with its weights loaded and Weight Alteration folded (private copy).

        The same pass as `export --fold`, alterations only: the session below fuses
        BatchNorm itself (default optimization level), so fusing it here would only cost a
        second session at load.
        """
        import onnx

        from fan_edge.runtime.fold import fold_graph

        model = onnx.load(str(bundle.file(graph)))  # external data: checked by Bundle
        fold_graph(model, batchnorm=False)
        return model.SerializeToString()

    def _shared_initializers(self, bundle: Bundle, graph: str) -> dict:
        """OrtValues over one memory map of each weights file, created once per bundle."""
        import onnx

        ort = _ort()
        proto = onnx.load(str(bundle.file(graph)), load_external_data=False).graph
        folder = Path(graph).parent  # external data lies relative to its graph
        out = {}
        for t in proto.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in t.external_data}
            location = (folder / info["location"]).as_posix()
            if location not in bundle.manifest["files"]:  # listed, hence hashed and inside
                raise FanEdgeError(
                    f"{graph} reads weights from {info['location']!r}, which the manifest "
                    "does not list; refusing to load it: re-export or rebuild the bundle"
                )
            key = str(bundle.file(location).resolve())
            if key not in self._shared:
                self._shared[key] = ({}, np.memmap(key, dtype=np.uint8, mode="r"))
            values, mm = self._shared[key]
            off, n = int(info.get("offset", 0)), int(info["length"])
            # by place, not name alone: two graphs may hold different tensors of one name
            if (t.name, off, n) not in values:
                if off + n > len(mm):
                    raise FanEdgeError(
                        f"{graph}: tensor {t.name} lies past the end of "
                        f"{info['location']}; re-export the bundle"
                    )
                dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
                arr = mm[off : off + n].view(dtype).reshape(tuple(t.dims))
                values[t.name, off, n] = (arr, ort.OrtValue.ortvalue_from_numpy(arr))  # no copy
            out[t.name] = values[t.name, off, n][1]
        return out


# (name, provider, rank, device, description), best first
PROVIDERS = (
    ("ort-trt", "TensorrtExecutionProvider", 10, "gpu", "ONNX Runtime's TensorRT provider"),
    ("ort-cuda", "CUDAExecutionProvider", 20, "gpu", "ONNX Runtime on CUDA"),
    ("ort-cpu", "CPUExecutionProvider", 30, "cpu", "ONNX Runtime on the CPU"),
)
for _name, _provider, _rank, _device, _text in PROVIDERS:
    register_backend(
        _name, rank=_rank, device=_device, description=_text, verified_here=_device == "cpu"
    )(
        lambda share_weights, threads, n=_name, p=_provider: OrtBackend(
            n, p, share_weights=share_weights, threads=threads
        )
    )
