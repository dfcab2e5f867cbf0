"""`fan-edge import`: state dicts written in each source's published naming (random values,
the right shapes) come back as fan-edge models giving the same logits as the same weights
loaded by hand; what cannot be imported gets its one-line reason."""

import re

import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.config import preset
from fan_edge.imports import import_checkpoint
from fan_edge.models import build_model
from fan_edge.train.checkpoint import load_model

CLASSES = 7


def reference(frames: tuple[int, ...], seed: int = 0):
    """A fan-edge TSM-R50 (a quarter of the channels, 32 px) with randomised weights."""
    fan = len(frames) > 1
    cfg = preset(
        "r50",
        num_classes=CLASSES,
        frames=frames,
        input_size=32,
        specialize_norm=fan,
        weight_alteration=fan,
        backbone={"width": 0.25, "stem": "small"},
    )
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.dtype.is_floating_point:
                t.add_(0.05 * torch.randn_like(t))
    return model


# The published naming of each source, written from its documentation (not from the importer).
def torchvision_names(state):
    out = {}
    for k, t in state.items():
        k = k.removeprefix("backbone.")
        k = k.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        out[k] = t
    return out


def tsm_names(state):
    out = {}
    for k, t in torchvision_names(state).items():
        k = re.sub(r"^(layer\d\.\d+)\.conv1\.weight$", r"\1.conv1.net.weight", k)
        out["module." + ("new_fc." + k[3:] if k.startswith("fc.") else "base_model." + k)] = t
    return out


def mmaction_names(state):
    out = {}
    for k, t in torchvision_names(state).items():
        if k.startswith("fc."):
            out["cls_head.fc_cls." + k[3:]] = t
            continue
        k = re.sub(r"^conv1\.", "conv1.conv.", k)
        k = re.sub(r"^bn1\.", "conv1.bn.", k)
        k = re.sub(r"\.conv1\.weight$", ".conv1.conv.net.weight", k)
        k = re.sub(r"\.conv([23])\.weight$", r".conv\1.conv.weight", k)
        k = re.sub(r"\.bn(\d)\.", r".conv\1.bn.", k)
        k = k.replace("downsample.0.", "downsample.conv.").replace(
            "downsample.1.", "downsample.bn."
        )
        out["backbone." + k] = t
    return out


def ffn_names(state, frames):
    out = {}
    for k, t in state.items():
        k = k.removeprefix("backbone.")
        if k.startswith("fc."):
            out["module.new_fc." + k[3:]] = t
            continue
        m = re.match(r"^(.*)\.branches\.(\d)\.(.+)$", k)
        if m:
            where, i, rest = m.group(1), int(m.group(2)), m.group(3)
            n = frames[i]
            where = where.replace("stem.1", "bn1").replace("downsample.1", "downsample_bn")
            if where.endswith(".alter"):
                k = f"{where[: -len('.alter')]}.adaconv_{n}.weight"
            else:
                k = f"{where}_{n}.{rest}"
        else:
            k = k.replace("stem.0.", "conv1.").replace("downsample.0.", "downsample_conv.")
        out["module.base_model." + k] = t
    return out


CASES = {
    "ffn": ((4, 8, 16), lambda s: {"state_dict": ffn_names(s, (4, 8, 16))}, "ffn_tsm.pth.tar"),
    "tsm": ((8,), lambda s: {"state_dict": tsm_names(s)}, "TSM_k400_resnet50_segment8.pth"),
    "mmaction": ((8,), lambda s: {"state_dict": mmaction_names(s)}, "tsm_r50_1x1x8_k400.pth"),
    "torchvision": ((8,), torchvision_names, "resnet50.pth"),
}


@pytest.mark.parametrize("source", sorted(CASES))
def test_an_imported_checkpoint_gives_the_logits_of_the_same_weights(source, tmp_path, cli):
    frames, write, name = CASES[source]
    ref = reference(frames)
    src = tmp_path / name
    torch.save(write(ref.state_dict()), src)
    out = tmp_path / "imported.pt"
    code, stdout, err = cli("import", src, "--from", source, "--out", out, "--size", "32")
    assert code == 0, err
    model, ckpt = load_model(out)
    assert model.frames == frames and ckpt["train_config"]["mode"] == (
        "fan" if len(frames) > 1 else "standard"
    )
    for n in frames:
        x = torch.randn(2, n, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(model.eval()(x), ref(x))


def test_what_cannot_be_imported_is_refused_with_its_reason(tmp_path):
    ref = reference((8,)).state_dict()

    def attempt(state, source="tsm", name="m_segment8.pth"):
        path = tmp_path / name
        torch.save({"state_dict": state}, path)
        with pytest.raises(FanEdgeError) as e:
            import_checkpoint(path, source, tmp_path / "out.pt", size=32)
        assert "\n" not in str(e.value)
        return str(e.value)

    tsn = {k.replace(".conv1.net.", ".conv1."): t for k, t in tsm_names(ref).items()}
    assert "no temporal shift" in attempt(tsn)
    half = dict(tsm_names(ref))
    for k in [k for k in half if re.search(r"layer2\.\d+\.conv1\.net", k)]:
        half[k.replace(".net.", ".")] = half.pop(k)
    assert "shifts in" in attempt(half)
    nonlocal_ = {**tsm_names(ref), "module.base_model.layer2.0.nl.g.weight": torch.zeros(1)}
    assert "non-local" in attempt(nonlocal_)
    deep = dict(torchvision_names(ref))  # a ResNet-101's block counts
    for i in range(6, 23):
        deep.update(
            {
                k.replace("layer3.5.", f"layer3.{i}."): t
                for k, t in deep.items()
                if k.startswith("layer3.5.")
            }
        )
    assert "ResNet-101" in attempt(deep, "torchvision")
    odd = {**torchvision_names(ref), "head.extra.weight": torch.zeros(1)}
    assert "'head.extra.weight'" in attempt(odd, "torchvision")
    assert "not an FFN checkpoint" in attempt(tsm_names(ref), "ffn")


class Payload:  # a pickle that runs code when loaded with weights_only=False
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(FanEdgeError, match="needs code to load"):
        import_checkpoint(path, "torchvision", tmp_path / "out.pt")
    assert "this ran" not in capsys.readouterr().out
    assert not (tmp_path / "out.pt").exists()
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"<html>not found</html>")
    with pytest.raises(FanEdgeError, match="not a readable PyTorch checkpoint"):
        import_checkpoint(damaged, "torchvision", tmp_path / "out.pt")


def test_class_names_come_from_a_file_and_must_match_the_classifier(tmp_path):
    ref = reference((8,))
    src = tmp_path / "resnet.pth"
    torch.save(torchvision_names(ref.state_dict()), src)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"action {i}" for i in range(CLASSES)))
    import_checkpoint(src, "torchvision", tmp_path / "a.pt", classes_file=names, size=32)
    assert load_model(tmp_path / "a.pt")[1]["classes"][3] == "action 3"
    names.write_text("one\ntwo\n")
    with pytest.raises(FanEdgeError, match="names 2 classes but the checkpoint's classifier"):
        import_checkpoint(src, "torchvision", tmp_path / "b.pt", classes_file=names, size=32)


def test_alteration_init_kaiming_is_the_references_and_small_stays_the_default():
    from fan_edge.config import RunConfig

    def alteration_std(init):
        cfg = preset("r50", num_classes=CLASSES, frames=(4, 8), alteration_init=init)
        torch.manual_seed(0)
        w = build_model(cfg).backbone.layer3[0].alter.branches[0].dw.weight
        return float(w.detach().std()), (2 / w.shape[0]) ** 0.5

    got, want = alteration_std("kaiming")
    assert abs(got - want) < 0.1 * want  # std sqrt(2 / C), as the reference ends up with
    assert alteration_std("small")[0] < 2e-3
    assert RunConfig().model.alteration_init == "small"
    with pytest.raises(FanEdgeError, match="alteration_init must be one of small, kaiming"):
        RunConfig().replace(alteration_init="zeros")


def test_the_references_resize_then_crop_reaches_the_manifest_and_the_runtime(tmp_path):
    """Imported models are evaluated as their authors did: shorter side to 256/224 of the crop,
    bilinear, then the center crop; the checkpoint, the bundle and `fan-edge run` agree."""
    import cv2
    import numpy as np

    from exporters import export
    from fan_edge.runtime import Predictor

    src = tmp_path / "TSM_segment8.pth"
    torch.save({"state_dict": tsm_names(reference((8,)).state_dict())}, src)
    import_checkpoint(src, "tsm", tmp_path / "tsm.pt", size=32)
    _, ckpt = load_model(tmp_path / "tsm.pt")
    assert (
        ckpt["model_config"]["resize"] == 37 and ckpt["model_config"]["interpolation"] == "bilinear"
    )
    bundle = export(tmp_path / "tsm.pt", [8], tmp_path / "bundle")
    pred = Predictor(bundle)
    assert pred.bundle.input["resize_to"] == 37 and pred.bundle.read_size is None
    frames = np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    resized = np.stack([cv2.resize(f, (49, 37), interpolation=cv2.INTER_LINEAR) for f in frames])
    top, left = (37 - 32) // 2, (49 - 32) // 2
    crop = resized[:, top : top + 32, left : left + 32].astype(np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = ((crop - mean) / std).transpose(0, 3, 1, 2)[None]
    np.testing.assert_allclose(pred.preprocess(frames), want, atol=1e-5)


def test_an_imported_standard_model_initialises_a_fan_for_other_classes(tmp_path):
    """`fan-edge train --init IMPORTED`: every tensor but the classifier and the alterations
    comes from the import, each norm into every sub-network's copy."""
    from fan_edge.train.checkpoint import init_from

    src = tmp_path / "resnet50.pth"
    ref = reference((8,))
    torch.save(torchvision_names(ref.state_dict()), src)
    import_checkpoint(src, "torchvision", tmp_path / "in.pt", size=32)
    cfg = preset(
        "r50",
        num_classes=CLASSES + 3,
        frames=(4, 8, 16),
        input_size=32,
        backbone={"width": 0.25, "stem": "small"},
    )
    fan = build_model(cfg)
    report = init_from(fan, tmp_path / "in.pt")
    assert {k for k in report["skipped"] if ".alter." not in k} == {
        "backbone.fc.weight",
        "backbone.fc.bias",
    }
    mine = fan.state_dict()
    theirs = ref.state_dict()
    assert torch.equal(
        mine["backbone.layer2.1.bn2.branches.2.running_var"],
        theirs["backbone.layer2.1.bn2.running_var"],
    )
