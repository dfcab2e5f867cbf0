"""`fan-edge analyze ...`: looking inside trained models."""

from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import (
    FramesOpt,
    app,
    command,
    console,
    table,
)
from fan_edge.config import MAX_CLIPS
from fan_edge.fileio import check_output_path

analyze_app = typer.Typer(no_args_is_help=True, help="Look inside trained models.")
app.add_typer(analyze_app, name="analyze")


@command("bn-shift", group=analyze_app)
def bn_shift(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="A FAN checkpoint (its sub-networks are compared), or two checkpoints."
        ),
    ],
    live: Annotated[
        bool,
        typer.Option(
            help="Measure the statistics on data at each of "
            "--frames instead of reading stored ones."
        ),
    ] = False,
    frames: FramesOpt = None,
    clips: Annotated[
        int, typer.Option(help="--live: clips per frame count.", min=1, max=MAX_CLIPS)
    ] = 64,
    data: Annotated[
        str | None, typer.Option(help="--live: default the run's validation data.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for bn_shift.json and bn_shift.png.")] = Path(
        "runs/analysis"
    ),
) -> None:
    """Distance between normalization statistics per layer (the paper's Figure 3)."""
    from fan_edge.analysis.bn_shift import bn_shift_report, plot_bn_shift
    from fan_edge.fileio import write_json

    check_output_path(out, "--out folder", folder=True, inputs=checkpoints)  # before the work
    for name in ("bn_shift.json", "bn_shift.png"):
        check_output_path(out / name, "--out file", inputs=checkpoints)
    report = bn_shift_report(checkpoints, live=live, frames=frames, clips=clips, data=data)
    comps = report["comparisons"]
    names = [r["layer"] for r in comps[0]["layers"]]
    cols = ["layer", "channels"] + [f"{c['a']} vs {c['b']}" for c in comps]
    rows = [
        [name, comps[0]["layers"][i]["channels"]]
        + [f"{c['layers'][i]['sym_kl']:.4f}" for c in comps]
        for i, name in enumerate(names)
    ]
    rows.append(["mean", ""] + [f"{c['summary']['mean_sym_kl']:.4f}" for c in comps])
    console.print(table("symmetric KL between normalization statistics, per layer", cols, rows))
    write_json(out / "bn_shift.json", report)
    try:
        plot_bn_shift(report, out / "bn_shift.png")
    except ImportError:
        console.print("plot skipped: matplotlib is missing (pip install 'fan-edge[plot]')")
    else:
        console.print(f"wrote {out / 'bn_shift.json'} and {out / 'bn_shift.png'}")
