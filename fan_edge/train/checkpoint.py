"""One checkpoint file: weights + model/training config + class names (+ resume state).

Only tensors, numbers, strings, lists, tuples and dicts go in, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs pickled code.
"""

import re
from pathlib import Path

import torch

from fan_edge.config import ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_path
from fan_edge.models import FrameAdaptiveNet, build_model

FORMAT = "fan-edge-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, **content) -> None:
    """Write `content` (must hold model_config, classes, state_dict) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **content}, tmp)


def save_untrained(path: str | Path, cfg: ModelConfig, classes: list[str], *,
                   seed: int = 0, data: dict | None = None) -> Path:  # fmt: skip
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
    train_cfg = TrainConfig(mode=mode, extra={"data": data} if data else {})
    save_checkpoint(path, model_config=cfg.to_dict(), train_config=train_cfg.to_dict(),
                    classes=list(classes), state_dict=model.state_dict(), epoch=0,
                    metrics=[])  # fmt: skip
    return Path(path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FanEdgeError(f"no such checkpoint: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if first.startswith("Weights only load failed"):  # torch's advice here is unsafe
            first = "it holds more than tensors and plain data (corrupt, or not from fan-edge)"
        raise FanEdgeError(f"cannot load checkpoint {path}: {first}; pass a checkpoint "
                           "written by `fan-edge train`") from None  # fmt: skip
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FanEdgeError(f"{path} is not a fan-edge checkpoint (made by `fan-edge train`)")
    if ckpt.get("version", 0) > VERSION:
        raise FanEdgeError(f"{path} has checkpoint version {ckpt['version']}; upgrade fan-edge")
    return ckpt


def load_model(path: str | Path) -> tuple[FrameAdaptiveNet, dict]:
    """Rebuild the model of a checkpoint in eval mode; returns (model, checkpoint dict)."""
    ckpt = load_checkpoint(path)
    try:
        model = build_model(ModelConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise FanEdgeError(f"{path} is damaged or from another version ({first})") from None
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
        raise FanEdgeError(f"no tensor of {path} fits this model: initialise from a checkpoint "
                           "of the same architecture and width")  # fmt: skip
    model.load_state_dict(state)
    return {"loaded": loaded, "skipped": skipped}
