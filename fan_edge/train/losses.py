"""Losses of the training modes. Each takes one logits tensor per sub-network, low to high."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def mutual_distillation(
    logits: list[torch.Tensor], target: torch.Tensor, lam: float = 1.0, ramp: float = 1.0
):
    """CE on the highest frame count + lam * sum of KL(teacher || student) for the others.

    The teacher (highest count) is detached, so the KL terms train the students' private
    layers and, through them, the shared weights, without pulling the teacher down.
    `ramp` < 1 (warm-up from scratch) blends each student's KL with its own cross-entropy,
    lam * (ramp * KL + (1 - ramp) * CE): a random teacher has nothing to teach yet.
    """
    *students, teacher = logits
    loss = F.cross_entropy(teacher, target)
    p_teacher = F.softmax(teacher.detach(), dim=1)
    for z in students:
        term = ramp * F.kl_div(F.log_softmax(z, dim=1), p_teacher, reduction="batchmean")
        if ramp < 1.0:
            term = term + (1.0 - ramp) * F.cross_entropy(z, target)
        loss = loss + lam * term
    return loss


def cross_entropy_all(
    logits: list[torch.Tensor], target: torch.Tensor, lam: float = 1.0, ramp: float = 1.0
):
    """Plain CE summed over sub-networks (standard mode when there is one)."""
    return sum(F.cross_entropy(z, target) for z in logits)


@dataclass
class DistillationGate:
    """How far the students have moved from their own cross-entropy to distillation (`ramp`).

    From scratch the teacher (the highest count) starts as a guess, and distilling towards a
    guess pulls the shared weights against what the teacher's own cross-entropy is learning
    (`benchmarks/grad_probe.py` measures it). So each student learns from the labels and moves
    to the paper's KL as the teacher's running top-1 on training batches climbs from chance to
    `level` of the way to 100%; the ramp never goes back, and from then on the loss is the
    paper's. `level=0` distils from the first step (the paper's recipe).
    """

    num_classes: int
    level: float = 0.25
    momentum: float = 0.99  # about 100 steps
    accuracy: float | None = None  # running teacher top-1 on training batches, 0..1
    ramp: float = 0.0

    def __post_init__(self):
        if self.level <= 0:
            self.ramp = 1.0
        if self.accuracy is None:
            self.accuracy = 1.0 / self.num_classes  # a guess is right by chance

    def update(self, correct: float, total: float) -> float:
        """Add one batch's teacher results (over every process); return the new ramp."""
        if self.ramp >= 1.0 or total <= 0:
            return self.ramp
        self.accuracy = self.momentum * self.accuracy + (1 - self.momentum) * correct / total
        chance = 1.0 / self.num_classes
        progress = (self.accuracy - chance) / (self.level * (1.0 - chance))
        self.ramp = max(self.ramp, min(1.0, progress))
        return self.ramp

    def state_dict(self) -> dict:
        return {"accuracy": self.accuracy, "ramp": self.ramp}

    def load_state_dict(self, state: dict) -> None:
        self.accuracy, self.ramp = float(state["accuracy"]), float(state["ramp"])
