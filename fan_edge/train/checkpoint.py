"""One checkpoint file: weights + model/training config + class names (+ resume state).

Only tensors, numbers, strings, lists, tuples and dicts go in, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs pickled code.
"""

import re
from pathlib import Path

import torch

from fan_edge.config import DataSpec, ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_path
from fan_edge.models import FrameAdaptiveNet, build_model, resolve

FORMAT = "fan-edge-checkpoint"
# 2: the data spec at the top level (`data`), a backbone's own arguments in
# `model_config.backbone`. Version 1 files still load (their fields are moved on reading).
VERSION = 2


def save_checkpoint(path: str | Path, **content) -> None:
    """Write `content` (must hold model_config, classes, state_dict) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **content}, tmp)


def save_untrained(
    path: str | Path,
    cfg: ModelConfig,
    classes: list[str],
    *,
    seed: int = 0,
    data: dict | None = None,
) -> Path:
    """An untrained checkpoint whose private layers differ per sub-network, as after training.

    For tests and for benchmarks of size, memory and speed, which do not depend on trained
    values: norm statistics and alterations are randomised, so a graph that used another
    sub-network's tensors would show.
    """
    from fan_edge.config import TrainConfig

    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.dtype.is_floating_point and ("bn" in name or "alter" in name):
                t.add_(0.05 * torch.randn_like(t))
    mode = "fan" if len(cfg.frames) > 1 else "standard"
    save_checkpoint(
        path,
        model_config=cfg.to_dict(),
        train_config=TrainConfig(mode=mode).to_dict(),
        data=data,
        classes=list(classes),
        state_dict=model.state_dict(),
        epoch=0,
        metrics=[],
    )
    return Path(path)


DAMAGED = "the checkpoint is damaged or edited; use one written by `fan-edge train`"


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path`, after its model config, classes, training config and
    weights are checked: anything wrong is one FanEdgeError line naming the file and the
    field, before any work (eval, export, --init, --resume, flops all load through here)."""
    path = Path(path)
    if not path.is_file():
        raise FanEdgeError(f"no such checkpoint: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if first.startswith("Weights only load failed"):  # torch's advice here is unsafe
            first = "it holds more than tensors and plain data (corrupt, or not from fan-edge)"
        raise FanEdgeError(
            f"cannot load checkpoint {path}: {first}; pass a checkpoint written by `fan-edge train`"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FanEdgeError(f"{path} is not a fan-edge checkpoint (made by `fan-edge train`)")
    version = ckpt.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FanEdgeError(
            f"{path}: version must be an integer >= 1, got {_show(version)}: {DAMAGED}"
        )
    if version > VERSION:
        raise FanEdgeError(f"{path} has checkpoint version {version}; upgrade fan-edge")
    try:
        _check_content(ckpt)
    except FanEdgeError as e:
        raise FanEdgeError(f"{path}: {e}: {DAMAGED}") from None
    return ckpt


def _check_content(ckpt: dict) -> None:
    """What every reader of a checkpoint uses, checked once (FanEdgeError: "FIELD problem")."""
    for key in ("model_config", "classes", "train_config", "state_dict"):
        if key not in ckpt:
            raise FanEdgeError(f"{key} is missing")
    try:
        cfg = resolve(ModelConfig.from_dict(ckpt["model_config"]))
    except FanEdgeError as e:
        raise FanEdgeError(
            str(e) if str(e).startswith("model config") else f"model config: {e}"
        ) from None
    classes = ckpt["classes"]
    if not isinstance(classes, list | tuple):
        raise FanEdgeError(f"classes must be a list of class names, got {_show(classes)}")
    if len(classes) != cfg.num_classes:
        raise FanEdgeError(
            f"classes name {len(classes)} but the model config's num_classes is {cfg.num_classes}"
        )
    for i, name in enumerate(classes):
        if not isinstance(name, str) or not name:
            raise FanEdgeError(f"classes[{i}] must be a non-empty string, got {_show(name)}")
    if len(set(classes)) != len(classes):
        raise FanEdgeError("classes repeat a class name")
    train = ckpt["train_config"]
    if not isinstance(train, dict):
        raise FanEdgeError(f"train_config must be a dict, got {_show(train)}")
    mode = train.get("mode")
    if not isinstance(mode, str) or not mode:
        raise FanEdgeError(f"train_config.mode must be a mode name, got {_show(mode)}")
    extra = train.get("extra", {})  # where checkpoints before DataSpec kept it
    if not isinstance(extra, dict) or not isinstance(extra.get("data", {}), dict):
        raise FanEdgeError("train_config.extra must be a dict (with a dict `data`)")
    if not isinstance(ckpt.get("data") or {}, dict):
        raise FanEdgeError(f"data must be a dict, got {_show(ckpt['data'])}")
    DataSpec.of(ckpt)  # what `eval` reads without --data
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not state:
        raise FanEdgeError(f"state_dict must be a dict of tensors, got {_show(state)}")
    for key, t in state.items():
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            raise FanEdgeError(
                f"state_dict must map names to tensors, got {_show(key)}: {type(t).__name__}"
            )


def _show(v) -> str:
    """A short rendering of a value for an error message."""
    if isinstance(v, torch.Tensor):
        return f"a tensor of shape {list(v.shape)}"
    if isinstance(v, dict):
        return "a dict"
    if isinstance(v, list | tuple):
        return f"a list of {len(v)}"
    try:
        text = repr(v)
    except ValueError:  # an integer too long to print
        return "a very long number"
    return text if len(text) <= 40 else text[:37] + "..."


def load_model(path: str | Path) -> tuple[FrameAdaptiveNet, dict]:
    """Rebuild the model of a checkpoint in eval mode; returns (model, checkpoint dict)."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelConfig.from_dict(ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:  # missing or unexpected names, other shapes
        lines = [x.strip() for x in str(e).strip().splitlines()]
        first = lines[1] if len(lines) > 1 else lines[0]  # [0]: "Error(s) in loading ..."
        if len(first) > 200:
            first = first[:197] + "..."
        raise FanEdgeError(
            f"{path}: state_dict does not fit its model config ({first}): {DAMAGED}"
        ) from None
    return model.eval(), ckpt


def _shared_name(key: str) -> str:
    """A state-dict key without its sub-network index: `bn1.branches.2.weight` -> `bn1.weight`."""
    return re.sub(r"\.branches\.\d+(?=\.)", "", key)


def init_from(model: FrameAdaptiveNet, path: str | Path) -> dict:
    """Start `model` from another checkpoint's weights (the paper starts from ImageNet).

    Tensors match by name with the sub-network index removed, so a standard model's norm
    initialises every private copy, and a FAN's highest sub-network initialises a standard
    model. Tensors of another shape (a classifier for other classes) keep their fresh init.
    Returns {"loaded": n, "skipped": [keys]}.
    """
    ckpt = load_checkpoint(path)
    source: dict[str, torch.Tensor] = {}
    for key, t in ckpt["state_dict"].items():  # later branches (higher counts) win
        source[_shared_name(key)] = t
    state = model.state_dict()
    loaded, skipped = 0, []
    for key, t in state.items():
        src = source.get(_shared_name(key))
        if src is not None and src.shape == t.shape:
            state[key] = src.clone()
            loaded += 1
        else:
            skipped.append(key)
    if not loaded:
        raise FanEdgeError(
            f"no tensor of {path} fits this model: initialise from a checkpoint "
            "of the same architecture and width"
        )
    model.load_state_dict(state)
    return {"loaded": loaded, "skipped": skipped}
