"""Fold Weight Alteration into the next convolution of an ONNX graph, at load time (numpy).

The exported shared graphs keep `x + dw(x)` (a per-channel scale a) before a block's first
convolution so the convolution weights stay shared. For speed, when memory sharing is not
wanted, `conv(x + a*x) = conv_{W*(1+a)}(x)`: this pass rewrites the graph in memory so each
such convolution gets a private, pre-scaled weight and the depthwise conv and add disappear.
"""


def fold_alterations(model) -> int:
    """Rewrite `model` (an onnx.ModelProto with weights loaded) in place; return folds done."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: node for node in graph.node for o in node.output}
    removed, folded = set(), 0
    for add in list(graph.node):
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        for x, d in (add.input, add.input[::-1]):
            dw = producer.get(d)
            if dw is None or dw.op_type != "Conv" or list(dw.input[:1]) != [x]:
                continue
            bias = dw.input[2] if len(dw.input) > 2 and dw.input[2] else None
            if bias is not None and (bias not in inits or numpy_helper.to_array(inits[bias]).any()):
                continue  # the exporter adds an all-zero bias; anything else is not ours
            w = inits.get(dw.input[1])
            if w is None or list(w.dims)[1:] != [1, 1, 1]:
                continue  # not a 1x1 depthwise conv
            users = consumers.get(add.output[0], [])
            if not users or any(u.op_type != "Conv" or u.input[0] != add.output[0]
                                or u.input[1] not in inits for u in users):  # fmt: skip
                continue
            if any(a.name == "group" and a.i != 1 for u in users for a in u.attribute):
                continue
            scale = 1.0 + numpy_helper.to_array(w).reshape(-1)
            for u in users:
                weight = numpy_helper.to_array(inits[u.input[1]])
                new_name = f"{u.input[1]}::folded::{u.name or folded}"
                graph.initializer.append(
                    numpy_helper.from_array(
                        (weight * scale[None, :, None, None]).astype(weight.dtype), new_name
                    )
                )
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
