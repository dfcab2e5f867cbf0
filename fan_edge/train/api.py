"""Library functions behind `fan-edge train`, `eval` and `flops` (the CLI only formats)."""

from pathlib import Path

from fan_edge.config import ModelConfig, TrainConfig, preset
from fan_edge.data.datasets import open_source
from fan_edge.errors import FanEdgeError

DEFAULT_FRAMES = {"fan": (4, 8, 16), "standard": (16,)}
VAL_SEED_OFFSET = 1000  # synthetic validation clips never overlap the training clips


def train_from_options(
    *,
    out: Path,
    data: str,
    val: str | None,
    mode: str,
    preset: str,
    frames: list[int] | None,
    epochs: int,
    batch_size: int,
    lr: float,
    kd_lambda: float,
    seed: int,
    kd_warmup_epochs: float = 0.0,
    num_videos: int,
    num_val: int,
    specialize_norm: bool = True,
    weight_alteration: bool = True,
    workers: int = 0,
    resume: bool = False,
    max_steps: int | None = None,
    quiet: bool = False,
) -> dict:
    """Resolve data and configs from CLI-style options, then train."""
    from fan_edge.config import preset as make_preset
    from fan_edge.train.trainer import train

    frames = tuple(frames) if frames else DEFAULT_FRAMES.get(mode, (4, 8, 16))
    fan = mode != "standard"
    size = make_preset(preset, num_classes=2).input_size
    train_src = open_source(data, size=size, seed=seed, num_videos=num_videos)
    if val is None and data == "synthetic":
        val = "synthetic"
    val_seed = seed + VAL_SEED_OFFSET
    val_src = open_source(val, size=size, seed=val_seed, num_videos=num_val) if val else None
    if val_src is not None and list(val_src.classes) != list(train_src.classes):
        raise FanEdgeError("validation classes differ from training classes: "
                           "give both sets the same labels")  # fmt: skip
    model_cfg = make_preset(
        preset,
        num_classes=len(train_src.classes),
        frames=frames,
        specialize_norm=fan and specialize_norm,
        weight_alteration=fan and weight_alteration,
    )
    data_spec = {"train": data, "val": val, "val_seed": val_seed, "num_val": num_val}
    train_cfg = TrainConfig(mode=mode, epochs=epochs, batch_size=batch_size, lr=lr,
                            kd_lambda=kd_lambda, kd_warmup_epochs=kd_warmup_epochs, seed=seed,
                            workers=workers,
                            extra={"data": data_spec})  # fmt: skip
    return train(model_cfg, train_cfg, train_src, val_src, out, resume=resume,
                 max_steps=max_steps, quiet=quiet)  # fmt: skip


def evaluate_checkpoint(
    checkpoint: Path, frames: list[int], data: str | None = None, batch_size: int = 32
) -> dict:
    """Evaluate at each count in `frames`; `data` defaults to the run's validation data."""
    from fan_edge.evaluate import evaluate
    from fan_edge.train.checkpoint import load_model

    model, ckpt = load_model(checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    spec = ckpt["train_config"].get("extra", {}).get("data", {})
    data = data or spec.get("val")
    if not data:
        raise FanEdgeError(f"{checkpoint} records no validation data: pass --data")
    source = open_source(data, size=cfg.input_size, seed=spec.get("val_seed", 0),
                         num_videos=spec.get("num_val", 500), classes=ckpt["classes"])  # fmt: skip
    results = evaluate(model, source, frames, cfg, batch_size=batch_size)
    return {
        "checkpoint": str(checkpoint),
        "data": data,
        "trained_frames": list(cfg.frames),
        "mode": ckpt["train_config"]["mode"],
        "results": results,
    }


def model_costs(
    preset_name: str,
    frames: list[int] | None,
    size: int | None,
    classes: int,
    checkpoint: Path | None = None,
) -> dict:
    """Params and GFLOPs per sub-network of a preset (or a checkpoint's model)."""
    from fan_edge.models import build_model
    from fan_edge.models.cost import count_params, subnet_costs

    if checkpoint is not None:
        from fan_edge.train.checkpoint import load_model

        model, ckpt = load_model(checkpoint)
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        title = str(checkpoint)
    else:
        cfg = preset(preset_name, num_classes=classes, frames=tuple(frames or (4, 8, 16)))
        model = build_model(cfg)
        title = f"{cfg.arch} FAN {list(cfg.frames)}"
    size = size or cfg.input_size
    costs = subnet_costs(model, size, list(frames) if frames else None)
    total = count_params(model)
    shared = sum(p.numel() for p in model.shared_parameters())
    one = shared + sum(p.numel() for p in model.private_parameters(0))
    private = total - shared
    return {
        "title": f"{title} at {size}x{size}",
        "subnets": [c.__dict__ for c in costs],
        "total_params": total,
        "private_params": private,
        # "backbone" = one sub-network's worth of parameters (what a plain model would have)
        "private_pct": 100.0 * (total - one) / one,
    }
