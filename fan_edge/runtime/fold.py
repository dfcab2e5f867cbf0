"""Fold Weight Alteration (and optionally BatchNorm) into the convolutions of an ONNX graph.

The one folding pass of the project, torch-free (onnx + numpy, and ONNX Runtime for the
BatchNorm part). Two users:

- the runtime's speed mode (`share_weights=False`) folds the alterations of a shared graph
  when it is loaded; ONNX Runtime fuses BatchNorm itself when it creates the session;
- `fan-edge export --fold` exports the ordinary graph and folds both here, so the bundle's
  graphs are standalone (private weights, no BatchNormalization left).

Weight Alteration: the exported graphs keep `x + dw(x)` (a per-channel scale a) before a
block's first convolution so the convolution weights stay shared. `conv_W(x + a*x) =
conv_{W*(1+a)}(x)` (the paper's W* = theta (x) W): each such convolution gets a private,
pre-scaled weight and the depthwise conv and add disappear.
"""

from __future__ import annotations

import os
import tempfile
from typing import NamedTuple

from fan_edge.errors import FanEdgeError

STANDARD_DOMAINS = ("", "ai.onnx")


class Folds(NamedTuple):
    alterations: int
    batchnorms: int


def fold_graph(model, *, batchnorm: bool = False) -> Folds:
    """Rewrite `model` (an onnx.ModelProto with weights loaded) in place; return folds done.

    Weight Alteration is always folded into the convolutions that follow it. With
    `batchnorm=True`, every BatchNormalization that follows a Conv is fused into it too.
    """
    alterations = fold_alterations(model)
    batchnorms = fuse_batchnorms(model) if batchnorm else 0
    return Folds(alterations, batchnorms)


def fold_alterations(model) -> int:
    """Fold every `x + dw(x)` that feeds only convolutions into them; return folds done."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: node for node in graph.node for o in node.output}
    outputs = {v.name for v in graph.output}
    removed, folded = set(), 0
    for add in list(graph.node):
        if add.op_type != "Add" or len(add.input) != 2 or add.output[0] in outputs:
            continue
        for x, d in (add.input, add.input[::-1]):
            dw = producer.get(d)
            if dw is None or dw.op_type != "Conv" or list(dw.input[:1]) != [x]:
                continue
            if consumers.get(d) != [add] or d in outputs:
                continue  # dw(x) is used elsewhere too: it has to stay
            bias = dw.input[2] if len(dw.input) > 2 and dw.input[2] else None
            if bias is not None and (bias not in inits or numpy_helper.to_array(inits[bias]).any()):
                continue  # the exporter adds an all-zero bias; anything else is not ours
            w = inits.get(dw.input[1])
            if w is None or len(w.dims) < 3 or any(k != 1 for k in w.dims[1:]):
                continue  # not a 1x1 (1-D, 2-D or 3-D) per-channel conv
            if _attr(dw, "group", 1) != w.dims[0]:
                continue  # not depthwise
            users = consumers.get(add.output[0], [])
            if not users or any(
                u.op_type != "Conv"
                or u.input[0] != add.output[0]
                or u.input[1] not in inits
                or _attr(u, "group", 1) != 1
                or list(inits[u.input[1]].dims)[1:2] != [w.dims[0]]
                for u in users
            ):
                continue
            scale = 1.0 + numpy_helper.to_array(w).reshape(-1)
            for u in users:
                weight = numpy_helper.to_array(inits[u.input[1]])
                shape = (1, -1) + (1,) * (weight.ndim - 2)
                new_name = f"{u.input[1]}::folded::{u.name or folded}"
                folded_weight = (weight * scale.reshape(shape)).astype(weight.dtype)
                graph.initializer.append(numpy_helper.from_array(folded_weight, new_name))
                u.input[0], u.input[1] = x, new_name
            removed |= {id(add), id(dw)}
            folded += 1
            break
    keep = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input}
    alive = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(alive)
    return folded


def fuse_batchnorms(model) -> int:
    """Fuse each Conv -> BatchNormalization into one Conv; return fusions done.

    ONNX Runtime's own ConvBNFusion does the algebra: the graph goes through a session at
    the basic optimization level and the optimized model it writes replaces `model`. Basic
    level rewrites are provider-independent and use standard ONNX ops only (besides the
    fusion: constant folding of weight-only subgraphs, Constant nodes become initializers,
    no-op removal); shape arithmetic on the dynamic batch dimension stays, and initializers
    are written inline (no external data file is set). Those properties are checked below,
    since a different ONNX Runtime version could break them.
    """
    import onnx
    import onnxruntime as ort

    before = _count(model, "BatchNormalization")
    if not before:
        return 0
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise FanEdgeError(f"fold: tensor {t.name} is not loaded (external data)")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # errors only
    with tempfile.TemporaryDirectory(prefix="fan-edge-fold-") as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        out = onnx.load(so.optimized_model_filepath)  # would fail on external data: none set
    _check_optimized(model, out, ort.__version__)
    # ONNX Runtime declares every domain it knows; keep the ones the graph uses.
    used = {n.domain for n in out.graph.node} | {""}
    keep = [o for o in out.opset_import if o.domain in used]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    del out.graph.value_info[:]  # intermediate shapes: ONNX Runtime infers them
    model.CopyFrom(out)
    return before - _count(model, "BatchNormalization")


def fold_batchnorms_into_int8_convs(model) -> int:
    """In an int8 (QDQ) graph, fold each BatchNormalization into the quantized Conv before it;
    return folds done. `model` must have its weights loaded.

    The int8 target leaves norms as their own fp32 ops so that the int8 convolution weights
    stay shared: `DQ(x) -> Conv(DQ(Wq, s)) -> Q -> DQ -> BN`. A norm is per output channel,
    y = a*conv + b, and so is the weights' dequantization scale: conv(x, Wq*s)*a + b =
    conv(x, Wq*(s*a)) + b. Each such Conv gets a private scale s*a and an int32 bias b (in
    the input scale times s*a, as the quantizer writes biases); its int8 weights stay the
    shared tensor, the Q/DQ pair and the norm disappear, and ONNX Runtime can fuse what is
    left into one integer convolution. A norm with a non-positive a (the scale would flip
    sign) is left as it is.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: node for node in graph.node for o in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {v.name for v in graph.output}

    def only_consumer(name: str, node) -> bool:
        return name not in outputs and [id(c) for c in consumers.get(name, [])] == [id(node)]

    def array(name: str):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    removed, folds = set(), 0
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        dq = producer.get(bn.input[0])
        q = (
            producer.get(dq.input[0])
            if dq is not None and dq.op_type == "DequantizeLinear"
            else None
        )
        conv = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if conv is None or conv.op_type != "Conv" or len(conv.input) != 2:
            continue
        if not (only_consumer(conv.output[0], q) and only_consumer(q.output[0], dq)):
            continue
        if not only_consumer(dq.output[0], bn):
            continue
        x_dq, w_dq = (producer.get(name) for name in conv.input)
        if x_dq is None or w_dq is None or {x_dq.op_type, w_dq.op_type} != {"DequantizeLinear"}:
            continue
        if not only_consumer(w_dq.output[0], conv):
            continue
        w_q, w_scale = array(w_dq.input[0]), array(w_dq.input[1])
        w_zero = array(w_dq.input[2]) if len(w_dq.input) > 2 else None
        x_scale = array(x_dq.input[1])
        gamma, beta, mean, var = (array(name) for name in bn.input[1:5])
        if any(v is None for v in (w_q, w_scale, x_scale, gamma, beta, mean, var)):
            continue
        if x_scale.size != 1 or w_scale.shape != (w_q.shape[0],) or _attr(w_dq, "axis", 1) != 0:
            continue
        a = gamma / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
        if not (a > 0).all():
            continue
        scale = (w_scale * a).astype(np.float32)
        bias_scale = (scale * float(x_scale.reshape(()))).astype(np.float32)
        bias = np.round((beta - mean * a).astype(np.float64) / bias_scale)
        if not np.isfinite(bias).all() or np.abs(bias).max() > np.iinfo(np.int32).max:
            continue  # a near-dead channel: its bias does not fit int32 at that scale
        bias = bias.astype(np.int32)
        base = f"{conv.output[0]}_bn"
        graph.initializer.extend(
            [
                numpy_helper.from_array(scale, f"{base}_w_scale"),
                numpy_helper.from_array(bias, f"{base}_bias_q"),
                numpy_helper.from_array(bias_scale, f"{base}_bias_scale"),
                numpy_helper.from_array(np.zeros_like(bias), f"{base}_bias_zero"),
            ]
        )
        w_inputs = [w_dq.input[0], f"{base}_w_scale"] + (
            [w_dq.input[2]] if w_zero is not None else []
        )
        new_w = helper.make_node(
            "DequantizeLinear", w_inputs, [f"{base}_w"], name=f"{base}_w_dq", axis=0
        )
        new_b = helper.make_node(
            "DequantizeLinear",
            [f"{base}_bias_q", f"{base}_bias_scale", f"{base}_bias_zero"],
            [f"{base}_b"],
            name=f"{base}_b_dq",
            axis=0,
        )
        conv.input[1] = f"{base}_w"
        conv.input.append(f"{base}_b")
        conv.output[0] = bn.output[0]
        at = list(graph.node).index(conv)
        graph.node.insert(at, new_b)
        graph.node.insert(at, new_w)
        removed |= {id(q), id(dq), id(bn), id(w_dq)}
        folds += 1
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in graph.node for name in n.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return folds


def _check_optimized(before, after, version: str) -> None:
    import onnx

    why = None
    odd = sorted(
        {f"{n.domain}::{n.op_type}" for n in after.graph.node if n.domain not in STANDARD_DOMAINS}
    )
    if odd:
        why = f"non-standard ops {', '.join(odd)}"
    elif _io(before) != _io(after):
        why = "changed graph inputs or outputs"
    elif any(t.data_location == onnx.TensorProto.EXTERNAL for t in after.graph.initializer):
        why = "external initializers"
    if why:
        raise FanEdgeError(
            f"fold: ONNX Runtime {version}'s basic optimizer wrote {why}; "
            "export without --fold (the runtime fuses at load)"
        )


def _io(model) -> list[tuple[str, bytes]]:
    """The graph's inputs (weights aside) and outputs: names, types and shapes (not their
    metadata_props, which ONNX Runtime drops)."""
    weights = {t.name for t in model.graph.initializer}
    io = [v for v in model.graph.input if v.name not in weights] + list(model.graph.output)
    return [(v.name, v.type.SerializeToString()) for v in io]


def _count(model, op_type: str) -> int:
    return sum(n.op_type == op_type for n in model.graph.node)


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default
