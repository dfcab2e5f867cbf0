"""Checkpoints from the wild -> fan-edge checkpoints (`fan-edge import SRC --from ...`).

One file per source (ffn.py, tsm.py, mmaction.py, torchvision.py) registers its name rules
(registry.py); this module reads the file safely (`torch.load(weights_only=True)`: a pickle
that would run code is refused), builds the fan-edge model the source's tensors describe
(depth, width, stem, classes and frame counts read from the tensors and the file name),
loads them strictly (every tensor used, every parameter given) and saves a checkpoint that
`eval`, `export` and `train --init` take. An FFN checkpoint becomes a full FAN; the others a
standard model, which `fan-edge train --init` turns into a FAN.
"""

from pathlib import Path

from fan_edge.errors import FanEdgeError
from fan_edge.imports import ffn, mmaction, torchvision, tsm  # noqa: F401  (register them)
from fan_edge.imports.registry import SOURCES, Converted, register_source

__all__ = ["SOURCES", "Converted", "import_checkpoint", "register_source"]

REFERENCE_RESIZE = 256 / 224  # shorter side over crop, as TSM, FFN, MMAction2 and ImageNet evaluate


def read_state(src: Path) -> dict:
    """The tensors of a checkpoint file, without running any code it might carry."""
    import pickle
    import re

    import torch

    if not src.is_file():
        raise FanEdgeError(f"no checkpoint at {src}")
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        if refused is None:
            raise FanEdgeError(f"{src} is not a readable PyTorch checkpoint (damaged?)") from None
        raise FanEdgeError(
            f"{src} needs code to load ({refused.group(1)}); refusing it: re-save its "
            "state_dict alone (torch.save(ckpt['state_dict'], f)) where you trust it"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise FanEdgeError(f"cannot read {src} as a PyTorch checkpoint: {e}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict) or not ckpt:
        raise FanEdgeError(f"{src} holds no state dict")
    bad = [k for k, v in ckpt.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise FanEdgeError(f"{src}: {bad[0]!r} is not a tensor: not a state dict")
    return ckpt


def import_checkpoint(
    src: str | Path,
    source: str,
    out: str | Path,
    *,
    classes_file: str | Path | None = None,
    frames: list[int] | None = None,
    size: int = 224,
) -> dict:
    """Convert `src` (a checkpoint of `source`) and save it at `out`; returns a summary."""
    import torch

    from fan_edge.config import TrainConfig, preset
    from fan_edge.fileio import check_output_path
    from fan_edge.models import build_model
    from fan_edge.train.checkpoint import save_checkpoint

    if source not in SOURCES:
        raise FanEdgeError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    src, out = Path(src), Path(out)
    check_output_path(out, "--out checkpoint", inputs=[src])
    conv = SOURCES[source].convert(read_state(src), src.name)
    fan = len(conv.frames) > 1
    if frames:
        if fan and sorted(frames) != list(conv.frames):
            raise FanEdgeError(
                f"this checkpoint's sub-networks are {list(conv.frames)} frames; --frames "
                f"{frames} cannot change them"
            )
        conv = Converted(**{**conv.__dict__, "frames": tuple(sorted(frames)), "notes": []})
    classes = _classes(classes_file, conv.num_classes)
    cfg = preset(
        conv.arch,
        num_classes=conv.num_classes,
        frames=conv.frames,
        input_size=size,
        # the references evaluate with resize 256 -> center crop 224, bilinear
        resize=round(size * REFERENCE_RESIZE),
        interpolation="bilinear",
        specialize_norm=fan,
        weight_alteration=fan,
        backbone={"width": conv.width, "stem": conv.stem},
    )
    model = build_model(cfg)
    mine = model.state_dict()
    missing = [k for k in mine if k not in conv.state and not k.endswith("num_batches_tracked")]
    extra = [k for k in conv.state if k not in mine]
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise FanEdgeError(
            f"{src} does not fill a fan-edge {conv.arch} ({len(missing)} missing, "
            f"{len(extra)} unexpected; {what}): not the architecture it names"
        )
    wrong = [k for k, t in conv.state.items() if t.shape != mine[k].shape]
    if wrong:
        k = wrong[0]
        raise FanEdgeError(
            f"{src}: {k} has shape {tuple(conv.state[k].shape)}, fan-edge's "
            f"{conv.arch} expects {tuple(mine[k].shape)}: not a supported variant"
        )
    with torch.no_grad():
        model.load_state_dict({**mine, **conv.state}, strict=True)
    save_checkpoint(
        out,
        model_config=cfg.to_dict(),
        train_config=TrainConfig(mode="fan" if fan else "standard").to_dict(),
        classes=classes,
        state_dict=model.state_dict(),
        epoch=0,
        metrics=[],
        imported={"from": source, "file": src.name},
    )
    return {
        "checkpoint": str(out),
        "model": conv.arch,
        "frames": list(conv.frames),
        "classes": conv.num_classes,
        "mode": "fan" if fan else "standard",
        "tensors": len(conv.state),
        "notes": conv.notes,
    }


def _classes(path: str | Path | None, count: int) -> list[str]:
    if path is None:
        return [f"class {i}" for i in range(count)]
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FanEdgeError(f"cannot read the class list {path}: {e}") from None
    if len(names) != count:
        raise FanEdgeError(
            f"{path} names {len(names)} classes but the checkpoint's classifier has {count}: "
            "give one name a line, in the classifier's order"
        )
    if len(set(names)) != len(names):
        raise FanEdgeError(f"{path} names a class twice: list each class once")
    return names
