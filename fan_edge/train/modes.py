"""Training modes: how one batch (one clip per sampled frame count) becomes a loss.

A mode is one function `(model, clips, target, ctx) -> loss` in `MODES`, plus the frame
counts it samples by default and whether it trains one plain network (no private layers).
A new mode costs one function and one table row.

- `fan`: every sub-network on its own sampling; Mutual Distillation (or, with
  `distill=False`, cross-entropy on each: the paper's ablation).
- `standard`: one frame count, cross-entropy. Run once per count it is Separated Training.
- `mixed` (paper 5.1): with probability rho, Mixup of the low-count clip with as many
  consecutive frames of the high-count clip, trained at the low count; else the high clip.
- `proportional` (paper 5.1): the high-count clip with probability rho, else the low one.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fan_edge.frames import DEFAULT_FRAMES
from fan_edge.train.losses import cross_entropy_all, mutual_distillation


@dataclass
class StepContext:
    """Per-step knobs of a mode. The trainer sets `ramp` (0: students on cross-entropy,
    1: the paper's distillation) before each step; a FAN step leaves how many clips its
    teacher got right in `teacher_correct`, which moves the ramp."""

    lam: float = 1.0
    ramp: float = 1.0
    teacher_correct: torch.Tensor | None = None
    rho: float = 0.5
    distill: bool = True
    generator: torch.Generator = field(default_factory=torch.Generator)

    def coin(self, p: float) -> bool:
        return bool(torch.rand((), generator=self.generator) < p)


def fan_step(model, clips, target, ctx: StepContext) -> torch.Tensor:
    logits = [model(c, subnet=i) for i, c in enumerate(clips)]
    ctx.teacher_correct = (logits[-1].detach().argmax(1) == target).sum()
    if not ctx.distill:
        return cross_entropy_all(logits, target)
    return mutual_distillation(logits, target, ctx.lam, ctx.ramp)


def standard_step(model, clips, target, ctx: StepContext) -> torch.Tensor:
    (clip,) = clips
    return F.cross_entropy(model(clip, subnet=0), target)


def consecutive_frames(clip: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n consecutive frames of each clip in (B, T, ...), from a random start per clip."""
    b, t = clip.shape[:2]
    start = torch.randint(0, t - n + 1, (b, 1), generator=generator)
    index = start + torch.arange(n)
    return clip[torch.arange(b)[:, None], index]


def mixed_step(model, clips, target, ctx: StepContext) -> torch.Tensor:
    low, high = clips
    if not ctx.coin(ctx.rho):
        return F.cross_entropy(model(high, subnet=1), target)
    part = consecutive_frames(high, low.shape[1], ctx.generator)
    # Mixup weight ~ Beta(1, 1), i.e. uniform (the paper does not give its alpha)
    w = torch.rand(low.shape[0], generator=ctx.generator).to(low.device)
    w = w.view(-1, *([1] * (low.dim() - 1)))
    # both clips come from the same video, so Mixup leaves the label as it is
    return F.cross_entropy(model(w * low + (1 - w) * part, subnet=0), target)


def proportional_step(model, clips, target, ctx: StepContext) -> torch.Tensor:
    low, high = clips
    if ctx.coin(ctx.rho):
        return F.cross_entropy(model(high, subnet=1), target)
    return F.cross_entropy(model(low, subnet=0), target)


@dataclass(frozen=True)
class Mode:
    step: Callable[..., torch.Tensor]
    # which of a model's frame set (the preset's: low, ..., high) the mode trains by default
    picks: Callable[[tuple[int, ...]], tuple[int, ...]]
    num_frames: int | None  # how many frame counts it takes; None = any number >= 1
    plain: bool  # one network: no Specialized Normalization, no Weight Alteration

    def default_frames(self, frame_set: tuple[int, ...] = DEFAULT_FRAMES) -> tuple[int, ...]:
        """The frames this mode trains when none are given, for a preset's `frame_set`
        (4/8/16 for most; SlowFast's are 16/32/64)."""
        return self.picks(tuple(sorted(frame_set)))


MODES: dict[str, Mode] = {
    "fan": Mode(fan_step, lambda s: s, None, plain=False),
    "standard": Mode(standard_step, lambda s: s[-1:], 1, plain=True),
    "mixed": Mode(mixed_step, lambda s: (s[0], s[-1]), 2, plain=True),
    "proportional": Mode(proportional_step, lambda s: (s[0], s[-1]), 2, plain=True),
}
