"""Small frozen configs. They are stored in checkpoints and bundles as plain dicts."""

import dataclasses
import math
from dataclasses import dataclass, field

from fan_edge.errors import FanEdgeError
from fan_edge.frames import validate_frame_set


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: architecture, frame set, FAN options."""

    arch: str = "tsm_resnet18"
    num_classes: int = 12
    frames: tuple[int, ...] = (4, 8, 16)
    width: float = 1.0
    stem: str = "imagenet"
    input_size: int = 224
    shift_div: int = 8
    dropout: float = 0.5
    specialize_norm: bool = True
    weight_alteration: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        object.__setattr__(self, "frames", validate_frame_set(self.frames))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if self.num_classes < 2:
            raise FanEdgeError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.width <= 0:
            raise FanEdgeError(f"width must be positive, got {self.width}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FanEdgeError(f"unknown model config keys {sorted(unknown)}")
        return cls(**d)


# Presets: "tiny" trains in minutes on 2 CPU cores at 32 px; "r50" is the paper's TSM-R50.
PRESETS: dict[str, dict] = {
    "tiny": dict(arch="tsm_resnet18", width=0.25, stem="small", input_size=32, dropout=0.2),
    "r18": dict(arch="tsm_resnet18", width=1.0, stem="imagenet", input_size=224),
    "r50": dict(arch="tsm_resnet50", width=1.0, stem="imagenet", input_size=224),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise FanEdgeError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})


MAX_WORKERS = 64  # DataLoader processes: more is a typo that forks thousands


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. `mode` names an entry of `fan_edge.train.modes.MODES`."""

    mode: str = "fan"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    kd_lambda: float = 1.0
    # Each student learns from the labels until the teacher knows something: its loss moves
    # from cross-entropy to the KL towards the teacher as the teacher's running training top-1
    # climbs `kd_gate` of the way from chance to 100% (losses.DistillationGate). From scratch,
    # distilling towards a teacher that is still a guess holds the shared weights back on the
    # initial plateau (README, "Training from scratch"). 0 = the paper's recipe (it starts
    # from ImageNet): distillation from the first step.
    kd_gate: float = 0.25
    # Alternatively (or as well) a fixed ramp over this many epochs (0 = none).
    kd_warmup_epochs: float = 0.0
    distill: bool = True  # False: cross-entropy on every sub-network (the paper's ablation)
    rho: float = 0.5  # mixed / proportional: probability of the mixed / high-count clip
    init: str | None = None  # checkpoint to start from (shared names; see checkpoint.init_from)
    seed: int = 0
    workers: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise FanEdgeError("epochs and batch size must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise FanEdgeError(f"--lr must be a finite number > 0, got {self.lr}")
        # nan fails every comparison, so each check is written to fail for it
        for flag, value in (("--lambda", self.kd_lambda), ("--kd-warmup", self.kd_warmup_epochs),
                            ("momentum", self.momentum), ("weight decay", self.weight_decay),
                            ("warmup epochs", self.warmup_epochs)):  # fmt: skip
            if not (math.isfinite(value) and value >= 0):
                raise FanEdgeError(f"{flag} must be a finite number >= 0, got {value}")
        if not 0 <= self.seed < 2**32:
            raise FanEdgeError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise FanEdgeError(f"--workers must be in 0..{MAX_WORKERS} (one process each), got "
                               f"{self.workers}")  # fmt: skip
        if not 0.0 <= self.kd_gate <= 1.0:
            raise FanEdgeError(f"--kd-gate is a fraction of the way from chance to 100% top-1: "
                               f"give a value in [0, 1] (0: distil from the first step), got "
                               f"{self.kd_gate}")  # fmt: skip
        if not 0.0 <= self.rho <= 1.0:
            raise FanEdgeError(f"--rho is a probability: give a value in [0, 1], got {self.rho}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
