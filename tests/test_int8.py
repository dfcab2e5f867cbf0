"""`fan-edge build BUNDLE --target ort-int8 --calib DATA`: int8 sub-networks calibrated at
their own frame counts, int8 weights stored once, run by the `ort-int8-cpu` backend."""

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import run_without_torch

import exporters.ort_int8 as int8
from exporters import build
from exporters.shared_weights import SHARE_MIN_BYTES
from fan_edge import FanEdgeError
from fan_edge.bundle import Bundle
from fan_edge.runtime import Predictor
from fan_edge.runtime.backends import pick_backend, precision_of

CLIPS = 4


def tree(path):
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def calibrated(tiny_bundle, tmp_path_factory):
    """The tiny bundle with int8 graphs, and what each quantization call was given."""
    path = shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("int8") / "bundle")
    seen = []
    quantize = int8.quantize_subnetwork

    def spy(bundle, sub, clips, **kw):
        seen.append((sub.frames, [c.shape for c in clips]))
        return quantize(bundle, sub, clips, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(int8, "quantize_subnetwork", spy)
        build(path, "ort-int8", calib="synthetic", calib_clips=CLIPS)
    return Bundle(path), seen


def records(bundle):
    return {e["frames"]: e for e in bundle.manifest["engines"] if e["target"] == "ort-int8"}


def test_each_subnetwork_is_calibrated_on_clips_of_its_own_frame_count(calibrated):
    bundle, seen = calibrated
    assert sorted(n for n, _ in seen) == [4, 8, 16]
    size = bundle.input["size"]
    for n, shapes in seen:
        assert shapes == [(1, n, 3, size, size)] * CLIPS
        assert records(bundle)[n]["calibration"]["input_shape"] == [1, n, 3, size, size]


def test_int8_graphs_pass_the_checker_and_match_fp32_on_calibration_clips(calibrated, tmp_path):
    bundle, _ = calibrated
    videos = int8.calibration_videos("synthetic", CLIPS, tmp_path)
    fp32 = Predictor(bundle, backend="ort-cpu")
    q = Predictor(bundle, backend="ort-int8-cpu")
    assert q.precisions == "int8" and fp32.precisions == "fp32"
    for sub in bundle.subnetworks:
        rec = records(bundle)[sub.frames]
        onnx.checker.check_model(str(bundle.file(rec["file"])), full_check=True)
        graph = onnx.load(str(bundle.file(rec["file"])), load_external_data=False).graph
        ops = {n.op_type for n in graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        for x in int8.calibration_clips(bundle, sub, videos):
            want, got = fp32.logits(x, sub), q.logits(x, sub)
            assert np.abs(got - want).max() <= 0.05 * np.abs(want).max() + 1e-3
        assert 0 <= rec["agreement"]["max_abs_diff"] <= 0.05 * np.abs(want).max() + 1e-3


def test_shared_int8_weights_are_stored_once(calibrated):
    bundle, _ = calibrated
    blob = bundle.file("int8/weights.bin")
    fp32_bytes = bundle.file("weights.bin").stat().st_size
    # int8 convolution weights: a quarter of the fp32 ones (plus their per-channel scales)
    assert 0.2 * fp32_bytes < blob.stat().st_size < 0.35 * fp32_bytes
    spans, inline = [], {}
    for n, rec in records(bundle).items():
        assert rec["reads"] == ["int8/weights.bin"] and rec["weights"] == "shared"
        graph = onnx.load(str(bundle.file(rec["file"])), load_external_data=False).graph
        mine = set()
        for t in graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in t.external_data}
                mine.add((t.name, int(info["offset"]), int(info["length"])))
            elif len(t.raw_data) >= SHARE_MIN_BYTES:
                inline.setdefault((t.name, t.raw_data), []).append(n)
        spans.append(mine)
    assert spans[0] == spans[1] == spans[2]  # every graph reads the same tensors...
    ends = sorted((off, off + length) for _, off, length in spans[0])
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))  # ...stored once
    assert ends[-1][1] <= blob.stat().st_size
    assert not [k for k, where in inline.items() if len(where) > 1]  # nothing shared inline


def test_both_weight_modes_of_the_int8_backend_agree(calibrated):
    bundle, _ = calibrated
    x = np.random.default_rng(0).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    sub = bundle.subnetwork_for(8)
    shared = Predictor(bundle, backend="ort-int8-cpu", share_weights=True).logits(x, sub)
    private = Predictor(bundle, backend="ort-int8-cpu", share_weights=False).logits(x, sub)
    # the speed mode folds the norms into the convolutions, so its outputs are quantized after
    # the norm instead of before: a few quantization steps apart, no more
    assert np.abs(shared - private).max() <= 0.05 * np.abs(shared).max()


def test_auto_keeps_fp32_and_a_bundle_without_int8_says_how_to_build(calibrated, tiny_bundle):
    bundle, _ = calibrated
    assert precision_of(bundle, pick_backend("auto", bundle).name) == "fp32"
    with pytest.raises(FanEdgeError, match="--target ort-int8 --calib"):
        Predictor(tiny_bundle, backend="ort-int8-cpu").session(Bundle(tiny_bundle).subnetworks[0])


def test_private_mode_folds_into_private_weights(tiny_bundle, tmp_path):
    path = shutil.copytree(tiny_bundle, tmp_path / "b")
    build(path, "ort-int8", calib="synthetic", calib_clips=2, private=True)
    bundle = Bundle(path)
    for rec in records(bundle).values():
        assert rec["weights"] == "private"
        graph = onnx.load(str(bundle.file(rec["file"])), load_external_data=False).graph
        assert "BatchNormalization" not in {n.op_type for n in graph.node}
    sub = bundle.subnetwork_for(4)
    videos = int8.calibration_videos("synthetic", 2, tmp_path)
    for x in int8.calibration_clips(bundle, sub, videos):  # the clips it was calibrated on
        want = Predictor(bundle, backend="ort-cpu").logits(x, sub)
        got = Predictor(bundle, backend="ort-int8-cpu").logits(x, sub)
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max() + 1e-3


def _list(tmp_path, name, videos):
    listing = tmp_path / f"{name}.txt"
    listing.write_text("".join(f"{v} 0\n" for v in videos))
    return listing


@pytest.mark.parametrize(
    "case, word",
    [
        ("too-few", "has 1 video(s) but --calib-clips asks for 2"),
        ("corrupt", "calibration video"),
        ("missing-listed", "missing video"),
        ("nothing", "no calibration set at"),
        ("no-calib", "needs calibration clips: --calib"),
        ("method", "unknown --calib-method 'best'"),
    ],
)
def test_a_bad_calibration_set_is_a_one_line_error_and_changes_nothing(
    tiny_bundle, tmp_path, example_video, cli, case, word
):
    path = shutil.copytree(tiny_bundle, tmp_path / "b")
    before = tree(path)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    calib = {
        "too-few": _list(tmp_path, "few", [example_video]),
        "corrupt": _list(tmp_path, "corrupt", [example_video, bad]),
        "missing-listed": _list(tmp_path, "missing", [example_video, tmp_path / "gone.mp4"]),
        "nothing": tmp_path / "nowhere",
        "no-calib": None,
        "method": "synthetic",
    }[case]
    argv = ["build", path, "--target", "ort-int8", "--calib-clips", "2"]
    if calib is not None:
        argv += ["--calib", calib]
    if case == "method":
        argv += ["--calib-method", "best"]
    code, _, err = cli(*argv)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert word in err, err
    assert tree(path) == before


def test_a_calibration_option_without_the_int8_target_is_refused(tiny_bundle, tmp_path, cli):
    path = shutil.copytree(tiny_bundle, tmp_path / "b")
    code, _, err = cli("build", path, "--target", "trt", "--calib-method", "entropy")
    assert code == 1 and "--calib-method is not an option of --target trt" in err
    code, _, err = cli("build", path, "--target", "fp16", "--calib", "synthetic")
    assert code == 1 and "--calib is not an option of --target fp16" in err


def test_int8_build_and_run_need_no_torch(tiny_bundle, tmp_path, example_video):
    path = shutil.copytree(tiny_bundle, tmp_path / "b")
    out = run_without_torch(
        f"""
from fan_edge.cli import main
for argv in (
    ["build", {str(path)!r}, "--target", "ort-int8", "--calib", "synthetic", "--calib-clips", "1"],
    ["run", {str(example_video)!r}, "--bundle", {str(path)!r}, "--backend", "ort-int8-cpu",
     "--frames", "4"],
):
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None), e.code
"""
    )
    assert "int8" in out, out
    manifest = json.loads((path / "manifest.json").read_text())
    assert {e["frames"] for e in manifest["engines"] if e["target"] == "ort-int8"} == {4, 8, 16}


def test_speed_mode_folds_norms_into_the_int8_convolutions_keeping_their_weights(calibrated):
    from fan_edge.runtime.fold import fold_batchnorms_into_int8_convs

    bundle, _ = calibrated
    model = onnx.load(str(bundle.file(records(bundle)[4]["file"])))
    int8_weights = {
        t.name: t.raw_data for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8
    }
    norms = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    folds = fold_batchnorms_into_int8_convs(model)
    left = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert folds > 0 and left == norms - folds
    onnx.checker.check_model(model)
    after = {t.name: t.raw_data for t in model.graph.initializer}
    big = {k: v for k, v in int8_weights.items() if len(v) >= SHARE_MIN_BYTES}
    assert big and all(
        after[k] == v for k, v in big.items()
    )  # the shared int8 tensors, as they were


def _qdq_conv_bn(gamma, beta, mean, var, shared_weight_dq=False):
    """x -> Q -> DQ -> Conv 1x1 (int8 weights, per-channel DQ) -> Q -> DQ -> BN -> y."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cin, cout = 3, len(gamma)
    w_q = rng.integers(-64, 64, (cout, cin, 1, 1)).astype(np.int8)
    f32 = np.float32
    inits = {
        "x_s": np.array(0.02, f32),
        "x_z": np.array(128, np.uint8),
        "w_q": w_q,
        "w_s": rng.uniform(0.005, 0.02, cout).astype(f32),
        "w_z": np.zeros(cout, np.int8),
        "c_s": np.array(0.05, f32),
        "c_z": np.array(128, np.uint8),
        "g": np.array(gamma, f32),
        "b": np.array(beta, f32),
        "m": np.array(mean, f32),
        "v": np.array(var, f32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"]),
        helper.make_node("QuantizeLinear", ["c", "c_s", "c_z"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "c_s", "c_z"], ["cd"]),
        helper.make_node("BatchNormalization", ["cd", "g", "b", "m", "v"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 2, 2])]
    if shared_weight_dq:  # the dequantized weights also feed an output: must not fold
        outputs.append(helper.make_tensor_value_info("wd", TensorProto.FLOAT, [cout, cin, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 2, 2])],
        outputs,
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return model, inits


def _run(model, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["y"], {"x": x})[0]


def test_the_int8_norm_fold_is_the_norm_up_to_the_bias_rounding():
    from fan_edge.runtime.fold import fold_batchnorms_into_int8_convs

    gamma, beta = [0.5, 2.0, 1.5, 0.01], [3.0, -4.0, 0.5, 7.0]
    mean, var = [-2.0, 5.0, 0.1, 1.0], [0.5, 4.0, 1.0, 2.0]
    model, p = _qdq_conv_bn(gamma, beta, mean, var)
    x = np.random.default_rng(1).uniform(-2, 2, (1, 3, 2, 2)).astype(np.float32)
    assert fold_batchnorms_into_int8_convs(model) == 1
    assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 0
    onnx.checker.check_model(model)
    # the norm applied to the unquantized conv output of the quantized input and weights
    xd = (np.clip(np.round(x / p["x_s"]) + 128, 0, 255) - 128) * p["x_s"]
    wd = p["w_q"][:, :, 0, 0] * p["w_s"][:, None]
    conv = np.einsum("oi,bihw->bohw", wd, xd)
    a = p["g"] / np.sqrt(p["v"] + 1e-5)
    want = conv * a[None, :, None, None] + (p["b"] - p["m"] * a)[None, :, None, None]
    bias_step = (p["w_s"] * a * p["x_s"])[None, :, None, None]
    assert np.all(np.abs(_run(model, x) - want) <= bias_step / 2 + 1e-5)


@pytest.mark.parametrize("case", ["negative-scale", "shared-weights"])
def test_the_int8_norm_fold_leaves_what_it_cannot_fold(case):
    from fan_edge.runtime.fold import fold_batchnorms_into_int8_convs

    gamma = [1.0, -1.0] if case == "negative-scale" else [1.0, 1.0]
    model, _ = _qdq_conv_bn(gamma, [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], case == "shared-weights")
    before = model.SerializeToString()
    assert fold_batchnorms_into_int8_convs(model) == 0
    assert model.SerializeToString() == before


def test_export_refuses_int8_options_that_cannot_work_before_exporting(
    tiny_checkpoint, tmp_path, cli
):
    out = tmp_path / "bundle"
    for extra, word in (
        ([], "needs calibration clips"),
        (["--calib", "synthetic", "--fold"], "exported with --fold"),
        (["--calib", "synthetic", "--calib-method", "best"], "unknown --calib-method"),
        (["--calib", str(tmp_path / "nowhere")], "no calibration set at"),
    ):
        code, _, err = cli("export", tiny_checkpoint, "--out", out, "--engine", "ort-int8", *extra)
        assert code == 1 and word in err and err.count("\n") == 1, err
        assert not out.exists()


def test_an_int8_graph_reading_a_file_its_record_does_not_list_is_refused(calibrated, tmp_path):
    from fan_edge.bundle import MANIFEST, seal

    bundle, _ = calibrated
    path = shutil.copytree(bundle.path, tmp_path / "b")
    manifest = json.loads((path / MANIFEST).read_text())
    for e in manifest["engines"]:
        e.pop("reads", None)  # int8/weights.bin stays listed and hashed, but not as read
    (path / MANIFEST).write_text(json.dumps(seal(manifest)))
    with pytest.raises(FanEdgeError, match="which its manifest record does not list"):
        Bundle(path)


def test_accuracy_is_recorded_on_the_bundles_validation_data_as_eval_measures_it(
    calibrated, tiny_checkpoint
):
    """No --val: the training run's validation set (recorded at export) is used, read at each
    sub-network's own frame count with the deployment preprocessing, so the fp32 top-1 is
    exactly what `fan-edge eval` gives the checkpoint."""
    from fan_edge.train.api import evaluate_checkpoint

    bundle, _ = calibrated
    assert bundle.manifest["validation"] == {
        "data": "synthetic",
        "seed": 1000,
        "clips": 8,
        "sha256": None,
    }
    want = evaluate_checkpoint(tiny_checkpoint, [4, 8, 16])["results"]
    for n, rec in records(bundle).items():
        acc = rec["accuracy"]
        assert acc["clips"] == 8 and acc["data"] == "synthetic:1000"
        assert acc["fp32_top1"] == pytest.approx(want[n]["top1"])
        assert acc["loss_points"] == pytest.approx(acc["fp32_top1"] - acc["top1"])


def with_losses(bundle, tmp_path, losses):
    """A copy of `bundle` whose int8 records say they lose `losses[frames]` top-1 points."""
    from fan_edge.bundle import MANIFEST, seal
    from fan_edge.fileio import write_json

    path = shutil.copytree(bundle.path, tmp_path / "b")
    m = json.loads((path / MANIFEST).read_text())
    for e in m["engines"]:
        acc = e["accuracy"]
        acc["loss_points"] = losses[e["frames"]]
        acc["fp32_top1"], acc["top1"] = 50.0, 50.0 - losses[e["frames"]]
    write_json(path / MANIFEST, seal(m))
    return Bundle(path)


def test_precision_names_the_engine_and_max_loss_keeps_lossy_subnetworks_in_fp32(
    calibrated, tmp_path
):
    bundle = with_losses(calibrated[0], tmp_path, {4: -5.0, 8: 0.5, 16: 3.0})  # 4F clips
    q = Predictor(bundle, precision="int8")
    assert {a.precision for a in q.plan.values()} == {"int8"}
    assert Predictor(bundle, precision="fp32").backend_name == "ort-cpu"

    mixed = Predictor(bundle, precision="int8", max_loss=1.0)
    assert {n: a.precision for n, a in mixed.plan.items()} == {4: "int8", 8: "int8", 16: "fp32"}
    assert "kept fp32" in mixed.plan[16].reason and mixed.precisions == "fp32+int8"
    x = np.random.default_rng(0).standard_normal((1, 16, 3, 32, 32), dtype=np.float32)
    sub16 = bundle.subnetworks[-1]
    want = Predictor(bundle).logits(x, sub16)
    np.testing.assert_array_equal(mixed.logits(x, sub16), want)  # really the fp32 graph
    assert not np.array_equal(q.logits(x, sub16), want)  # and int8 differs from it


def test_precision_errors_are_one_line_and_name_the_fix(tiny_bundle, calibrated):
    with pytest.raises(FanEdgeError, match="build it first"):
        Predictor(tiny_bundle, precision="int8")  # no int8 artifacts
    with pytest.raises(FanEdgeError, match="drop --backend or --precision"):
        Predictor(calibrated[0], backend="ort-cpu", precision="int8")
    with pytest.raises(FanEdgeError, match="unknown precision"):
        Predictor(calibrated[0], precision="int4")
    b = Bundle(calibrated[0].path)  # as a build without --val (nor recorded data) makes it
    for e in b.manifest["engines"]:
        e.pop("accuracy")
    with pytest.raises(FanEdgeError, match="record no accuracy.*--val"):
        Predictor(b, precision="int8", max_loss=1.0)


def test_auto_picks_the_fastest_measured_precision_within_max_loss(calibrated, tmp_path, cli):
    from fan_edge.runtime.profile import PROFILE_FILE

    bundle = with_losses(calibrated[0], tmp_path, {4: 0.2, 8: 0.0, 16: 2.0})
    auto = Predictor(bundle, precision="auto")  # nothing measured yet: fp32, and why
    assert {a.precision for a in auto.plan.values()} == {"fp32"}
    assert "fan-edge bench" in auto.plan[4].reason

    code, out, _ = cli("bench", bundle.path, "--iters", "1", "--no-decode", "--json")
    assert code == 0
    measured = json.loads(out)
    assert [p["precision"] for p in measured] == ["fp32", "int8"]  # every precision it has
    assert [p["backend"] for p in measured] == ["ort-cpu", "ort-int8-cpu"]
    # Make the measurement say int8 is faster at 4 and slower at 8 frames.
    path = bundle.path / PROFILE_FILE
    doc = json.loads(path.read_text())
    for key, prof in doc["profiles"].items():
        for n, r in prof["subnetworks"].items():
            ms = {"4": 10.0, "8": 30.0, "16": 10.0}[n] * (2 if "fp32" in key else 1)
            if "int8" in key and n == "8":
                ms = 90.0
            r["p50_ms"] = r["p90_ms"] = r["p99_ms"] = ms
    path.write_text(json.dumps(doc))
    auto = Predictor(bundle, precision="auto")
    assert {n: a.precision for n, a in auto.plan.items()} == {4: "int8", 8: "fp32", 16: "fp32"}
    assert "int8 loses 2.00 points > 1" in auto.plan[16].reason  # faster, but loses too much
    loose = Predictor(bundle, precision="auto", max_loss=2.5)
    assert loose.plan[16].precision == "int8"

    code, out, _ = cli(
        "run",
        calibrated_video(tmp_path),
        "--bundle",
        bundle.path,
        "--precision",
        "auto",
        "--frames",
        "4",
    )
    assert code == 0 and "(int8: auto: fastest" in " ".join(out.split())


def calibrated_video(tmp_path):
    return int8.calibration_videos("synthetic", 1, tmp_path)[0]
