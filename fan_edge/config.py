"""Small frozen configs, stored in checkpoints and bundles as plain dicts.

`RunConfig` is one training run: the model (a preset and what a run may change in it), the
optimisation (`TrainConfig`) and the data (`DataConfig`). The CLI, the Python API
(`fan_edge.train.api.train_run`) and the experiment runner (`fan_edge.experiments`) all make
one by overriding the default with flat option names (`RunConfig().replace(lr=0.02)`), so a
new training option is one field here plus its CLI flag.
"""

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import NoReturn

from fan_edge.errors import FanEdgeError
from fan_edge.frames import DEFAULT_FRAMES, validate_frame_set

MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 4096  # the bundle's input.size goes up to 4096 too
MAX_WORKERS = 64  # DataLoader processes: more is a typo that forks thousands
# Integer labels index the class list: a larger one is a typo, not a class (and a list
# of that many class names would not fit in memory).
MAX_CLASSES = 100_000
MAX_CLIPS = 10_000_000  # generated synthetic clips
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
VAL_SEED_OFFSET = 1000  # synthetic validation clips never overlap the training clips
ALTERATION_INITS = ("small", "kaiming")  # models/layers.py WeightAlteration
INTERPOLATIONS = ("area", "bilinear")  # data/transforms.py


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


class Check:
    """Field checks for a frozen dataclass's `__post_init__`: each failure is one line naming
    the field (`name` as the user knows it: a flag or a config key) and what it must be;
    each success stores the value in its canonical type (a numpy int becomes an int)."""

    def __init__(self, obj, names: dict[str, str] | None = None):
        self.obj, self.names = obj, names or {}

    def fail(self, name: str, want: str) -> NoReturn:
        label = self.names.get(name, name)
        raise FanEdgeError(f"{label} must be {want}, got {_show(getattr(self.obj, name))}")

    def _set(self, name: str, value) -> None:
        object.__setattr__(self.obj, name, value)

    def choice(self, name: str, choices) -> None:
        v = getattr(self.obj, name)
        if not isinstance(v, str) or v not in choices:
            self.fail(name, f"one of {', '.join(choices)}")

    def text(self, name: str, optional: bool = False) -> None:
        v = getattr(self.obj, name)
        if isinstance(v, os.PathLike):  # a path is kept as the string it spells
            v = os.fspath(v)
            self._set(name, v)
        if not ((isinstance(v, str) and v) or (optional and v is None)):
            self.fail(name, "a non-empty string" + (" or null" if optional else ""))

    def integer(self, name: str, lo: int, hi: int) -> None:
        v = getattr(self.obj, name)
        if not (_is_int(v) and lo <= v <= hi):
            self.fail(name, f"an integer in {lo}..{hi}")
        self._set(name, int(v))

    def real(self, name: str, ok, want: str) -> None:
        v = getattr(self.obj, name)
        if not (_is_real(v) and math.isfinite(v) and ok(v)):  # nan fails every comparison
            self.fail(name, f"a finite number {want}")
        self._set(name, float(v))

    def flag(self, name: str) -> None:
        if not isinstance(getattr(self.obj, name), bool):
            self.fail(name, "true or false")

    def triple(self, name: str, positive: bool) -> None:
        v = getattr(self.obj, name)
        want = f"a list of 3 finite numbers{' > 0' if positive else ''} (R, G, B)"
        if not (isinstance(v, list | tuple) and len(v) == 3):
            self.fail(name, want)
        for x in v:
            if not (_is_real(x) and math.isfinite(x) and (x > 0 or not positive)):
                self.fail(name, want)
        self._set(name, tuple(float(x) for x in v))

    def integers(self, name: str, count: int, lo: int, hi: int) -> None:
        v = getattr(self.obj, name)
        if not (
            isinstance(v, list | tuple)
            and len(v) == count
            and all(_is_int(x) and lo <= x <= hi for x in v)
        ):
            self.fail(name, f"a list of {count} integers in {lo}..{hi}")
        self._set(name, tuple(int(x) for x in v))

    def frames(self, name: str, optional: bool = False) -> None:
        v = getattr(self.obj, name)
        if optional and v is None:
            return
        if not (isinstance(v, list | tuple) and v and all(map(_is_int, v))):
            self.fail(name, "a non-empty list of integer frame counts")
        self._set(name, validate_frame_set(v))


def from_dict(cls, d: dict, what: str, required=frozenset()):
    """`cls` from a stored dict: every field of `required` present (a missing one must not
    become a default silently), fields added since take their defaults, unknown fields
    refused; a problem reads "WHAT: FIELD ..." for the caller to name the file."""
    if not isinstance(d, dict):
        raise FanEdgeError(f"{what} must be a dict of fields, got {_show(d)}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(map(str, set(d) - set(names)))
    if unknown:
        raise FanEdgeError(f"{what}: unknown fields {', '.join(unknown)}")
    missing = [n for n in names if n not in d and n in required]
    if missing:
        raise FanEdgeError(f"{what}: {', '.join(missing)} missing")
    try:
        return cls(**d)
    except FanEdgeError as e:
        raise FanEdgeError(f"{what}: {e}") from None


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: architecture, frame set, FAN options, and the
    backbone's own arguments (`backbone`, checked by the backbone: see models/registry.py)."""

    arch: str = "tsm_resnet18"
    num_classes: int = 12
    frames: tuple[int, ...] = DEFAULT_FRAMES
    input_size: int = 224
    dropout: float = 0.5
    specialize_norm: bool = True
    weight_alteration: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    backbone: dict = field(default_factory=dict)
    alteration_init: str = "small"  # or "kaiming" (the reference's); later field: defaulted
    # Evaluation resizes the shorter side to `resize` (None: input_size), then crops
    # input_size; "bilinear" is the reference implementations' (imported models: 256 -> 224).
    resize: int | None = None
    interpolation: str = "area"

    def __post_init__(self):
        """Check every field's type and range, so that a bad value is one line naming the
        field, not a traceback (or silently wrong preprocessing) in a forward pass."""
        c = Check(self)
        if not (isinstance(self.arch, str) and self.arch.isidentifier()):
            c.fail("arch", "a backbone name")
        c.integer("num_classes", 2, MAX_CLASSES)
        c.frames("frames")
        c.integer("input_size", MIN_INPUT_SIZE, MAX_INPUT_SIZE)
        c.real("dropout", lambda p: 0 <= p < 1, "in [0, 1)")
        c.flag("specialize_norm")
        c.flag("weight_alteration")
        c.triple("mean", positive=False)
        c.triple("std", positive=True)
        if self.alteration_init not in ALTERATION_INITS:
            c.fail("alteration_init", f"one of {', '.join(ALTERATION_INITS)}")
        if self.resize is not None:
            c.integer("resize", self.input_size, MAX_INPUT_SIZE)
        if self.interpolation not in INTERPOLATIONS:
            c.fail("interpolation", f"one of {', '.join(INTERPOLATIONS)}")
        if not (isinstance(self.backbone, dict) and all(map(str.isidentifier, self.backbone))):
            c.fail("backbone", "a dict of the backbone's arguments")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eval_dataset(self, source, frames, **kw):
        """`source` read for evaluation with this model's preprocessing (datasets.py)."""
        from fan_edge.data.datasets import ClipDataset

        return ClipDataset(
            source,
            tuple(frames),
            self.input_size,
            self.mean,
            self.std,
            resize=self.resize,
            interpolation=self.interpolation,
            **kw,
        )

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config a checkpoint stored (the load path). Checkpoints written before the
        backbone's own arguments moved into `backbone` hold them as top-level fields."""
        if isinstance(d, dict) and LEGACY_BACKBONE_FIELDS & set(d):
            moved = {k: d[k] for k in LEGACY_BACKBONE_FIELDS if k in d}
            d = {k: v for k, v in d.items() if k not in moved}
            backbone = d.get("backbone") or {}
            if not isinstance(backbone, dict) or set(moved) & set(backbone):
                raise FanEdgeError(
                    f"model config: {', '.join(sorted(moved))} both in backbone and as fields"
                )
            d["backbone"] = {**moved, **backbone}
        return from_dict(cls, d, "model config", REQUIRED_MODEL_FIELDS)


# Every checkpoint ever written holds these; a field added later needs a default that
# rebuilds the models written before it, and is not listed here.
REQUIRED_MODEL_FIELDS = frozenset(
    {
        "arch",
        "num_classes",
        "frames",
        "input_size",
        "dropout",
        "specialize_norm",
        "weight_alteration",
        "mean",
        "std",
    }
)
# TSM-ResNet's arguments, top-level fields of the first checkpoint format (with these
# defaults, stored for every arch).
LEGACY_BACKBONE_DEFAULTS = {"width": 1.0, "stem": "imagenet", "shift_div": 8}
LEGACY_BACKBONE_FIELDS = frozenset(LEGACY_BACKBONE_DEFAULTS)


# Presets (name -> ModelConfig fields), filled by the backbones as they register
# (fan_edge.models.registry): "tiny" trains in minutes on 2 CPU cores at 32 px, "r50" is the
# paper's TSM-R50.
PRESETS: dict[str, dict] = {}


def preset(name: str, **overrides) -> ModelConfig:
    """The preset's ModelConfig with `overrides`; `backbone` overrides merge into the
    preset's backbone arguments, and the result's are checked and completed by the backbone."""
    from fan_edge.models.registry import resolve  # the backbones register their presets

    if name not in PRESETS:
        raise FanEdgeError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    legacy = sorted(LEGACY_BACKBONE_FIELDS & set(overrides))
    if legacy:
        raise FanEdgeError(
            f"{', '.join(legacy)}: a backbone's own arguments go in backbone={{{legacy[0]!r}: ...}}"
        )
    fields = {**PRESETS[name], **overrides}
    fields["backbone"] = {**PRESETS[name].get("backbone", {}), **overrides.get("backbone", {})}
    return resolve(ModelConfig(**fields))


# The share of a run over which FAN's students move from cross-entropy to distillation,
# from `TrainConfig.kd_after` of it on.
KD_SWITCH = 0.2
KD_AFTER = 0.7  # TrainConfig.kd_after from scratch (README, "Training from scratch")
# What a stored `kd_after: None` meant: runs store the share they use (TrainConfig.resolved)
# since the default moved; those written before stored None while the default was 0.5.
KD_AFTER_OF_NONE = 0.5


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
    # ... and, whatever the gate says, for the first `kd_after` of the run; the students then
    # move to the KL over the next KD_SWITCH of it, and the rest of the run optimises the
    # paper's loss. From scratch a 16-frame teacher is the slowest sub-network to learn, and
    # distilling the students towards it early costs them (README, "Training from scratch").
    # 0 = no delay (the gate alone); None = KD_AFTER from scratch, 0 from --init (a start that
    # knows the task gives a teacher worth distilling from at once). See `distill_after`.
    kd_after: float | None = None
    # Alternatively (or as well) a fixed ramp over this many epochs (0 = none).
    kd_warmup_epochs: float = 0.0
    distill: bool = True  # False: cross-entropy on every sub-network (the paper's ablation)
    rho: float = 0.5  # mixed / proportional: probability of the mixed / high-count clip
    init: str | None = None  # checkpoint to start from (shared names; see checkpoint.init_from)
    seed: int = 0
    workers: int = 0

    def __post_init__(self):
        c = Check(self, FLAGS)
        c.text("mode")
        c.integer("epochs", 1, 100_000)
        c.integer("batch_size", 1, 4096)
        c.real("lr", lambda v: v > 0, "> 0")
        for name in ("kd_lambda", "kd_warmup_epochs", "momentum", "weight_decay", "warmup_epochs"):
            c.real(name, lambda v: v >= 0, ">= 0")
        c.real(
            "kd_gate",
            lambda v: 0 <= v <= 1,
            "in [0, 1] (a fraction of the way from chance to "
            "100% top-1; 0: distil from the first step)",
        )
        if self.kd_after is not None:
            c.real(
                "kd_after",
                lambda v: 0 <= v <= 1 - KD_SWITCH,
                f"in [0, {1 - KD_SWITCH:g}] (a fraction of the run; the switch to distillation "
                f"takes the next {KD_SWITCH:g} of it)",
            )
        c.real("rho", lambda v: 0 <= v <= 1, "in [0, 1] (a probability)")
        c.flag("distill")
        c.text("init", optional=True)
        c.integer("seed", 0, MAX_SEED)
        c.integer("workers", 0, MAX_WORKERS)

    @property
    def distill_after(self) -> float:
        """`kd_after` resolved: the share of the run before the students start to distil."""
        if self.kd_after is not None:
            return self.kd_after
        return 0.0 if self.init else KD_AFTER

    def resolved(self) -> "TrainConfig":
        """This config with `kd_after` as the run uses it: what a run stores, so a later
        default cannot change how a resumed run trains. (Only FAN distils.)"""
        if self.mode != "fan":
            return self
        return dataclasses.replace(self, kd_after=self.distill_after)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A stored training config; its data spec (kept here by older checkpoints, under
        `extra`) is `DataSpec.of`'s business."""
        if isinstance(d, dict):
            d = {k: v for k, v in d.items() if k != "extra"}
            d.setdefault("kd_after", 0.0)  # checkpoints from before it distilled with no delay
            if d["kd_after"] is None and not d.get("init"):
                d["kd_after"] = KD_AFTER_OF_NONE
        return from_dict(cls, d, "train config", {"mode"})


# Flags the CLI gives fields whose names differ (for error messages that name the flag).
FLAGS = {
    "kd_lambda": "--lambda",
    "kd_warmup_epochs": "--kd-warmup",
    "kd_gate": "--kd-gate",
    "kd_after": "--kd-after",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "seed": "--seed",
    "workers": "--workers",
    "rho": "--rho",
    "epochs": "--epochs",
}


@dataclass(frozen=True)
class DataConfig:
    """What to train and validate on: 'synthetic' (or another built-in task), a videos .csv
    or a frame list. Built-in tasks make `num_videos` / `num_val` clips from the seed."""

    data: str = "synthetic"
    val: str | None = None  # None: a built-in task makes its own; your data has none
    num_videos: int = 2000
    num_val: int = 500

    def __post_init__(self):
        c = Check(
            self,
            {
                "data": "--data",
                "val": "--val",
                "num_videos": "--num-videos",
                "num_val": "--num-val",
            },
        )
        if self.val == "":  # `--val ""`: no validation data
            object.__setattr__(self, "val", None)
        c.text("data")
        c.text("val", optional=True)
        c.integer("num_videos", 1, MAX_CLIPS)
        c.integer("num_val", 1, MAX_CLIPS)

    @property
    def builtin(self) -> bool:
        return self.data.startswith("synthetic")


@dataclass(frozen=True)
class ModelChoice:
    """The model of a run: a preset, and what a run may change in it."""

    preset: str = "tiny"
    frames: tuple[int, ...] | None = None  # None: the mode's default frame set
    specialize_norm: bool = True
    weight_alteration: bool = True
    alteration_init: str = "small"

    def __post_init__(self):
        c = Check(self, {"preset": "--preset", "frames": "--frames"})
        c.text("preset")
        c.frames("frames", optional=True)
        c.flag("specialize_norm")
        c.flag("weight_alteration")
        if self.alteration_init not in ALTERATION_INITS:
            c.fail("alteration_init", f"one of {', '.join(ALTERATION_INITS)}")


@dataclass(frozen=True)
class RunConfig:
    """One training run. Sections are frozen and validated; `replace` takes flat option
    names (every field name of every section is unique) and returns a new, checked config."""

    model: ModelChoice = field(default_factory=ModelChoice)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def replace(self, **options) -> "RunConfig":
        unknown = sorted(set(options) - set(OPTION_SECTION))
        if unknown:
            raise TypeError(f"unknown run options {unknown}: see fan_edge.config.RunConfig")
        sections = {}
        for name, value in options.items():
            sections.setdefault(OPTION_SECTION[name], {})[name] = value
        return dataclasses.replace(
            self,
            **{
                s: dataclasses.replace(getattr(self, s), **changes)
                for s, changes in sections.items()
            },
        )

    def options(self) -> dict:
        """The flat options: `RunConfig().replace(**cfg.options()) == cfg`."""
        return {
            f.name: getattr(getattr(self, s), f.name)
            for s in SECTIONS
            for f in dataclasses.fields(getattr(self, s))
        }


SECTIONS = ("model", "train", "data")
# flat option name -> the section that holds it
OPTION_SECTION = {
    f.name: s
    for s, cls in zip(SECTIONS, (ModelChoice, TrainConfig, DataConfig), strict=True)
    for f in dataclasses.fields(cls)
}
assert len(OPTION_SECTION) == sum(
    len(dataclasses.fields(c)) for c in (ModelChoice, TrainConfig, DataConfig)
)


@dataclass(frozen=True)
class DataSpec:
    """What a run was trained on, recorded in its checkpoint (`data`): the DataConfig as
    resolved, so that `eval` finds the validation data and `--resume` refuses other data."""

    train: str
    val: str | None = None
    val_seed: int = 0
    num_val: int = 500
    # recorded since resume compares data (older checkpoints: None, not compared)
    num_videos: int | None = None
    classes: tuple[str, ...] | None = None
    train_sha256: str | None = None  # a list file's content (None: built-in data)
    val_sha256: str | None = None

    def __post_init__(self):
        c = Check(self)
        c.text("train")
        c.text("val", optional=True)
        c.integer("val_seed", 0, MAX_SEED + VAL_SEED_OFFSET)
        c.integer("num_val", 1, MAX_CLIPS)
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, ckpt: dict) -> "DataSpec | None":
        """The spec a checkpoint recorded (older ones kept it in train_config.extra.data)."""
        train = ckpt.get("train_config")
        extra = train.get("extra") if isinstance(train, dict) else None
        d = ckpt.get("data") or (extra.get("data") if isinstance(extra, dict) else None)
        return from_dict(cls, d, "data", {"train"}) if d else None

    def differences(self, other: "DataSpec") -> list[str]:
        """Fields recorded by both that differ; a list file is known by its content, so
        another spelling of its path is the same data."""
        same = {
            k
            for k in ("train", "val")
            if getattr(self, f"{k}_sha256")
            and getattr(self, f"{k}_sha256") == getattr(other, f"{k}_sha256")
        }
        later = ("num_videos", "classes", "train_sha256", "val_sha256")  # None: not recorded
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in same
            and not (f.name in later and None in (getattr(self, f.name), getattr(other, f.name)))
            and getattr(self, f.name) != getattr(other, f.name)
        ]
