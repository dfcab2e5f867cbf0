"""Losses of the training modes. Each takes one logits tensor per sub-network, low to high."""

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
