"""The torch-free runtime: budgets, selection, video input, CLI/API/PyTorch agreement."""

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_without_torch

from fan_edge import FanEdgeError
from fan_edge.bundle import Bundle
from fan_edge.runtime import Budget, Predictor, choose_subnetwork, parse_budget
from fan_edge.runtime.decode_cost import FEATURES
from fan_edge.runtime.profile import default_threads, device_name, write_profile
from fan_edge.runtime.video.clips import bench_codec


@pytest.mark.parametrize(
    "text,kind,value",
    [
        ("20gflops", "gflops", 20),
        ("20GFLOPs", "gflops", 20),
        ("0.5 GFLOPS", "gflops", 0.5),
        ("1tflops", "gflops", 1000),
        ("15ms", "latency", 15),
        ("0.015s", "latency", 15),
        ("250us", "latency", 0.25),
        ("8frames", "frames", 8),
        ("1frame", "frames", 1),
    ],
)
def test_budget_forms(text, kind, value):
    b = parse_budget(text)
    assert b.kind == kind and b.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "20",
        "gflops",
        "20 parsecs",
        "-5ms",
        "0ms",
        "1.5frames",
        "15 m s",
        "ms15",
        "20gflops!",
        "nan ms",
    ],
)
def test_bad_budgets_list_the_accepted_forms(text):
    with pytest.raises(FanEdgeError, match="20gflops|positive|whole") as e:
        parse_budget(text)
    assert "\n" not in str(e.value)


class _FakeBundle:
    """Just the parts of a Bundle that selection reads."""

    def __init__(self, costs):
        from fan_edge.bundle import Subnetwork

        self.subnetworks = [Subnetwork(n, n, f"fan_{n}f.onnx", g, 1) for n, g in costs.items()]
        self.frames = tuple(costs)
        self.path = "b"

    subnetwork_for = Bundle.subnetwork_for


BUNDLE = _FakeBundle({4: 16.4, 8: 32.8, 16: 65.5})


@pytest.mark.parametrize(
    "budget,frames",
    [
        ("16.4gflops", 4),
        ("32.79gflops", 4),
        ("32.8gflops", 8),
        ("65.4gflops", 8),
        ("65.5gflops", 16),
        ("1tflops", 16),
    ],
)
def test_flops_budget_picks_the_largest_that_fits(budget, frames):
    assert choose_subnetwork(BUNDLE, parse_budget(budget)).subnetwork.frames == frames


def test_nothing_fits_names_the_cheapest_option():
    with pytest.raises(FanEdgeError, match="cheapest sub-network is 4 frames at 16.4 GFLOPs"):
        choose_subnetwork(BUNDLE, parse_budget("10gflops"))
    c = choose_subnetwork(BUNDLE, parse_budget("10gflops"), allow_over_budget=True)
    assert c.subnetwork.frames == 4 and c.over_budget


def test_latency_budget_uses_the_profile_with_exact_boundaries():
    lat = {4: 5.0, 8: 9.5, 16: 20.0}
    pick = lambda s: choose_subnetwork(BUNDLE, parse_budget(s), latency_ms=lat).subnetwork.frames  # noqa: E731
    assert [pick(s) for s in ("5ms", "9.4ms", "9.5ms", "0.02s", "1s")] == [4, 4, 8, 16, 16]
    with pytest.raises(FanEdgeError, match="cheapest sub-network is 4 frames at 5 ms"):
        pick("4ms")
    with pytest.raises(FanEdgeError, match="fan-edge bench"):
        choose_subnetwork(BUNDLE, parse_budget("5ms"))


@pytest.mark.parametrize("n,frames", [(1, 4), (6, 8), (8, 8), (12, 16), (40, 16)])
def test_frames_budget_uses_the_nearest_graph(n, frames):
    assert choose_subnetwork(BUNDLE, Budget("frames", n)).subnetwork.frames == frames


def save_profile(bundle, p50_ms: dict, decode=None, **fields):
    """A profile as `bench` writes it: this device, ort-cpu, batch 1, the default threads."""
    stats = {
        str(n): {"p50_ms": ms, "p90_ms": ms, "p99_ms": ms, "runs": 1} for n, ms in p50_ms.items()
    }
    profile = {
        "device": device_name("ort-cpu"),
        "backend": "ort-cpu",
        "precision": "fp32",
        "batch": 1,
        "threads": default_threads(),
        "size": bundle.input["size"],
        "subnetworks": stats,
        **fields,
    }
    if decode is not None:
        profile["decode"] = {"features": list(FEATURES), **decode}
    return write_profile(bundle, profile)


def test_latency_profile_round_trips_through_the_bundle(tiny_bundle, tmp_path, example_video):
    b = Bundle(shutil.copytree(tiny_bundle, tmp_path / "b"))
    save_profile(b, {4: 1.0, 8: 2.0, 16: 4.0})
    Bundle(b.path)  # the profile file does not break the integrity check
    p = Predictor(b.path, backend="ort-cpu", budget_for="network")
    assert p.predict(example_video, budget="3ms").frames == 8
    assert p.predict(example_video, budget="4ms").frames == 16
    with pytest.raises(FanEdgeError, match="no decode costs.*fan-edge bench.*--budget-for network"):
        Predictor(b.path, backend="ort-cpu").predict(example_video, budget="3ms")


def test_whole_clip_budget_prices_each_plan_before_decoding(tiny_bundle, tmp_path, example_video):
    """Decoding costs 1 s per decoded frame here, so the index and inference (ms) cannot
    change the pick: the largest sub-network whose plan's frames fit the budget wins."""
    from fan_edge.runtime.video import open_video

    b = Bundle(shutil.copytree(tiny_bundle, tmp_path / "b"))
    with open_video(example_video) as v:
        mpx = v.index.width * v.index.height / 1e6
        decoded = {n: v.plan(n).decoded for n in (4, 8, 16)}
        codec = v.index.codec
    assert decoded[4] < decoded[8] < decoded[16], decoded
    latency = {4: 1.0, 8: 2.0, 16: 4.0}
    decode = {
        "codecs": {codec: [0.0, 0.0, 0.0, 1000.0 / mpx, 0.0, 0.0, 0.0]},
        "preprocess_ms_per_frame": 0.0,
    }
    save_profile(b, latency, decode)
    p = Predictor(b.path, backend="ort-cpu")
    r = p.predict(example_video, budget=f"{decoded[8] + 0.5}s")
    assert r.frames == 8 and r.predicted["decoded_frames"] == decoded[8]
    assert r.predicted["decode_ms"] == pytest.approx(1000.0 * decoded[8])
    assert f"8 frames: decode ~{1000 * decoded[8]:.0f} ms ({decoded[8]} frames)" in r.reason
    assert r.decoded_frames <= decoded[8]  # measured: never more than the plan
    with pytest.raises(FanEdgeError, match="cheapest sub-network is 4 frames: decode ~"):
        p.predict(example_video, budget=f"{decoded[4] - 0.5}s")
    # a codec the profile lacks is priced as one it has, and the reason says so
    decode["codecs"] = {"vp9": decode["codecs"][codec]}
    save_profile(b, latency, decode)
    r = p.predict(example_video, budget=f"{decoded[8] + 0.5}s")
    assert r.frames == 8 and f"{codec}: vp9 cost assumed" in r.reason
    # ... and names the bench that measures it, keeping what was measured
    assert f"--codec {codec} --codec vp9` measures it" in r.reason, r.reason


def test_bench_names_codecs_as_decoders_name_them():
    assert bench_codec("h264") == "h264"
    assert bench_codec("mpeg2video") == "mpeg2"  # the stream's name is not bench's
    assert bench_codec("wmv3") is None  # bench cannot make it: no hint


def test_profile_of_another_device_is_not_used_silently(tiny_bundle, tmp_path, example_video):
    b = Bundle(shutil.copytree(tiny_bundle, tmp_path / "b"))
    save_profile(b, {4: 1.0}, device="Jetson AGX Orin", backend="trt", precision="fp16")
    with pytest.raises(FanEdgeError, match="measured elsewhere.*fan-edge bench"):
        Predictor(b.path, backend="ort-cpu").predict(example_video, budget="3ms")


def test_cli_api_and_pytorch_agree(tiny_bundle, tiny_checkpoint, example_video, cli):
    import torch

    from fan_edge.runtime.video import read_clip
    from fan_edge.train.checkpoint import load_model

    api = Predictor(tiny_bundle).predict(example_video, budget="0.08gflops", top_k=3)
    assert api.frames == 8 and api.trained_frames == 8
    code, out, err = cli(
        "run",
        example_video,
        "--bundle",
        tiny_bundle,
        "--budget",
        "0.08gflops",
        "--top-k",
        "3",
        "--json",
    )
    assert code == 0, err
    cli_result = json.loads(out)[0]
    assert cli_result["labels"] == api.labels
    assert np.allclose(cli_result["probs"], api.probs)
    model, _ = load_model(tiny_checkpoint)
    frames, _ = read_clip(example_video, 8)  # full size: the training preprocessing resizes
    clip = torch.from_numpy(Predictor(tiny_bundle).preprocess(frames))
    with torch.no_grad():
        p = model(clip).softmax(1)[0]
    top = p.argsort(descending=True)[:3]
    assert [model_classes(tiny_bundle)[i] for i in top] == api.labels
    assert np.allclose(p[top].numpy(), api.probs, atol=1e-5)


def model_classes(bundle):
    return Bundle(bundle).classes


def test_runtime_never_imports_torch(tiny_bundle, example_video):
    video, bundle = str(example_video), str(tiny_bundle)
    run_without_torch(
        f"""
from fan_edge.cli import main
try:
    main(["run", {video!r}, "--bundle", {bundle!r}, "--budget", "8frames"])
except SystemExit as e:
    assert e.code in (0, None), e.code
from fan_edge.runtime import Predictor
Predictor({bundle!r}, eager=True).predict({video!r}, budget="1gflops")
"""
    )


def _one_frame_video(path):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    w.write(np.zeros((32, 32, 3), np.uint8))
    w.release()


@pytest.mark.parametrize(
    "kind,message",
    [
        ("text", "cannot decode"),
        ("empty", "cannot decode|no decodable"),
        ("corrupt", "cannot decode|no decodable"),
        ("one_frame", "only 1 frame"),
        ("missing", "no such video"),
    ],
)
def test_bad_videos_give_one_line_errors(kind, message, tiny_bundle, example_video, tmp_path, cli):
    path = tmp_path / "bad.mp4"
    if kind == "text":
        path.write_text("just some notes, not a video\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        raw = bytearray(example_video.read_bytes())
        path.write_bytes(bytes(raw[:48]) + bytes(len(raw) - 48))  # header kept, data zeroed
    elif kind == "one_frame":
        _one_frame_video(path)
    code, out, err = cli("run", path, "--bundle", tiny_bundle, "--budget", "1gflops")
    assert code == 1, (out, err)
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_wrong_header_frame_count_still_samples_correctly(tmp_path):
    """An AVI whose header claims 60 frames but holds 20: sampling uses the real 20."""
    from fan_edge.runtime.video import read_clip

    path = tmp_path / "liar.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for i in range(20):
        w.write(np.full((32, 32, 3), i * 12, np.uint8))
    w.release()
    raw = bytearray(path.read_bytes())
    raw[48:52] = struct.pack("<I", 60)  # avih.dwTotalFrames
    strh = raw.find(b"strh")
    raw[strh + 40 : strh + 44] = struct.pack("<I", 60)  # strh.dwLength
    path.write_bytes(bytes(raw))
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 60  # the header lies
    frames, record = read_clip(path, 4)
    assert record.input_frames == 20
    # segment centres of 20 frames: 2, 7, 12, 17 -> grey levels 24, 84, 144, 204
    assert np.allclose(frames[:, 0, 0, 0], [24, 84, 144, 204], atol=3)


def test_folder_of_frames_and_several_inputs(tiny_bundle, example_video, tmp_path, cli):
    from fan_edge.data.synthetic import SyntheticActions

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(SyntheticActions(1, seed=7).render(0)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    code, out, err = cli(
        "run", example_video, folder, "--bundle", tiny_bundle, "--frames", "4", "--json"
    )
    assert code == 0, err
    results = json.loads(out)
    assert len(results) == 2 and all(r["frames"] == 4 for r in results)
    assert results[1]["input_frames"] == results[0]["input_frames"]


def test_eager_loading_and_shared_weights_give_the_same_answer(tiny_bundle, example_video):
    a = Predictor(tiny_bundle, eager=True).predict(example_video, frames=16)
    b = Predictor(tiny_bundle, share_weights=False).predict(example_video, frames=16)
    assert a.labels == b.labels and np.allclose(a.probs, b.probs, atol=1e-5)


def test_missing_backend_is_a_clear_error(tiny_bundle):
    with pytest.raises(FanEdgeError, match="no CUDAExecutionProvider|fan-edge\\[gpu\\]"):
        Predictor(tiny_bundle, backend="ort-cuda", eager=True)


def test_speed_mode_folds_weight_alteration_at_load(tiny_bundle):
    import onnx

    from fan_edge.runtime.fold import fold_alterations

    model = onnx.load(str(tiny_bundle / "fan_8f.onnx"))
    adds = sum(n.op_type == "Add" for n in model.graph.node)
    assert fold_alterations(model) == 8  # one alteration per block of the tiny TSM-R18
    assert sum(n.op_type == "Add" for n in model.graph.node) == adds - 8
    x = np.random.default_rng(0).standard_normal((2, 8, 3, 32, 32), dtype=np.float32)
    shared, fast = Predictor(tiny_bundle), Predictor(tiny_bundle, share_weights=False)
    sub = shared.bundle.subnetwork_for(8)
    assert np.abs(shared.logits(x, sub) - fast.logits(x, sub)).max() < 1e-4


def test_decode_costs_are_kept_under_the_name_the_reader_gives_the_stream():
    from fan_edge.runtime.bench import bench_decode

    costs = bench_decode(("mpeg2",), None, (4,), sizes=((64, 48),), repeats=1)
    assert list(costs["codecs"]) == ["mpeg2video"]  # what StreamIndex.codec says of .mpg


def test_bench_fits_decode_costs_that_whole_clip_budgets_use(tiny_bundle, tmp_path, example_video):
    from fan_edge.runtime.bench import bench

    b = Bundle(shutil.copytree(tiny_bundle, tmp_path / "b"))
    prof = bench(b.path, backend="ort-cpu", iters=2, warmup=1, decode_sizes=((96, 64), (192, 128)))
    decode = prof["decode"]
    # a tripwire: other names make every saved profile ask for a new `bench`
    names = "clip critical_seeks critical_decoded critical_decoded_mpx critical_mb sampled"
    assert decode["features"] == [*names.split(), "sampled_mpx"]
    assert len(decode["codecs"]["h264"]) == len(FEATURES) and min(decode["codecs"]["h264"]) >= 0
    assert sum(decode["codecs"]["h264"]) > 0 and decode["preprocess_ms_per_frame"] > 0
    p = Predictor(b.path, backend="ort-cpu")
    r = p.predict(example_video, budget="10s")
    assert r.frames == 16 and r.predicted["total_ms"] > r.predicted["infer_ms"] > 0
    assert r.reason.startswith("largest within 10000 ms: 16 frames: decode ~")
    # which sub-network is cheapest is what the profile measured (4F, unless the machine was
    # busy while bench ran): the error must name the one that over-budget mode would run
    with pytest.raises(FanEdgeError, match="nothing fits 0.001 ms: the cheapest sub-network is "):
        p.predict(example_video, budget="1us")
    over = p.predict(example_video, budget="1us", allow_over_budget=True)
    with pytest.raises(FanEdgeError, match=f"cheapest sub-network is {over.frames} frames: decode"):
        p.predict(example_video, budget="1us")
    assert over.reason.startswith(f"over budget 0.001 ms: cheapest is {over.frames} frames")


def test_run_many_inputs_keeps_going_past_a_bad_one(tiny_bundle, example_video, tmp_path, cli):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out = tmp_path / "results.jsonl"
    code, stdout, err = cli(
        "run",
        example_video,
        bad,
        example_video,
        "--bundle",
        tiny_bundle,
        "--budget",
        "1gflops",
        "--output",
        out,
        "--jobs",
        "2",
    )
    assert code == 1 and err.startswith("error: 1 of 3 inputs failed") and err.count("\n") == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [bool(r["error"]) for r in rows] == [False, True, False]
    assert rows[1]["input"] == str(bad) and "cannot decode" in rows[1]["error"]
    assert rows[0]["labels"] == rows[2]["labels"] and rows[0]["total_ms"] > 0
    for key in ("index_ms", "decode_ms", "decoded_frames", "preprocess_ms", "infer_ms"):
        assert key in rows[0]
    assert "error" in stdout  # the table shows the failed row
    code, _, _ = cli("run", example_video, "--bundle", tiny_bundle, "--output", tmp_path / "r.csv")
    assert code == 0
    import csv

    (row,) = csv.DictReader((tmp_path / "r.csv").open())
    assert row["frames"] == "16" and row["error"] == "" and float(row["total_ms"]) > 0


def test_run_takes_a_folder_of_videos(tiny_bundle, example_video, tmp_path, cli):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(example_video, folder / "a.mp4")
    shutil.copy(example_video, folder / "sub" / "b.mp4")
    code, out, err = cli("run", folder, "--bundle", tiny_bundle, "--json")
    assert code == 0, err
    assert [Path(r["input"]).name for r in json.loads(out)] == ["a.mp4", "b.mp4"]
    code, _, err = cli(
        "run", tmp_path / "videos" / "sub", "--bundle", tiny_bundle, "--output", tmp_path / "x.txt"
    )
    assert code == 1 and "use a .jsonl, .json or .csv" in err and not (tmp_path / "x.txt").exists()


def test_the_default_holds_every_subnetwork_in_one_session_with_each_weight_once(tiny_bundle):
    """runtime/joint.py: one ONNX Runtime session for all sub-networks, every tensor of
    weights.bin entering it once (as a view of the file, not a copy)."""
    import onnx

    from fan_edge.runtime.joint import joint_model

    pred = Predictor(tiny_bundle, backend="ort-cpu", eager=True)
    assert len(pred.engine._joint) == 1  # one session, however many sub-networks
    bundle = pred.bundle
    graphs = {s.frames: s.file for s in bundle.subnetworks}
    model, arrays = joint_model(bundle, graphs)
    places = set()
    for s in bundle.subnetworks:
        g = onnx.load(str(bundle.file(s.file)), load_external_data=False).graph
        for t in g.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in t.external_data}
                places.add((info["offset"], info["length"]))
    assert len(arrays) == len(places) > 0  # each stored tensor once
    assert all(isinstance(a.base, np.memmap) or isinstance(a, np.memmap) for a in arrays.values())
    names = {i.name for i in model.graph.input}
    assert names == {f"t{s.frames}/clip" for s in bundle.subnetworks}
    batch = {i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input}
    assert len(batch) == len(names)  # one batch size per sub-network: each runs alone
    x = np.random.default_rng(3).standard_normal((2, 8, 3, 32, 32), dtype=np.float32)
    sub = bundle.subnetwork_for(8)
    alone = Predictor(tiny_bundle, share_weights=False).logits(x, sub)
    np.testing.assert_allclose(pred.logits(x, sub), alone, atol=1e-4)


def test_the_shipped_model_works_on_fresh_clips_as_its_card_says(tmp_path):
    """`make demo`'s first step: the trained bundle in models/ on clips no run has seen."""
    import cv2

    from fan_edge.cli.demo import SHIPPED, SHIPPED_CARD, shipped_model

    result = shipped_model(SHIPPED, tmp_path)
    for n, top1 in result["top1"].items():  # 300 clips: one binomial std is about 2.5 points
        assert abs(top1 - SHIPPED_CARD[n]) <= 8, (n, top1)
    image = cv2.imread(str(result["sheet"]))
    assert image is not None and image.shape[0] > 6 * 32 and image.shape[1] >= 8 * 32
