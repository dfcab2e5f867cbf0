"""Every sub-network of a bundle in one ONNX Runtime session: one copy of the weights, at the
speed of private fused ones.

One session per sub-network has to choose: either each session re-lays out (NCHWc) and
fuses its own copy of the shared convolution weights (fast, one copy per sub-network), or
the weights stay as they are on disk, shared, with those optimizations off (one copy,
slower). One session holding all sub-networks needs neither: the graphs are merged into
one, the shared tensors of `weights.bin` enter it once, and ONNX Runtime's layout
optimizer re-lays each out once for every convolution that reads it; each sub-network's
norms become cheap per-channel ops beside them (Conv+BatchNorm fusion, which would write a
private fused copy of a shared weight per sub-network, stays off). One activation arena
serves all sub-networks, since one runs at a time per call.

A call runs one sub-network: its clip is fed, the other inputs get an empty batch (their
nodes run on empty tensors, about 1 ms for TSM-R50's 4000 nodes), and only its logits are
fetched. Measured by `benchmarks/latency.py` and `benchmarks/runtime_memory.py`.
"""

from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle
from fan_edge.errors import FanEdgeError


def prefix(frames: int) -> str:
    return f"t{frames}/"


def joint_model(bundle: Bundle, graphs: dict[int, str]):
    """One ModelProto holding the graphs (frames -> file in the bundle) and the arrays of its
    external tensors: a tensor stored once in a weights file (same file, offset, length)
    enters once, named `shared/<i>/<name>`, still external (its array is a memory map of
    the file: `add_external_initializers` hands it to ONNX Runtime without a copy); every
    other name is prefixed with its sub-network (`t8/...`): inputs `t8/clip`, outputs
    `t8/logits`. Returns (model, {name: array})."""
    import onnx
    from onnx import helper

    shared: dict[tuple, str] = {}  # (file, offset, length) -> name in the joint graph
    arrays: dict[str, np.ndarray] = {}
    maps: dict[str, np.memmap] = {}
    nodes, inputs, outputs, initializers, value_info = [], [], [], [], []
    opsets: dict[str, int] = {}
    ir_version = 0
    for frames, file in graphs.items():
        model = onnx.load(str(bundle.file(file)), load_external_data=False)
        ir_version = max(ir_version, model.ir_version)
        for o in model.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
        p = prefix(frames)
        rename = {}
        for t in model.graph.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                rename[t.name] = t.name = p + t.name
                initializers.append(t)
                continue
            key, own = (*_place(bundle, file, t), t.data_type, tuple(t.dims)), t.name
            if key not in shared:
                shared[key] = f"shared/{len(shared)}/{own}"
                arrays[shared[key]] = _array(bundle, t, key, maps)
                t.name = shared[key]
                initializers.append(t)
            rename[own] = shared[key]

        def name(n: str, p=p, rename=rename) -> str:
            return rename.get(n, p + n) if n else n

        for n in model.graph.node:
            if any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute):
                raise FanEdgeError(f"{file}: control-flow nodes are not supported in one session")
            inputs_, outputs_ = [name(i) for i in n.input], [name(o) for o in n.output]
            del n.input[:], n.output[:]
            n.input.extend(inputs_)
            n.output.extend(outputs_)
            n.name = p + n.name
            nodes.append(n)
        graph_inputs = [v for v in model.graph.input if v.name not in rename]
        for v in [*graph_inputs, *model.graph.output, *model.graph.value_info]:
            v.name = name(v.name)
            # A symbolic dimension ("batch") names one size across the whole graph in ONNX
            # Runtime, and each call runs one sub-network with a real batch and the others
            # with an empty one: each sub-network gets its own.
            for d in v.type.tensor_type.shape.dim:
                if d.dim_param:
                    d.dim_param = p + d.dim_param
        inputs += graph_inputs
        outputs += list(model.graph.output)
        value_info += list(model.graph.value_info)
    graph = helper.make_graph(
        nodes, "fan_edge_joint", inputs, outputs, initializers, value_info=value_info
    )
    opset_imports = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    joint = helper.make_model(graph, opset_imports=opset_imports)
    joint.ir_version = ir_version
    return joint, arrays


def _place(bundle: Bundle, graph: str, tensor) -> tuple[str, int, int]:
    """Where an external tensor lies: (bundle file, offset, length), after checking that
    the file is one the manifest lists (hence hashed and inside the bundle)."""
    info = {e.key: e.value for e in tensor.external_data}
    if "location" not in info or "length" not in info:
        raise FanEdgeError(
            f"{graph}: tensor {tensor.name} has no external location or length; re-export"
        )
    location = (Path(graph).parent / info["location"]).as_posix()
    if location not in bundle.manifest["files"]:
        raise FanEdgeError(
            f"{graph} reads weights from {info['location']!r}, which the manifest does not "
            "list; refusing to load it: re-export or rebuild the bundle"
        )
    return location, int(info.get("offset", 0)), int(info["length"])


def _array(bundle: Bundle, tensor, key: tuple, maps: dict) -> np.ndarray:
    """The tensor's values: a view of the memory-mapped file (no copy)."""
    import onnx

    location, offset, length = key[:3]
    if location not in maps:
        maps[location] = np.memmap(bundle.file(location), dtype=np.uint8, mode="r")
    data = maps[location]
    if offset + length > len(data):
        raise FanEdgeError(
            f"tensor {tensor.name} lies past the end of {location}; re-export the bundle"
        )
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return data[offset : offset + length].view(dtype).reshape(tuple(tensor.dims))


class JointSession:
    """One InferenceSession over every sub-network; `runner(frames)` -> run(x) -> logits.

    `make_session(model_bytes, external_arrays)` creates the session."""

    def __init__(self, bundle: Bundle, graphs: dict[int, str], make_session):
        self.frames = sorted(graphs)
        self.size = bundle.input["size"]
        self.input = bundle.manifest["input"]["name"]
        self.output = bundle.manifest["output"]["name"]
        model, arrays = joint_model(bundle, graphs)
        self._arrays = arrays  # the session reads them (memory maps): kept alive with it
        self.session = make_session(model.SerializeToString(), arrays)
        self._empty = {
            n: np.zeros((0, n, 3, self.size, self.size), np.float32) for n in self.frames
        }

    def runner(self, frames: int):
        if frames not in self._empty:
            raise FanEdgeError(f"no {frames}-frame sub-network in this session")
        others = {prefix(n) + self.input: e for n, e in self._empty.items() if n != frames}
        name, out = prefix(frames) + self.input, [prefix(frames) + self.output]

        def run(x: np.ndarray) -> np.ndarray:
            return self.session.run(out, {**others, name: x})[0]

        return run
