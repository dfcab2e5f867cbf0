"""`fan-edge build BUNDLE --target trt`: the torch-free second stage records what it builds in
the manifest. TensorRT cannot run here, so its one call (`build_engine`) is stood in for; the
recording, sealing, locking and clean-up around it are what is tested."""

import dataclasses
import shutil
import subprocess
import sys

import pytest

import exporters.tensorrt as trt_target
from exporters import TARGETS
from fan_edge.bundle import Bundle


def tree(path):
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """`build_engine` stood in for; returns what each call was given."""
    calls = []

    def build_engine(
        onnx_path, plan_path, *, frames, size, fp16, strip, max_batch=8, calibration=None
    ):
        calls.append({"graph": onnx_path, "frames": frames, "calibration": calibration})
        plan_path.write_bytes(f"plan {frames} {size} {fp16}".encode())
        if calibration:  # as TensorRT's calibrator does once it has seen the clips
            calibration[1].write_bytes(f"table {len(calibration[0])}".encode())
        return {
            "frames": frames,
            "file": plan_path.name,
            "precision": "int8" if calibration else "fp16" if fp16 else "fp32",
            "stripped": strip,
            "versions": {"tensorrt": "10.0-stand-in"},
            "max_batch": max_batch,
        }

    monkeypatch.setitem(TARGETS, "trt", dataclasses.replace(TARGETS["trt"], requires=None))
    monkeypatch.setattr(trt_target, "build_engine", build_engine)
    tensorrt_version(monkeypatch, "10.0.0")
    return calls


def tensorrt_version(monkeypatch, version: str) -> None:
    import types

    monkeypatch.setattr(
        trt_target, "import_tensorrt", lambda: types.SimpleNamespace(__version__=version)
    )


def test_trt_int8_before_11_calibrates_each_frame_count_and_keeps_its_cache(
    bundle, fake_tensorrt, monkeypatch, cli
):
    tensorrt_version(monkeypatch, "10.3.0")
    args = ("build", bundle, "--target", "trt", "--int8", "--calib", "synthetic")
    assert cli(*args, "--calib-clips", "2")[0] == 0
    b = Bundle(bundle)
    for call in fake_tensorrt:
        clips, cache = call["calibration"]
        assert [c.shape[1] for c in clips] == [call["frames"]] * 2  # its own frame count
    records = {e["frames"]: e for e in b.manifest["engines"]}
    assert records[8]["reads"] == ["engines/fan_8f.calib"] and records[8]["precision"] == "int8"
    assert b.file("engines/fan_8f.calib").read_bytes() == b"table 2"
    (b.path / "engines/fan_8f.calib").unlink()  # a damaged bundle: refused, not trusted
    from fan_edge import FanEdgeError

    with pytest.raises(FanEdgeError, match="fan_8f.calib"):
        Bundle(bundle)


def test_trt_11_builds_int8_from_symmetric_qdq_graphs_and_fp16_from_fp16_graphs(
    bundle, fake_tensorrt, monkeypatch, cli
):
    import numpy as np
    import onnx

    tensorrt_version(monkeypatch, "11.0.0")
    seen = {}

    def keep(call_graph):  # the QDQ graphs live in a scratch folder removed after the build
        m = onnx.load(str(call_graph))
        return {
            "q": sum(n.op_type == "QuantizeLinear" for n in m.graph.node),
            "zero_points": [
                onnx.numpy_helper.to_array(t)
                for t in m.graph.initializer
                if t.name.endswith("_zero_point")
            ],
        }

    real = trt_target.build_engine

    def spy(onnx_path, plan_path, **kw):
        seen[kw["frames"]] = keep(onnx_path)
        return real(onnx_path, plan_path, **kw)

    monkeypatch.setattr(trt_target, "build_engine", spy)
    assert (
        cli(
            "build",
            bundle,
            "--target",
            "trt",
            "--int8",
            "--calib",
            "synthetic",
            "--calib-clips",
            "2",
        )[0]
        == 0
    )
    assert sorted(seen) == [4, 8, 16]
    for got in seen.values():
        assert got["q"] > 0 and got["zero_points"]
        assert all(z.dtype == np.int8 and not z.any() for z in got["zero_points"])
    assert all(c["calibration"] is None for c in fake_tensorrt)  # explicit: no calibrator
    assert not list((Bundle(bundle).path / "engines").glob("fan-edge-trt-calib-*"))

    code, _, err = cli("build", bundle, "--target", "trt", "--fp16")
    assert code != 0 and "--target fp16` first" in " ".join(err.split())
    assert cli("build", bundle, "--target", "fp16")[0] == 0
    fake_tensorrt.clear()
    assert cli("build", bundle, "--target", "trt", "--fp16")[0] == 0
    assert [c["graph"].name for c in fake_tensorrt] == [
        "fan_4f.fp16.onnx",
        "fan_8f.fp16.onnx",
        "fan_16f.fp16.onnx",
    ]


def test_build_records_the_engines_in_the_sealed_manifest(bundle, fake_tensorrt, cli):
    code, out, err = cli("build", bundle, "--target", "trt", "--fp16")
    assert code == 0, err
    b = Bundle(bundle)  # verified: hashes of the plans, the manifest's own hash
    assert [(e["frames"], e["precision"]) for e in b.manifest["engines"]] == [
        (4, "fp16"),
        (8, "fp16"),
        (16, "fp16"),
    ]
    assert all(e["file"] in b.manifest["files"] for e in b.manifest["engines"])
    assert cli("build", bundle, "--target", "trt")[0] == 0  # a rebuild replaces them
    assert {e["precision"] for e in Bundle(bundle).manifest["engines"]} == {"fp32"}


@pytest.mark.parametrize("built_before", [False, True], ids=["first-build", "rebuild"])
def test_a_failed_build_leaves_the_bundle_as_it_was(
    bundle, fake_tensorrt, monkeypatch, cli, built_before
):
    if built_before:  # a failed rebuild keeps the engines (and manifest) of the last one
        assert cli("build", bundle, "--target", "trt", "--fp16")[0] == 0
    before = tree(bundle)
    real = trt_target.build_engine

    def fails_on_16(onnx_path, plan_path, *, frames, **kw):
        if frames == 16:
            raise trt_target.FanEdgeError("TensorRT failed to build an engine for fan_16f.onnx")
        return real(onnx_path, plan_path, frames=frames, **kw)

    monkeypatch.setattr(trt_target, "build_engine", fails_on_16)
    code, _, err = cli("build", bundle, "--target", "trt")
    assert code == 1 and "fan_16f" in err and err.count("\n") == 1
    assert tree(bundle) == before


@pytest.mark.parametrize(
    "argv,word",
    [
        (["--target", "trt"], "TensorRT is not installed"),
        (["--target", "onnx"], "unknown target"),
        (["--target", "trt", "--strip", "--fp16"], "TensorRT is not installed"),
    ],
    ids=["no-tensorrt", "onnx-is-not-a-build", "no-tensorrt-with-options"],
)
def test_build_refuses_in_one_line(bundle, cli, argv, word):
    before = tree(bundle)
    code, _, err = cli("build", bundle, *argv)
    assert code == 1 and word in err and err.count("\n") == 1, err
    assert tree(bundle) == before


def test_build_needs_no_torch(bundle):
    """The device stage imports neither torch nor the exporter's ONNX writer."""
    code = (
        "import sys; from exporters import build\n"
        "try:\n    build(sys.argv[1], 'trt')\nexcept Exception as e:\n    print(e)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [trt_target.INSTALL_HINT, "False"]


def test_a_target_that_records_a_file_it_did_not_write_changes_nothing(bundle, cli):
    from exporters import register_target, unregister_target

    @register_target("liar", description="records what it did not write")
    def build_liar(bundle, folder, **options):
        return [{"frames": s.frames, "file": "missing.bin"} for s in bundle.subnetworks]

    try:
        before = tree(bundle)
        code, _, err = cli("build", bundle, "--target", "liar")
        assert code == 1 and "did not write" in err and err.count("\n") == 1
        assert tree(bundle) == before
    finally:
        unregister_target("liar")
