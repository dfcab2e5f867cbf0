"""Library functions behind `fan-edge train`, `eval` and `flops` (the CLI only formats)."""

import dataclasses
from pathlib import Path

from fan_edge.config import VAL_SEED_OFFSET, DataSpec, ModelConfig, RunConfig, preset
from fan_edge.data.datasets import open_source
from fan_edge.errors import FanEdgeError
from fan_edge.frames import validate_frame_set

ST_MODE = "st"  # Separated Training: one `standard` run per frame count, in sub-folders


def st_run_name(frames: int) -> str:
    return f"standard-{frames}"


def train_from_options(
    *,
    out: Path,
    resume: bool | str = False,
    overwrite: bool = False,
    max_steps: int | None = None,
    validate: bool = True,
    quiet: bool = False,
    **options,
) -> dict:
    """`train_run` on the default RunConfig with `options` (flat names, as the CLI's flags:
    mode=, frames=, lr=, data=, ...) changed."""
    return train_run(
        RunConfig().replace(**options),
        out,
        resume=resume,
        overwrite=overwrite,
        max_steps=max_steps,
        validate=validate,
        quiet=quiet,
    )


def train_run(
    cfg: RunConfig,
    out: Path,
    *,
    resume: bool | str = False,
    overwrite: bool = False,
    max_steps: int | None = None,
    validate: bool = True,
    quiet: bool = False,
) -> dict:
    """Resolve the run's data and model, then train into `out`.

    Mode `st` trains one `standard` model per frame count into `out/standard-N/`.
    `resume`: False (a new run), True (continue the run in `out`), "auto" (continue it if
    there is one); `overwrite` replaces a run in `out` (see trainer.train).
    `validate=False` skips the per-epoch validation (the data is still recorded for `eval`).
    """
    from fan_edge.train.modes import MODES
    from fan_edge.train.trainer import train

    mode, data = cfg.train.mode, cfg.data
    chosen = preset(cfg.model.preset, num_classes=2)  # its input size and frame set
    if mode == ST_MODE:
        counts = validate_frame_set(cfg.model.frames or chosen.frames)
        folders = {n: Path(out) / st_run_name(n) for n in counts}
        if resume is True and not any((f / "checkpoint.pt").exists() for f in folders.values()):
            raise FanEdgeError(
                f"nothing to resume in {out} (no standard-N/checkpoint.pt): "
                "drop --resume to start a new run there"
            )
        runs = {}
        for n in counts:  # --resume: the counts not started yet start now
            runs[n] = train_run(
                cfg.replace(mode="standard", frames=(n,)),
                folders[n],
                resume="auto" if resume else False,
                overwrite=overwrite,
                max_steps=max_steps,
                validate=validate,
                quiet=quiet,
            )
        return {"runs": {str(n): r for n, r in runs.items()}}
    if mode not in MODES:
        raise FanEdgeError(f"unknown mode {mode!r}: choose one of {', '.join([*MODES, ST_MODE])}")
    frames = cfg.model.frames or MODES[mode].default_frames(chosen.frames)
    plain = MODES[mode].plain
    size = chosen.input_size
    seed = cfg.train.seed
    train_src = open_source(data.data, size=size, seed=seed, num_videos=data.num_videos)
    val = data.val if data.val is not None or not data.builtin else data.data
    val_seed = seed + VAL_SEED_OFFSET
    val_src = open_source(val, size=size, seed=val_seed, num_videos=data.num_val) if val else None
    if val_src is not None and list(val_src.classes) != list(train_src.classes):
        raise FanEdgeError(
            "validation classes differ from training classes: give both sets the same labels"
        )
    model_cfg = preset(
        cfg.model.preset,
        num_classes=len(train_src.classes),
        frames=frames,
        specialize_norm=not plain and cfg.model.specialize_norm,
        weight_alteration=not plain and cfg.model.weight_alteration,
        alteration_init=cfg.model.alteration_init,
    )
    # What the run was trained on, so that `eval` finds its validation data and `--resume`
    # with other data is refused.
    spec = DataSpec(
        train=data.data,
        val=val,
        val_seed=val_seed,
        num_val=data.num_val,
        num_videos=len(train_src),
        classes=tuple(train_src.classes),
        train_sha256=_list_digest(data.data),
        val_sha256=_list_digest(val) if val else None,
    )
    return train(
        model_cfg,
        cfg.train,
        train_src,
        val_src if validate else None,
        out,
        data=spec,
        resume=resume,
        overwrite=overwrite,
        max_steps=max_steps,
        quiet=quiet,
    )


def _list_digest(spec: str) -> str | None:
    """sha256 of a CSV or frame list (None for built-in data: its options define it)."""
    if spec.startswith("synthetic"):
        return None
    from fan_edge.bundle import sha256_file

    return sha256_file(spec)


def checkpoint_paths(paths: Path | list[Path]) -> list[Path]:
    """Expand an `--mode st` folder (or a run folder) into its checkpoint files."""
    out = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("checkpoint.pt")) or sorted(p.glob("*/checkpoint.pt"))
            if not found:
                raise FanEdgeError(
                    f"no checkpoint.pt in {p} or its sub-folders: pass checkpoint files"
                )
            out += found
        else:
            out.append(p)
    return out


def validation_source(path: Path, ckpt: dict, data: str | None = None) -> tuple[str, object]:
    """`data` (default: the run's own validation data) opened for the checkpoint's model."""
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    spec = DataSpec.of(ckpt) or DataSpec(train="unknown")
    data = data or spec.val
    if not data:
        raise FanEdgeError(f"{path} records no validation data: pass --data")
    source = open_source(
        data,
        size=cfg.input_size,
        seed=spec.val_seed,
        num_videos=spec.num_val,
        classes=ckpt["classes"],
    )
    return data, source


def evaluate_checkpoint(
    checkpoints: Path | list[Path],
    frames: list[int],
    data: str | None = None,
    batch_size: int = 32,
    *,
    ensemble: bool = False,
) -> dict:
    """Evaluate at each count in `frames`; `data` defaults to the run's validation data.

    Several checkpoints (Separated Training) answer each count with the model trained
    nearest to it, or all together with `ensemble=True`.
    """
    from fan_edge.evaluate import evaluate
    from fan_edge.train.checkpoint import load_model

    paths = checkpoint_paths(checkpoints)
    loaded = [load_model(p) for p in paths]
    models = [m for m, _ in loaded]
    ckpt = loaded[0][1]
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    for path, (_, other) in zip(paths[1:], loaded[1:], strict=True):
        o = ModelConfig.from_dict(other["model_config"])
        if other["classes"] != ckpt["classes"] or (o.input_size, o.mean, o.std) != (
            cfg.input_size,
            cfg.mean,
            cfg.std,
        ):
            raise FanEdgeError(
                f"{path} has other classes or input preprocessing than "
                f"{paths[0]}: evaluate models of one task together"
            )
    data, source = validation_source(paths[0], ckpt, data)
    results = evaluate(models, source, frames, cfg, batch_size=batch_size, ensemble=ensemble)
    return {
        "checkpoint": str(paths[0]),
        "checkpoints": [str(p) for p in paths],
        "data": data,
        "trained_frames": sorted({f for m in models for f in m.frames}),
        "mode": "ensemble"
        if ensemble
        else "+".join(sorted({c["train_config"]["mode"] for _, c in loaded})),
        "results": results,
    }


def model_costs(
    preset_name: str,
    frames: list[int] | None,
    size: int | None,
    classes: int,
    checkpoint: Path | None = None,
) -> dict:
    """Params and GFLOPs per sub-network of a preset (or a checkpoint's model). A preset is
    built on PyTorch's meta device: shapes only, so any size costs no memory or time."""
    import torch

    from fan_edge.models import build_model
    from fan_edge.models.cost import count_params, subnet_costs

    if checkpoint is not None:
        from fan_edge.train.checkpoint import load_model

        model, ckpt = load_model(checkpoint)
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        title = str(checkpoint)
    else:
        chosen = {"frames": tuple(frames)} if frames else {}  # default: the preset's frame set
        cfg = preset(preset_name, num_classes=classes, **chosen)
        with torch.device("meta"):
            model = build_model(cfg)
        title = f"{cfg.arch} FAN {list(cfg.frames)}"
    size = size or cfg.input_size
    costs = subnet_costs(model, size, list(frames) if frames else None)
    total = count_params(model)
    private = total - sum(p.numel() for p in model.shared_parameters())
    # the same network as one plain model: one frame count, no private layers
    with torch.device("meta"):
        plain = count_params(
            build_model(
                dataclasses.replace(
                    cfg, frames=cfg.frames[-1:], specialize_norm=False, weight_alteration=False
                )
            )
        )
    papers = {}
    if checkpoint is None:
        from fan_edge.models.registry import PUBLISHED

        papers = {(p.frames, p.size): p for p in PUBLISHED.get(preset_name, [])}
    subnets = []
    for c in costs:
        paper = papers.get((c.frames, size))
        subnets.append(
            c.__dict__ | ({"paper_gflops": paper.gflops, "paper": paper.source} if paper else {})
        )
    return {
        "title": f"{title} at {size}x{size}",
        "subnets": subnets,
        "total_params": total,
        "private_params": private,  # every sub-network's private copies together
        "extra_params": total - plain,  # what FAN adds to one plain model
        "extra_pct": 100.0 * (total - plain) / plain,
    }
