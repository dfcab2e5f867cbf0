"""Small frozen configs. They are stored in checkpoints and bundles as plain dicts."""

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import NoReturn

from fan_edge.errors import FanEdgeError
from fan_edge.frames import validate_frame_set

# The stems the ResNet builders take. Backbone names are checked against the registry
# (fan_edge.models.registry) when a model is built: this module stays torch-free.
STEMS = ("imagenet", "small")
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 4096  # the bundle's input.size goes up to 4096 too
MAX_WIDTH = 16  # channel multiplier: 16 is already 16x a ResNet's channels
MAX_SHIFT_DIV = 256  # 1/shift_div of the channels shifts each way (2: all of them)


def _is_int(v) -> bool:
    """An integer, numpy's included, but not a bool (True is not a size)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _show(v) -> str:
    """A short rendering of a value for an error message: '32' (a string) vs 32."""
    if isinstance(v, dict):
        return "a dict"
    if isinstance(v, list | tuple) and len(v) > 8:
        return f"a list of {len(v)}"
    try:
        text = repr(list(v) if isinstance(v, tuple) else v)
    except ValueError:  # an integer too long to print
        return "a very long number"
    return text if len(text) <= 40 else text[:37] + "..."


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
        """Check every field's type and range, so that a bad value is one line naming the
        field, not a traceback (or silently wrong preprocessing) in a forward pass."""

        def fail(name: str, want: str) -> NoReturn:
            raise FanEdgeError(f"{name} must be {want}, got {_show(getattr(self, name))}")

        def choice(name: str, choices: tuple[str, ...]) -> None:
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                fail(name, f"one of {', '.join(choices)}")

        def integer(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if not (_is_int(v) and lo <= v <= hi):
                fail(name, f"an integer in {lo}..{hi}")
            object.__setattr__(self, name, int(v))

        def real(name: str, ok, want: str) -> None:
            v = getattr(self, name)
            if not (_is_real(v) and math.isfinite(v) and ok(v)):
                fail(name, f"a finite number {want}")
            object.__setattr__(self, name, float(v))

        def triple(name: str, positive: bool) -> None:
            v = getattr(self, name)
            want = f"a list of 3 finite numbers{' > 0' if positive else ''} (R, G, B)"
            if not (isinstance(v, list | tuple) and len(v) == 3):
                fail(name, want)
            for x in v:
                if not (_is_real(x) and math.isfinite(x) and (x > 0 or not positive)):
                    fail(name, want)
            object.__setattr__(self, name, tuple(float(x) for x in v))

        if not (isinstance(self.arch, str) and self.arch.isidentifier()):
            fail("arch", "a backbone name")
        integer("num_classes", 2, MAX_CLASSES)
        frames = self.frames
        if not (isinstance(frames, list | tuple) and frames and all(map(_is_int, frames))):
            fail("frames", "a non-empty list of integer frame counts")
        object.__setattr__(self, "frames", validate_frame_set(frames))
        real("width", lambda w: 0 < w <= MAX_WIDTH, f"in (0, {MAX_WIDTH}]")
        choice("stem", STEMS)
        integer("input_size", MIN_INPUT_SIZE, MAX_INPUT_SIZE)
        integer("shift_div", 2, MAX_SHIFT_DIV)
        real("dropout", lambda p: 0 <= p < 1, "in [0, 1)")
        for name in ("specialize_norm", "weight_alteration"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "true or false")
        triple("mean", positive=False)
        triple("std", positive=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config a checkpoint stored (the load path): every field of the first format
        must be present (a missing one must not become a default silently), fields added
        since take their defaults, all must be valid; a problem reads "model config: FIELD
        ..." for the caller to name the file."""
        if not isinstance(d, dict):
            raise FanEdgeError(f"model config must be a dict of fields, got {_show(d)}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(map(str, set(d) - set(names)))
        if unknown:
            raise FanEdgeError(f"model config: unknown fields {', '.join(unknown)}")
        missing = [n for n in names if n not in d and n in REQUIRED_MODEL_FIELDS]
        if missing:
            raise FanEdgeError(f"model config: {', '.join(missing)} missing")
        try:
            return cls(**d)
        except FanEdgeError as e:
            raise FanEdgeError(f"model config: {e}") from None


# Every checkpoint ever written holds these; a field added later needs a default that
# rebuilds the models written before it, and is not listed here.
REQUIRED_MODEL_FIELDS = frozenset({
    "arch", "num_classes", "frames", "width", "stem", "input_size", "shift_div", "dropout",
    "specialize_norm", "weight_alteration", "mean", "std"})  # fmt: skip


# Presets (name -> ModelConfig fields), filled by the backbones as they register
# (fan_edge.models.registry): "tiny" trains in minutes on 2 CPU cores at 32 px, "r50" is the
# paper's TSM-R50.
PRESETS: dict[str, dict] = {}


def preset(name: str, **overrides) -> ModelConfig:
    import fan_edge.models  # noqa: F401  (the backbones register their presets)

    if name not in PRESETS:
        raise FanEdgeError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})


MAX_WORKERS = 64  # DataLoader processes: more is a typo that forks thousands
# Integer labels index the class list: a larger one is a typo, not a class (and a list
# of that many class names would not fit in memory).
MAX_CLASSES = 100_000


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
