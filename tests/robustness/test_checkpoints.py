"""Damaged or hand-edited checkpoints (issue 13): each is one FanEdgeError line naming the
checkpoint, the field and the fix, before any work; never a traceback, never silently wrong
results. Every reader (eval, export, --init, --resume, flops) loads through load_checkpoint.
"""

import math
import shutil

import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.config import PRESETS, ModelConfig, preset
from fan_edge.models.tsm_resnet import STEMS
from fan_edge.train.checkpoint import init_from, load_checkpoint, load_model


def _edit(tiny_checkpoint, tmp_path, edit):
    """A copy of the tiny checkpoint with `edit(ckpt)` applied."""
    path = tmp_path / "checkpoint.pt"
    shutil.copy(tiny_checkpoint, path)
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


def _cfg(key, value):
    def edit(ckpt):
        ckpt["model_config"][key] = value

    return edit


def _set(key, value):
    def edit(ckpt):
        ckpt[key] = value

    return edit


def _classes(fn):
    def edit(ckpt):
        ckpt["classes"] = fn(ckpt["classes"])

    return edit


def _backbone(key, value):
    def edit(ckpt):
        ckpt["model_config"]["backbone"][key] = value

    return edit


def _drop_cfg(key):
    def edit(ckpt):
        del ckpt["model_config"][key]

    return edit


def _state(fn):
    def edit(ckpt):
        fn(ckpt["state_dict"])

    return edit


def _not_a_tensor(state):
    state[next(iter(state))] = [1.0, 2.0]


# (id, edit of the loaded checkpoint dict, a regex the one-line error must match)
CASES = [
    ("input_size zero", _cfg("input_size", 0), r"input_size must be an integer in 16\.\.4096"),
    ("input_size a string", _cfg("input_size", "32"), r"input_size .*got '32'"),
    ("input_size a bool", _cfg("input_size", True), r"input_size .*got True"),
    ("input_size a float", _cfg("input_size", 32.0), "input_size"),
    ("shift_div zero", _backbone("shift_div", 0), "shift_div"),
    ("shift_div one", _backbone("shift_div", 1), "shift_div"),
    ("std NaN", _cfg("std", (0.229, math.nan, 0.225)), "std"),
    ("std zero", _cfg("std", (0.229, 0.0, 0.225)), "std"),
    ("std a string", _cfg("std", "0.2"), "std"),
    ("mean of length 1", _cfg("mean", (0.5,)), "mean"),
    ("mean infinite", _cfg("mean", (0.5, math.inf, 0.5)), "mean"),
    ("num_classes one", _cfg("num_classes", 1), "num_classes"),
    ("num_classes huge", _cfg("num_classes", 10**12), "num_classes"),
    ("num_classes a string", _cfg("num_classes", "21"), "num_classes"),
    ("classes cut short", _classes(lambda c: c[:3]), "classes name 3 .* num_classes is 21"),
    ("classes not strings", _classes(lambda c: list(range(len(c)))), r"classes\[0\]"),
    ("classes repeated", _classes(lambda c: [c[0], *c[:-1]]), "repeat"),
    ("classes not a list", _set("classes", "a,b,c"), "classes"),
    ("classes missing", lambda ck: ck.pop("classes"), "classes is missing"),
    ("width negative", _backbone("width", -1.0), "width"),
    ("width NaN", _backbone("width", math.nan), "width"),
    ("width huge", _backbone("width", 1e6), "width"),
    ("dropout 1.5", _cfg("dropout", 1.5), "dropout"),
    ("dropout NaN", _cfg("dropout", math.nan), "dropout"),
    ("unknown arch", _cfg("arch", "resnet9000"), "arch must be one of"),
    ("unknown stem", _backbone("stem", "huge"), "stem"),
    ("frames empty", _cfg("frames", []), "frames"),
    ("frames repeated", _cfg("frames", [4, 4]), "distinct"),
    ("frames zero", _cfg("frames", [0, 4]), "frame counts"),
    ("frames strings", _cfg("frames", ["4", "8"]), "frames"),
    ("specialize_norm a string", _cfg("specialize_norm", "yes"), "specialize_norm"),
    ("model config field missing", _drop_cfg("input_size"), "input_size missing"),
    ("model config field unknown", _cfg("colour", "red"), "unknown fields colour"),
    ("backbone argument unknown", _backbone("depth", 3), "no argument 'depth'"),
    ("backbone argument twice", _cfg("width", 0.5), "width both"),
    ("model config not a dict", _set("model_config", [1, 2]), "model config"),
    ("state_dict not a dict", _set("state_dict", [1, 2]), "state_dict"),
    ("state_dict empty", _set("state_dict", {}), "state_dict"),
    ("state_dict value not a tensor", _state(_not_a_tensor), "state_dict"),
    ("train_config not a dict", _set("train_config", "fan"), "train_config"),
    ("train_config without mode", lambda ck: ck["train_config"].pop("mode"), "mode"),
    ("data not a dict", _set("data", 3), "data must be a dict"),
    ("data spec without train", lambda ck: ck["data"].pop("train"), "data: train missing"),
    ("old data spec not a dict", lambda ck: ck["train_config"].update(extra={"data": 3}), "extra"),
    ("version a string", _set("version", "1"), "version"),
]


def _one_line(e: pytest.ExceptionInfo, path) -> str:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "fan-edge train" in msg, msg
    return msg


@pytest.mark.parametrize("edit,word", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_checkpoint_is_one_line_error(tiny_checkpoint, tmp_path, edit, word):
    path = _edit(tiny_checkpoint, tmp_path, edit)
    for load in (load_checkpoint, load_model):
        with pytest.raises(FanEdgeError, match=word) as e:
            load(path)
        _one_line(e, path)


@pytest.mark.parametrize(
    "edit,word",
    [
        (_state(lambda s: s.pop(next(iter(s)))), "Missing key"),
        (_state(lambda s: s.update(extra=torch.zeros(1))), "Unexpected key"),
        (_state(lambda s: s.update({"backbone.fc.bias": torch.zeros(3)})), "size mismatch"),
    ],
    ids=["missing tensor", "unexpected tensor", "classifier of another size"],
)
def test_weights_that_do_not_fit_the_config(tiny_checkpoint, tmp_path, edit, word):
    path = _edit(tiny_checkpoint, tmp_path, edit)
    with pytest.raises(FanEdgeError, match=word) as e:
        load_model(path)
    assert "state_dict" in _one_line(e, path)


def test_init_from_a_damaged_checkpoint(tiny_checkpoint, tmp_path):
    from fan_edge.models import build_model

    path = _edit(tiny_checkpoint, tmp_path, _cfg("std", (0.2, math.nan, 0.2)))
    with pytest.raises(FanEdgeError, match="std") as e:
        init_from(build_model(preset("tiny", num_classes=5)), path)
    _one_line(e, path)


CLI_CASES = [
    ("input_size a string", _cfg("input_size", "32"), "input_size"),
    ("std NaN", _cfg("std", (0.229, math.nan, 0.225)), "std"),
    ("mean of length 1", _cfg("mean", (0.5,)), "mean"),
    ("classes cut short", _classes(lambda c: c[:3]), "classes"),
]


@pytest.mark.parametrize("edit,word", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_a_damaged_checkpoint_before_the_work(
    cli, tiny_checkpoint, tmp_path, edit, word
):
    path = _edit(tiny_checkpoint, tmp_path, edit)
    code, out, err = cli("eval", path, "--frames", "4")
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert word in err and str(path) in err and "top-1" not in out
    parent = tmp_path / "exports"
    parent.mkdir()
    code, out, err = cli("export", path, "--frames", "4", "--out", parent / "bundle")
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert word in err and str(path) in err and "manifest" not in err
    assert list(parent.iterdir()) == []  # not even a hidden temporary folder
    code, out, err = cli("flops", "--checkpoint", path)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err


def test_legitimate_configs_still_load(tiny_checkpoint):
    _, ckpt = load_model(tiny_checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    assert cfg.input_size == 32 and len(ckpt["classes"]) == cfg.num_classes
    for name in PRESETS:
        widths = {"width": 0.5} if "width" in preset(name).backbone else {}
        for over in (
            {},
            {"num_classes": 5, "frames": (8,)},
            {"input_size": 16, "backbone": widths},
            {"num_classes": 174, "frames": [16, 4], "weight_alteration": False},
        ):
            c = preset(name, **over)
            assert ModelConfig.from_dict(c.to_dict()) == c


def test_every_preset_names_a_registered_backbone_and_every_stem_builds():
    from fan_edge.models import BACKBONES, build_model

    assert {fields["arch"] for fields in PRESETS.values()} <= set(BACKBONES)
    for stem in STEMS:  # each one builds
        build_model(preset("tiny", num_classes=2, frames=(4,), backbone={"stem": stem}))


def test_fields_added_later_take_their_defaults():
    """Old checkpoints keep loading when ModelConfig grows (a new field needs a default)."""
    import dataclasses

    from fan_edge.config import REQUIRED_MODEL_FIELDS, ModelConfig, preset
    from fan_edge.models import resolve

    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    assert set(fields) >= REQUIRED_MODEL_FIELDS
    later = set(fields) - REQUIRED_MODEL_FIELDS
    assert all(
        fields[n].default is not dataclasses.MISSING
        or fields[n].default_factory is not dataclasses.MISSING
        for n in later
    )
    stored = preset("tiny", num_classes=5).to_dict()
    # the first format: no later field, and TSM-ResNet's arguments as top-level fields
    first = {k: v for k, v in stored.items() if k not in later} | stored["backbone"]
    assert resolve(ModelConfig.from_dict(first)).to_dict() == stored


def test_a_version_1_checkpoint_loads_evaluates_and_exports(tiny_checkpoint, tmp_path):
    """Checkpoints written before RunConfig: version 1, a ResNet's own arguments as model
    config fields, the data spec under train_config.extra."""
    from exporters import export
    from fan_edge.config import DataSpec
    from fan_edge.train.api import evaluate_checkpoint

    def first_format(ckpt):
        cfg = ckpt["model_config"]
        ckpt["model_config"] = {k: v for k, v in cfg.items() if k != "backbone"} | cfg["backbone"]
        ckpt["train_config"]["extra"] = {"data": ckpt.pop("data")}
        ckpt["version"] = 1

    path = _edit(tiny_checkpoint, tmp_path, first_format)
    ckpt = load_checkpoint(path)
    assert DataSpec.of(ckpt).val == "synthetic" and "backbone" not in ckpt["model_config"]
    report = evaluate_checkpoint(path, [4])
    assert report["results"][4]["num_clips"] == 8
    assert export(path, [4], tmp_path / "bundle").is_dir()
