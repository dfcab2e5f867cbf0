"""Checkpoint -> bundle: numerics, weight sharing on disk, integrity, atomicity."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters import export
from fan_edge import FanEdgeError
from fan_edge.bundle import MANIFEST, Bundle, file_record, seal
from fan_edge.train.checkpoint import load_model

FRAMES = [4, 6, 8, 16, 20]  # 6 and 20 are not trained: nearest sub-network, run at that T


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bundle"
    return export(tiny_checkpoint, FRAMES, out)


@pytest.fixture(scope="module")
def folded(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("f") / "bundle"
    return export(tiny_checkpoint, [4, 8, 16], out, fold=True)


def _ort_vs_torch(path, model, n, seed=0):
    x = torch.randn(3, n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"clip": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()  # FAN forward: picks the nearest sub-network itself
    return np.abs(got - want).max()


def test_every_graph_matches_pytorch(bundle, tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint)
    b = Bundle(bundle)
    assert b.frames == tuple(FRAMES)
    assert {s.frames: s.trained_frames for s in b.subnetworks} == {4: 4, 6: 8, 8: 8, 16: 16, 20: 16}
    for s in b.subnetworks:
        assert _ort_vs_torch(b.file(s.file), model, s.frames) < 1e-4


def test_folded_graphs_match_pytorch_and_stand_alone(folded, tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint)
    b = Bundle(folded)
    assert b.manifest["weights"] == "folded" and b.manifest["weights_file"] is None
    for s in b.subnetworks:
        assert _ort_vs_torch(b.file(s.file), model, s.frames, seed=1) < 1e-4
        g = onnx.load(str(b.file(s.file)), load_external_data=False)
        ops = {n.op_type for n in g.graph.node}
        assert "BatchNormalization" not in ops  # folded into the convolutions
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in g.graph.initializer)


def _alterations_left(graph) -> int:
    """`x + conv(x)` patterns: what an unfolded Weight Alteration looks like in ONNX."""
    producer = {o: n for n in graph.node for o in n.output}
    return sum(
        any(
            producer.get(d) is not None
            and producer[d].op_type == "Conv"
            and producer[d].input[0] == x
            for x, d in (n.input, n.input[::-1])
        )
        for n in graph.node
        if n.op_type == "Add" and len(n.input) == 2
    )


def test_fold_leaves_no_norm_or_alteration_and_matches_pytorch(folded, bundle, tiny_checkpoint):
    """--fold = the ordinary export + the runtime's ONNX pass: standard ops, dynamic batch."""
    model, _ = load_model(tiny_checkpoint)
    for s in Bundle(folded).subnetworks:
        g = onnx.load(str(folded / s.file))
        assert _alterations_left(onnx.load(str(bundle / s.file)).graph) == 8  # the pattern
        assert _alterations_left(g.graph) == 0
        ops = [n.op_type for n in g.graph.node]
        assert "BatchNormalization" not in ops
        assert {n.domain for n in g.graph.node} <= {"", "ai.onnx"}
        assert [(o.domain, o.version) for o in g.opset_import] == [("", 18)]
        net = model.subnetwork(model.frames.index(s.trained_frames)).eval()
        sess = ort.InferenceSession(str(folded / s.file), providers=["CPUExecutionProvider"])
        for batch in (1, 5):  # the batch dimension stays dynamic
            x = torch.randn(batch, s.frames, 3, 32, 32, generator=torch.Generator().manual_seed(2))
            with torch.no_grad():
                want = net(x).numpy()
            assert np.abs(sess.run(None, {"clip": x.numpy()})[0] - want).max() < 1e-4


def test_fold_graph_on_a_shared_graph_keeps_its_logits(bundle):
    from fan_edge.runtime.fold import fold_graph

    proto = onnx.load(str(bundle / "fan_8f.onnx"))  # weights loaded from weights.bin
    x = np.random.default_rng(3).standard_normal((2, 8, 3, 32, 32), dtype=np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"clip": x}
    )[0]
    norms = sum(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert tuple(fold_graph(proto, batchnorm=True)) == (8, norms)
    onnx.checker.check_model(proto, full_check=True)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"clip": x}
    )[0]
    assert np.abs(got - want).max() < 1e-4
    assert tuple(fold_graph(proto, batchnorm=True)) == (0, 0)  # nothing left to fold


def test_each_shared_tensor_is_stored_exactly_once(bundle, tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint)
    shared = {
        k
        for k, t in model.state_dict(keep_vars=True).items()
        if any(t is p for p in model.shared_parameters())
    }
    weights = bundle / "weights.bin"
    where: dict[str, set] = {}
    inline: dict[str, list[str]] = {}
    for s in Bundle(bundle).subnetworks:
        g = onnx.load(str(bundle / s.file), load_external_data=False)
        for t in g.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in t.external_data}
                assert info["location"] == "weights.bin"
                where.setdefault(t.name, set()).add((int(info["offset"]), int(info["length"])))
            else:
                inline.setdefault(s.file, []).append(t.name)
    # Every shared parameter lives in weights.bin, at one place, referenced by every graph.
    assert shared <= set(where)
    assert all(len(places) == 1 for places in where.values())
    spans = sorted(next(iter(p)) for p in where.values())
    assert all(off % 4096 == 0 for off, _ in spans)
    assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # no overlap
    assert weights.stat().st_size < sum(n for _, n in spans) + 4096 * len(spans)
    # No graph carries a shared tensor inline, nor another sub-network's private tensors.
    for file, names in inline.items():
        assert not set(names) & shared
        own = {f"branches.{i}." for i in range(3)}
        used = {o for o in own if any(o in n for n in names)}
        assert len(used) == 1, (file, used)
    data = np.fromfile(weights, dtype=np.uint8)
    conv = model.state_dict()["backbone.layer2.0.conv1.weight"].numpy()
    off, length = next(iter(where["backbone.layer2.0.conv1.weight"]))
    assert np.array_equal(data[off : off + length].view(np.float32).reshape(conv.shape), conv)


def test_manifest_describes_everything(bundle, tiny_checkpoint):
    m = json.loads((bundle / MANIFEST).read_text())
    assert m["input"]["layout"] == "BTCHW" and m["input"]["size"] == 32
    assert m["model"]["trained_frames"] == [4, 8, 16]
    assert len(m["classes"]) == m["model"]["num_classes"]
    assert set(m["files"]) == {"weights.bin", *(f"fan_{n}f.onnx" for n in FRAMES)}
    assert all(s["gflops"] > 0 and s["max_abs_diff"] < 1e-4 for s in m["subnetworks"])
    assert m["source"]["sha256"] and m["versions"]["onnxruntime"]
    assert "TensorrtExecutionProvider" in m["notes"]["execution_providers"]


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_file_fails_the_hash_check(bundle, tmp_path):
    b = _copy(bundle, tmp_path / "b")
    raw = bytearray((b / "weights.bin").read_bytes())
    raw[5000] ^= 0xFF
    (b / "weights.bin").write_bytes(bytes(raw))
    with pytest.raises(FanEdgeError, match="sha256"):
        Bundle(b)


def test_external_data_path_escaping_the_bundle_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path / "b")
    (tmp_path / "weights.bin").write_bytes((b / "weights.bin").read_bytes())
    g = onnx.load(str(b / "fan_4f.onnx"), load_external_data=False)
    for t in g.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../weights.bin"
    onnx.save_model(g, str(b / "fan_4f.onnx"))
    m = json.loads((b / MANIFEST).read_text())
    m["files"]["fan_4f.onnx"] = file_record(b / "fan_4f.onnx")  # a consistent forgery
    (b / MANIFEST).write_text(json.dumps(seal(m)))
    with pytest.raises(FanEdgeError, match="outside"):
        Bundle(b)


def test_failed_export_leaves_nothing_behind(tiny_checkpoint, tmp_path, monkeypatch):
    import exporters.onnx_bundle as ob

    with pytest.raises(FanEdgeError, match="differs from PyTorch"):
        # tolerance -1: every graph "fails" verification, after its files were written
        ob.export_onnx_bundle(tiny_checkpoint, [4, 8], tmp_path / "out", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_is_not_overwritten_by_default(bundle, tiny_checkpoint):
    with pytest.raises(FanEdgeError, match="already exists"):
        export(tiny_checkpoint, [4], bundle)


def test_tensorrt_missing_is_a_one_line_error(cli, tiny_checkpoint, tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this test checks the message when it is not")
    except ImportError:
        pass
    code, _, err = cli("export", tiny_checkpoint, "--engine", "trt", "--out", tmp_path / "b")
    assert code == 1 and "TensorRT is not installed" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_trt_options_need_the_trt_engine(cli, tiny_checkpoint, tmp_path):
    code, _, err = cli("export", tiny_checkpoint, "--fp16", "--out", tmp_path / "b")
    assert code == 1 and "--fp16 needs --engine trt" in err


def _forge(b, edit):
    """Apply `edit` to the manifest and keep its own bookkeeping (its sha256) consistent."""
    m = json.loads((b / MANIFEST).read_text())
    edit(m)
    (b / MANIFEST).write_text(json.dumps(seal(m)))


def test_weights_file_outside_the_bundle_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path / "b")
    _forge(b, lambda m: m.update(weights_file="../../etc/passwd"))
    with pytest.raises(FanEdgeError, match="not listed"):
        Bundle(b)


def test_unlisted_engine_file_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path / "b")
    _forge(b, lambda m: m.update(engines=[{"frames": 4, "file": "/tmp/evil.plan"}]))
    with pytest.raises(FanEdgeError, match="not listed"):
        Bundle(b)


@pytest.mark.parametrize("damage", ["no_subnetworks", "not_an_object", "bad_sizes", "binary"])
def test_malformed_manifest_is_a_clear_error(bundle, tmp_path, damage):
    b = _copy(bundle, tmp_path / "b")
    if damage == "binary":
        (b / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "not_an_object":
        (b / MANIFEST).write_text("[1, 2, 3]")
    elif damage == "no_subnetworks":
        _forge(b, lambda m: m.pop("subnetworks"))
    else:
        _forge(b, lambda m: m["files"]["weights.bin"].update(bytes="many"))
    with pytest.raises(FanEdgeError):
        Bundle(b)
