"""`fan-edge train`, `eval` and `flops`: training runs and what they cost."""

from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import (
    MAX_BATCH,
    MAX_SIZE,
    MIN_SIZE,
    FramesOpt,
    ModeOpt,
    PresetOpt,
    command,
    console,
    table,
)
from fan_edge.config import (
    KD_AFTER,
    KD_SWITCH,
    MAX_CLASSES,
    MAX_CLIPS,
    MAX_SEED,
    MAX_WORKERS,
    OPTION_SECTION,
    RunConfig,
)
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import check_output_path

DEFAULT = RunConfig()  # every training option's default, in one place
M, T, D = DEFAULT.model, DEFAULT.train, DEFAULT.data


@command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint.pt, metrics.json.")] = Path(
        "runs/train"
    ),
    data: Annotated[
        str,
        typer.Option(
            help="'synthetic', 'synthetic-poses' (a spatial pretraining task), a videos .csv, or a "
            "frame list."
        ),
    ] = D.data,
    val: Annotated[str | None, typer.Option(help="Validation data (same forms).")] = D.val,
    mode: ModeOpt = T.mode,
    preset: PresetOpt = M.preset,
    frames: FramesOpt = None,
    epochs: Annotated[int, typer.Option(help="Epochs.", min=1, max=100_000)] = T.epochs,
    batch_size: Annotated[
        int, typer.Option(help="Clips per step (per process).", min=1, max=MAX_BATCH)
    ] = T.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate (SGD, cosine).")] = T.lr,
    kd_lambda: Annotated[float, typer.Option("--lambda", help="Mutual Distillation weight.")] = (
        T.kd_lambda
    ),
    kd_gate: Annotated[
        float,
        typer.Option(
            help="Students learn from the labels until the teacher's running training top-1 is "
            "this far from chance to 100%, then distil (0: from the first step, the paper's "
            "recipe).",
            min=0.0,
            max=1.0,
        ),
    ] = T.kd_gate,
    kd_after: Annotated[
        float | None,
        typer.Option(
            help="Students also learn from the labels for this fraction of the run, then "
            f"switch to distillation over the next {KD_SWITCH:g} of it (default: {KD_AFTER:g} "
            "from scratch, 0 with --init; 0: no delay; with --kd-gate 0, the paper's recipe).",
            min=0.0,
            max=1 - KD_SWITCH,
        ),
    ] = T.kd_after,
    kd_warmup_epochs: Annotated[
        float,
        typer.Option(
            "--kd-warmup",
            help="Also ramp students from cross-entropy to distillation over E epochs.",
        ),
    ] = T.kd_warmup_epochs,
    distill: Annotated[
        bool,
        typer.Option(
            help="fan: Mutual Distillation; --no-distill: cross-entropy on every sub-network."
        ),
    ] = (T.distill),
    rho: Annotated[
        float,
        typer.Option(help="mixed / proportional: probability of the mixed / high-count clip."),
    ] = T.rho,
    seed: Annotated[
        int, typer.Option(help="Seed for weights, sampling, synthetic data.", min=0, max=MAX_SEED)
    ] = T.seed,
    num_videos: Annotated[
        int, typer.Option(help="Synthetic training videos.", min=1, max=MAX_CLIPS)
    ] = D.num_videos,
    num_val: Annotated[
        int, typer.Option(help="Synthetic validation videos.", min=1, max=MAX_CLIPS)
    ] = D.num_val,
    specialize_norm: Annotated[bool, typer.Option(help="Private norms per sub-network.")] = (
        M.specialize_norm
    ),
    weight_alteration: Annotated[bool, typer.Option(help="Weight Alteration.")] = (
        M.weight_alteration
    ),
    alteration_init: Annotated[
        str,
        typer.Option(
            help="Weight Alteration's init: small (N(0, 1e-3): every sub-network starts as the "
            "shared one) or kaiming (the reference code's effective init, std sqrt(2/C))."
        ),
    ] = M.alteration_init,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from this checkpoint's weights (e.g. a pretrained standard model)."
        ),
    ] = T.init,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.", min=0, max=MAX_WORKERS)
    ] = T.workers,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in --out exactly where it stopped (same options and data)."
        ),
    ] = (False),
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in --out (its checkpoint.pt and metrics.json).")
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after N steps (smoke runs).", min=1)
    ] = None,
) -> None:
    """Train one FAN checkpoint (or a baseline: standard, st, mixed, proportional)."""
    from fan_edge.train.api import train_run

    # Every parameter named like a RunConfig field is that option: a new option is a field
    # (fan_edge/config.py) and its flag here, nothing else.
    options = {k: v for k, v in locals().items() if k in OPTION_SECTION}
    result = train_run(
        DEFAULT.replace(**options), out, resume=resume, overwrite=overwrite, max_steps=max_steps
    )
    runs = [r for r in result.get("runs", {"": result}).values() if r["epochs"]]
    for r in runs:
        console.print(f"checkpoint: {r['checkpoint']}")
    for r in result.get("runs", {"": result}).values():
        if r.get("stopped"):
            s = r["stopped"]
            where = (
                f"stopped at step {s['step']} of {s['of']} in epoch {s['epoch']}: "
                f"{r['checkpoint']} holds it; continue with --resume"
            )
            if s["signal"]:
                raise FanEdgeError(f"{s['signal']}: {where}")
            console.print(where)
    if runs:  # what the model(s) cost to train, to compare FAN with ST at equal compute
        minutes = sum(e["seconds"] for r in runs for e in r["epochs"]) / 60
        frames = sum(e.get("frames_seen", 0) for r in runs for e in r["epochs"]) / 1e6
        console.print(
            f"training cost: {minutes:.1f} min, {frames:.2f}M frames through the "
            "network" + (" (all runs together)" if len(runs) > 1 else "")
        )


@command("eval")
def eval_(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="Checkpoints from `fan-edge train`, or an `--mode st` folder."),
    ],
    frames: FramesOpt = None,
    ensemble: Annotated[
        bool,
        typer.Option(
            help="Average every model's softmax at each count "
            "(default: the nearest trained count serves)."
        ),
    ] = (False),
    data: Annotated[str | None, typer.Option(help="Default: the run's validation data.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Clips per batch.", min=1, max=MAX_BATCH)] = 32,
) -> None:
    """Top-1/top-5 per frame count, each served by the nearest sub-network (or model)."""
    from fan_edge.train.api import evaluate_checkpoint

    if json_out:
        check_output_path(json_out, "--json file", inputs=checkpoints)  # before the work
    report = evaluate_checkpoint(
        checkpoints, frames or [2, 4, 6, 8, 12, 16, 20], data, batch_size, ensemble=ensemble
    )
    rows = [
        [n, r["subnet_frames"], r["top1"], r["top5"], r["num_clips"]]
        for n, r in report["results"].items()
    ]
    cols = ["frames", "served by", "top-1 %", "top-5 %", "clips"]
    title = " + ".join(map(str, report["checkpoints"]))
    console.print(table(f"{title} on {report['data']}", cols, rows))
    if json_out:
        from fan_edge.fileio import write_json

        write_json(json_out, report)
        console.print(f"wrote {json_out}")


@command()
def flops(
    preset: PresetOpt = "r50",
    frames: FramesOpt = None,
    size: Annotated[
        int | None,
        typer.Option(help="Input size (default: the preset's).", min=MIN_SIZE, max=MAX_SIZE),
    ] = None,
    classes: Annotated[
        int, typer.Option(help="Number of classes (Sth-Sth V1: 174).", min=2, max=MAX_CLASSES)
    ] = 174,
    checkpoint: Annotated[Path | None, typer.Option(help="Use this checkpoint's model.")] = None,
) -> None:
    """Parameters and GFLOPs (multiply-adds) of each sub-network, as the paper counts them."""
    from fan_edge.train.api import model_costs

    report = model_costs(preset, frames, size, classes, checkpoint)
    subnets = report["subnets"]
    rows = [[c["frames"], f"{c['gflops']:.3f}", f"{c['params'] / 1e6:.3f}M"] for c in subnets]
    cols = ["frames", "GFLOPs", "params"]
    if any("paper" in c for c in subnets):  # what the backbone's papers publish, where known
        cols += ["paper GFLOPs", "source"]
        rows = [
            r + ([f"{c['paper_gflops']:g}", c["paper"]] if "paper" in c else ["", ""])
            for r, c in zip(rows, subnets, strict=True)
        ]
    console.print(table(report["title"], cols, rows))
    console.print(
        f"FAN total params {report['total_params'] / 1e6:.3f}M; private to sub-networks "
        f"{report['private_params'] / 1e3:.1f}K in all; FAN adds "
        f"{report['extra_params'] / 1e3:.1f}K to a plain model ({report['extra_pct']:.2f}%)"
    )
