"""Training from scratch: the plateau verdict, and FAN leaving the plateau with the defaults."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.config import KD_AFTER, KD_AFTER_OF_NONE, KD_SWITCH, TrainConfig, preset
from fan_edge.train.losses import DistillationGate, cross_entropy_all, mutual_distillation
from fan_edge.train.plateau import near_chance, plateau_warning
from fan_edge.train.trainer import _timed_ramp, train


def history(losses, top1=None, count=16):
    return [
        {"epoch": i + 1, "train_loss": loss}
        | ({"val": {str(count): {"top1": top1[i]}}} if top1 else {})
        for i, loss in enumerate(losses)
    ]


def test_near_chance_scales_with_the_number_of_classes():
    assert near_chance(9.0, 21) and not near_chance(10.0, 21)  # chance 4.8%
    assert near_chance(55.0, 2) and not near_chance(61.0, 2)  # at most 10 points above
    assert not near_chance(1.2, 174)


def test_a_run_on_the_plateau_is_told_what_to_do():
    warning = plateau_warning(history([3.11, 3.05, 3.03], [5.0, 6.2, 5.8], 16), 21)
    assert "still on the initial plateau after 3 epochs" in warning
    assert "5.8% at 16F" in warning and "--epochs" in warning and "--init" in warning
    assert plateau_warning(history([3.11, 2.9, 1.9], [5.0, 15.0, 49.8]), 21) is None
    # without validation the loss decides
    assert "not validated" in plateau_warning(history([3.1, 3.0]), 21)
    assert plateau_warning(history([3.1, 2.0]), 21) is None
    # at chance although the loss fell: not the plateau, a mismatch
    assert "validation labels" in plateau_warning(history([3.1, 1.0], [5.0, 5.0]), 21)
    assert plateau_warning([], 21) is None


def test_students_distil_only_once_the_teacher_knows_something():
    gate = DistillationGate(num_classes=10, level=0.25)
    for _ in range(300):  # a teacher at chance: students stay on their own cross-entropy
        gate.update(correct=1, total=10)
    assert gate.ramp == pytest.approx(0.0, abs=0.02)
    for _ in range(300):  # right on 1 clip in 4: 0.15 / (0.25 * 0.9) of the way
        gate.update(correct=4, total=16)
    assert 0.5 < gate.ramp < 0.7
    for _ in range(600):  # well past the level: the paper's loss from now on
        gate.update(correct=12, total=16)
    assert gate.ramp == 1.0
    gate.update(correct=0, total=16)
    assert gate.ramp == 1.0  # never goes back
    again = DistillationGate(num_classes=10)
    again.load_state_dict(gate.state_dict())
    assert again.ramp == 1.0 and again.accuracy == gate.accuracy
    assert DistillationGate(num_classes=10, level=0.0).ramp == 1.0  # the paper's recipe


def test_the_gate_blends_cross_entropy_into_the_paper_loss():
    torch.manual_seed(0)
    logits, y = [torch.randn(4, 6) for _ in range(3)], torch.tensor([0, 1, 2, 3])
    assert torch.allclose(mutual_distillation(logits, y, ramp=0.0), cross_entropy_all(logits, y))
    half = mutual_distillation(logits, y, ramp=0.5)
    between = sorted([mutual_distillation(logits, y).item(), cross_entropy_all(logits, y).item()])
    assert between[0] < half.item() < between[1]


def test_from_scratch_students_learn_from_labels_for_most_of_the_run_then_switch():
    run = TrainConfig(epochs=10)
    assert run.distill_after == KD_AFTER == 0.7 and KD_SWITCH == 0.2
    ramps = [_timed_ramp(run, e) for e in (0.0, 6.9, 7.0, 8.0, 9.0, 9.9)]
    assert ramps == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 1.0])  # the paper's loss from 9
    assert _timed_ramp(TrainConfig(epochs=100), 80.0) == pytest.approx(0.5)  # shares of a run
    assert TrainConfig(init="start.pt").distill_after == 0.0  # a start that knows the task
    assert _timed_ramp(TrainConfig(kd_after=0.0), 0.0) == 1.0  # no delay: the gate alone
    warm = TrainConfig(kd_after=0.0, kd_warmup_epochs=2.0)
    assert _timed_ramp(warm, 1.0) == pytest.approx(0.5)


def test_a_checkpoint_from_before_kd_after_keeps_distilling_with_no_delay():
    stored = TrainConfig().to_dict()
    del stored["kd_after"]
    assert TrainConfig.from_dict(stored).distill_after == 0.0


def test_a_run_stores_the_kd_after_it_uses_and_older_runs_read_as_they_trained():
    assert TrainConfig().resolved().kd_after == KD_AFTER  # stored so: a new default leaves it
    assert TrainConfig(init="start.pt").resolved().kd_after == 0.0
    older = TrainConfig().to_dict()  # written with None while the default was 0.5
    assert older["kd_after"] is None
    assert TrainConfig.from_dict(older).distill_after == KD_AFTER_OF_NONE == 0.5
    assert TrainConfig.from_dict(older | {"init": "start.pt"}).distill_after == 0.0


def test_kd_after_that_leaves_no_room_for_the_switch_is_refused():
    with pytest.raises(FanEdgeError, match=r"^--kd-after must be a finite number in \[0, 0.8\]"):
        TrainConfig(kd_after=0.9)


def test_kd_gate_outside_0_1_is_refused():
    with pytest.raises(FanEdgeError, match="--kd-gate"):
        TrainConfig(kd_gate=1.5)


@dataclass(frozen=True)
class Drift:
    """A tiny temporal task: a bright square drifts left, right, up or down over noise."""

    num_videos: int
    seed: int = 0
    size: int = 16
    length: int = 16
    noise: float = 35.0
    contrast: float = 140.0
    distractor: float = 0.0
    classes = ("left", "right", "up", "down")

    def __len__(self):
        return self.num_videos

    def label(self, i):
        return i % 4

    def num_frames(self, i):
        return self.length

    def read(self, i, indices):
        rng = np.random.default_rng([self.seed, i])
        s, step = self.size, [(-1, 0), (1, 0), (0, -1), (0, 1)][self.label(i)]
        x, y = rng.integers(s // 2 - 3, s // 2 + 3, 2)
        dx, dy = rng.integers(0, s, 2)  # a distractor that jumps about
        frames = rng.normal(80, self.noise, (self.length, s, s, 3))
        for t in range(self.length):
            px, py = (x + step[0] * t // 2) % s, (y + step[1] * t // 2) % s
            frames[t, py : py + 3, px : px + 3] += self.contrast
            qx, qy = (dx + rng.integers(-1, 2)) % s, (dy + rng.integers(-1, 2)) % s
            frames[t, qy : qy + 2, qx : qx + 2] += self.distractor
            dx, dy = qx, qy
        return np.clip(frames[indices], 0, 255).astype(np.uint8)


def exit_epoch(result, count, num_classes):
    return next(
        (
            r["epoch"]
            for r in result["epochs"]
            if not near_chance(r["val"][str(count)]["top1"], num_classes)
        ),
        None,
    )


@pytest.mark.slow
def test_fan_leaves_the_plateau_no_later_than_a_standard_model(tmp_path):
    """With `fan-edge train`'s defaults (only epochs and batch size made small), FAN's highest
    count must be off the plateau by the epoch a standard model of that count left it."""
    train_src, val_src = Drift(192, seed=0), Drift(64, seed=1)
    epochs = 5
    cfg = preset("tiny", input_size=16, num_classes=4, frames=(4, 8, 16))
    plain = preset(
        "tiny",
        input_size=16,
        num_classes=4,
        frames=(16,),
        specialize_norm=False,
        weight_alteration=False,
    )
    std = train(
        plain,
        TrainConfig(mode="standard", epochs=epochs, batch_size=16),
        train_src,
        val_src,
        tmp_path / "std",
        quiet=True,
    )
    fan = train(
        cfg,
        TrainConfig(epochs=epochs, batch_size=16),
        train_src,
        val_src,
        tmp_path / "fan",
        quiet=True,
    )
    std_exit = exit_epoch(std, 16, 4)
    assert std_exit is not None, "the standard model must leave the plateau on this task"
    fan_exit = exit_epoch(fan, 16, 4)
    assert fan_exit is not None and fan_exit <= std_exit, (fan["epochs"], std["epochs"])
