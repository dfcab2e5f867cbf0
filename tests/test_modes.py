"""The paper's baselines and ablations: each training mode and option, on a tiny model."""

import pytest
import torch
from torch import nn

from fan_edge import FanEdgeError
from fan_edge.analysis.bn_shift import bn_shift_report, compare, stored_stats
from fan_edge.config import TrainConfig, preset
from fan_edge.evaluate import scores, serving_networks
from fan_edge.models import SpecializedNorm, WeightAlteration, build_model
from fan_edge.train.api import evaluate_checkpoint, train_from_options
from fan_edge.train.checkpoint import init_from, load_model, save_untrained
from fan_edge.train.modes import MODES, StepContext, consecutive_frames
from fan_edge.train.trainer import check_mode

SMALL = dict(
    data="synthetic",
    val=None,
    preset="tiny",
    epochs=1,
    batch_size=4,
    lr=0.05,
    kd_lambda=1.0,
    seed=0,
    num_videos=8,
    num_val=4,
    quiet=True,
)


def clips_for(frames, batch=2, size=32):
    torch.manual_seed(0)
    return [torch.randn(batch, n, 3, size, size) for n in frames]


def grads_after(mode: str, cfg, ctx: StepContext):
    model = build_model(cfg).train()
    with torch.no_grad():  # open the residual branches, whose last norm scale starts at 0
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
    loss = MODES[mode].step(model, clips_for(cfg.frames), torch.tensor([0, 1]), ctx)
    assert torch.isfinite(loss)
    loss.backward()
    return model, loss


def has_grad(params) -> bool:
    """Every parameter was reached by the backward pass with a non-zero gradient."""
    params = list(params)
    return bool(params) and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("distill", [True, False])
def test_fan_trains_every_subnetwork_and_the_shared_weights(distill):
    cfg = preset("tiny", num_classes=5, frames=(4, 8, 16))
    model, _ = grads_after("fan", cfg, StepContext(distill=distill))
    assert has_grad(model.shared_parameters())
    for i in range(3):  # students through KL (or CE), the teacher through CE
        assert has_grad(model.private_parameters(i))


def test_distillation_warmup_blends_students_cross_entropy():
    cfg = preset("tiny", num_classes=5, frames=(4, 16))
    model = build_model(cfg).eval()  # deterministic: no dropout, fixed norm statistics
    clips, y = clips_for(cfg.frames), torch.tensor([0, 1])
    losses = {r: MODES["fan"].step(model, clips, y, StepContext(ramp=r)).item() for r in (0, 1)}
    ce_all = MODES["fan"].step(model, clips, y, StepContext(distill=False)).item()
    assert losses[0] == pytest.approx(ce_all, rel=1e-5)  # ramp 0: students learn from labels
    assert losses[1] != pytest.approx(ce_all, rel=1e-3)  # ramp 1: the paper's loss


def test_without_specialized_norm_the_norms_are_shared():
    cfg = preset("tiny", num_classes=5, frames=(4, 8, 16), specialize_norm=False)
    model, _ = grads_after("fan", cfg, StepContext())
    assert not any(isinstance(m, SpecializedNorm) for m in model.modules())
    bn = model.subnetwork(0).layer1[0].bn1
    assert isinstance(bn, nn.BatchNorm2d) and bn is model.subnetwork(2).layer1[0].bn1
    private = {
        id(p) for m in model.modules() if isinstance(m, WeightAlteration) for p in m.parameters()
    }
    assert {id(p) for i in range(3) for p in model.private_parameters(i)} == private
    assert has_grad(model.private_parameters(0))  # the alterations are still private


def test_without_weight_alteration_only_the_norms_are_private():
    cfg = preset("tiny", num_classes=5, frames=(4, 8, 16), weight_alteration=False)
    model, _ = grads_after("fan", cfg, StepContext())
    assert not any(isinstance(m, WeightAlteration) for m in model.modules())
    norms = {
        id(p) for m in model.modules() if isinstance(m, SpecializedNorm) for p in m.parameters()
    }
    assert {id(p) for i in range(3) for p in model.private_parameters(i)} == norms


class Spy(nn.Module):
    """A stand-in model that records which sub-network and frame count each forward used."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 5)
        self.calls = []

    def forward(self, x, subnet):
        self.calls.append((subnet, x.shape[1]))
        return self.head(x.mean(dim=(1, 3, 4)))


@pytest.mark.parametrize("mode", ["mixed", "proportional"])
@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_mixed_and_proportional_pick_the_clip_rho_says(mode, rho):
    spy, ctx = Spy(), StepContext(rho=rho, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        loss = MODES[mode].step(spy, clips_for((4, 16)), torch.tensor([0, 1]), ctx)
        assert torch.isfinite(loss)
    loss.backward()
    assert has_grad(spy.parameters())
    # proportional: rho = P(high clip); mixed: rho = P(mixed low-count clip)
    high = (rho == 1.0) if mode == "proportional" else (rho == 0.0)
    assert set(spy.calls) == ({(1, 16)} if high else {(0, 4)})


def frame_numbers(batch: int, t: int) -> torch.Tensor:
    """Clips whose every pixel holds 100 * clip + frame + 1."""
    values = 100 * torch.arange(batch)[:, None] + torch.arange(t)[None] + 1.0
    return values.view(batch, t, 1, 1, 1).expand(batch, t, 3, 2, 2).contiguous()


def test_consecutive_frames_come_from_each_clip_itself():
    part = consecutive_frames(frame_numbers(6, 16), 4, torch.Generator().manual_seed(1))
    v = part[:, :, 0, 0, 0]
    assert part.shape == (6, 4, 3, 2, 2) and bool((v[:, 1:] - v[:, :-1] == 1).all())
    start = v[:, 0] - 100 * torch.arange(6) - 1  # clip b's own frames, start in [0, 12]
    assert bool(((start >= 0) & (start <= 12)).all()) and len(set(start.tolist())) > 1


def test_mixed_sampling_mixes_the_low_clip_with_consecutive_high_frames():
    seen = []

    class Record(Spy):
        def forward(self, x, subnet):
            seen.append(x)
            return super().forward(x, subnet)

    low, high = torch.zeros(6, 4, 3, 2, 2), frame_numbers(6, 16)
    ctx = StepContext(rho=1.0, generator=torch.Generator().manual_seed(0))
    MODES["mixed"].step(Record(), [low, high], torch.zeros(6, dtype=torch.long), ctx)
    v = seen[0][:, :, 0, 0, 0]  # (1 - w_b) * (high frames start_b .. start_b + 3)
    scale = v[:, 1] - v[:, 0]  # 1 - w_b: one weight per clip, strictly inside (0, 1)
    assert bool(((scale > 0) & (scale < 1)).all()) and len(set(scale.tolist())) > 1
    assert torch.allclose(v[:, 2:] - v[:, 1:-1], scale[:, None].expand(6, 2), atol=1e-3)
    start = v[:, 0] / scale - 100 * torch.arange(6) - 1
    assert torch.allclose(start, start.round(), atol=1e-2) and bool((start.round() <= 12).all())


@pytest.mark.parametrize(
    "mode,frames,match",
    [
        ("mixed", (4, 8, 16), "2 frame count"),
        ("standard", (4, 16), "1 frame count"),
    ],
)
def test_modes_refuse_the_wrong_number_of_frame_counts(mode, frames, match):
    cfg = preset(
        "tiny", num_classes=5, frames=frames, specialize_norm=False, weight_alteration=False
    )
    with pytest.raises(FanEdgeError, match=match):
        check_mode(cfg, TrainConfig(mode=mode))


def test_rho_must_be_a_probability():
    with pytest.raises(FanEdgeError, match="--rho"):
        TrainConfig(mode="mixed", rho=1.5)


@pytest.mark.parametrize("mode", ["mixed", "proportional"])
def test_baseline_modes_train_one_plain_network(tmp_path, mode):
    result = train_from_options(out=tmp_path, mode=mode, frames=None, rho=0.5, **SMALL)
    assert torch.isfinite(torch.tensor(result["epochs"][0]["train_loss"]))
    model, _ = load_model(tmp_path / "checkpoint.pt")
    assert model.frames == (4, 16) and not list(model.private_parameters(0))


def test_st_trains_one_model_per_count_and_ensembles_them(tmp_path):
    train_from_options(out=tmp_path, mode="st", frames=[4, 8], **SMALL)
    assert sorted(p.parent.name for p in tmp_path.glob("*/checkpoint.pt")) == [
        "standard-4",
        "standard-8",
    ]
    st = evaluate_checkpoint(tmp_path, [4, 6, 8])  # the folder expands to its checkpoints
    assert [st["results"][n]["subnet_frames"] for n in (4, 6, 8)] == [4, 8, 8]
    ens = evaluate_checkpoint(tmp_path, [4], ensemble=True)
    assert ens["mode"] == "ensemble" and ens["results"][4]["subnet_frames"] == [4, 8]


def test_ensemble_averages_softmax_of_every_model():
    cfgs = [
        preset("tiny", num_classes=5, frames=(n,), specialize_norm=False, weight_alteration=False)
        for n in (4, 16)
    ]
    models = [build_model(c).eval() for c in cfgs]
    pairs = serving_networks(models, 8, ensemble=True)
    assert [f for f, _ in pairs] == [4, 16]
    assert serving_networks(models, 10, ensemble=False)[0][0] == 16  # a tie goes up
    assert serving_networks(models, 9, ensemble=False)[0][0] == 4  # nearest
    clip = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        expected = (models[0](clip).softmax(1) + models[1](clip).softmax(1)) / 2
        assert torch.allclose(scores(pairs, clip), expected, atol=1e-6)
        assert torch.equal(scores(pairs[:1], clip), models[0](clip))  # one model: its logits


def test_nearest_model_must_be_unambiguous():
    cfg = preset("tiny", num_classes=5, frames=(8,), specialize_norm=False, weight_alteration=False)
    with pytest.raises(FanEdgeError, match="one model per frame count"):
        serving_networks([build_model(cfg), build_model(cfg)], 8, ensemble=False)


def test_init_from_a_standard_model_fills_every_private_copy(tmp_path):
    train_from_options(out=tmp_path / "std", mode="standard", frames=[8], **SMALL)
    src, _ = load_model(tmp_path / "std" / "checkpoint.pt")
    fan = build_model(preset("tiny", num_classes=len(src.backbone.fc.bias), frames=(4, 8, 16)))
    report = init_from(fan, tmp_path / "std" / "checkpoint.pt")
    assert all("alter" in k for k in report["skipped"])  # only the alterations stay fresh
    for i in range(3):
        bn, src_bn = fan.subnetwork(i).layer1[0].bn1, src.subnetwork(0).layer1[0].bn1
        assert torch.equal(bn.running_var, src_bn.running_var)
    assert torch.equal(fan.backbone.stem[0].weight, src.backbone.stem[0].weight)


def test_init_from_another_task_keeps_a_fresh_classifier(tiny_checkpoint):
    fan = build_model(preset("tiny", num_classes=3, frames=(4, 16)))
    fc = fan.backbone.fc.weight.clone()
    report = init_from(fan, tiny_checkpoint)  # 21 classes -> 3: the head does not fit
    assert {"backbone.fc.weight", "backbone.fc.bias"} <= set(report["skipped"])
    assert torch.equal(fan.backbone.fc.weight, fc) and report["loaded"] > 0


def test_bn_shift_of_a_fan_and_of_two_models(tiny_checkpoint, tmp_path):
    report = bn_shift_report([tiny_checkpoint])
    assert [(c["a"], c["b"]) for c in report["comparisons"]] == [
        ("sub-network 4F", "sub-network 16F"),
        ("sub-network 8F", "sub-network 16F"),
    ]
    assert all(c["summary"]["mean_sym_kl"] > 0 for c in report["comparisons"])
    model, _ = load_model(tiny_checkpoint)
    same = compare(stored_stats(model, 1), stored_stats(model, 1))
    assert max(r.sym_kl for r in same) == 0.0 and max(r.mean_shift for r in same) == 0.0


def test_bn_shift_live_on_a_standard_model(tmp_path, cli):
    train_from_options(out=tmp_path / "std", mode="standard", frames=[8], **SMALL)
    ckpt = tmp_path / "std" / "checkpoint.pt"
    code, _, err = cli("analyze", "bn-shift", ckpt)
    assert code == 1 and "one set of normalization statistics" in err
    code, out, _ = cli(
        "analyze",
        "bn-shift",
        ckpt,
        "--live",
        "--frames",
        "4",
        "16",
        "--clips",
        "4",
        "--out",
        tmp_path / "a",
    )
    assert code == 0 and "data at 4F vs data at 16F" in out
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"bn_shift.json", "bn_shift.png"}


def test_train_help_and_checks_name_every_mode(cli):
    """The CLI imports no torch, so its --mode help is text: it must name every registered
    mode (and st), and an unknown mode is refused in one line naming them."""
    from fan_edge.train.api import ST_MODE

    code, out, _ = cli("train", "--help")
    assert code == 0
    assert all(name in out for name in [*MODES, ST_MODE])
    code, _, err = cli("train", "--mode", "nope", "--epochs", "1")
    assert code == 2 and err.count("\n") == 1 and all(name in err for name in MODES)


def test_bn_shift_live_measures_layer_norms_too(tmp_path):
    """A transformer's LayerNorms store no statistics; --live measures their input's."""
    from fan_edge.data.synthetic import CLASSES

    cfg = preset("tiny-uniformer", num_classes=len(CLASSES), frames=(2, 4))
    ckpt = save_untrained(
        tmp_path / "ck.pt",
        cfg,
        list(CLASSES),
        data={"train": "synthetic", "val": "synthetic", "val_seed": 1000, "num_val": 4},
    )
    stored = {r["layer"] for r in bn_shift_report([ckpt])["comparisons"][0]["layers"]}
    report = bn_shift_report([ckpt], live=True, frames=[2, 4], clips=4)
    live = {r["layer"]: r for r in report["comparisons"][0]["layers"]}
    layer_norms = {n for n in live if ".norm1" in n and "stages.2" in n}
    assert layer_norms and not layer_norms & stored  # attention blocks' LayerNorms, live only
    assert stored < set(live)
    assert all(live[n]["sym_kl"] > 0 for n in layer_norms)
