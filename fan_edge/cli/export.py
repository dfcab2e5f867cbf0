"""`fan-edge export` (checkpoint -> bundle, needs torch) and `fan-edge build` (bundle ->
target, torch-free, on the device)."""

from pathlib import Path
from typing import Annotated

import typer

from exporters import targets_help
from fan_edge.cli.app import (
    FramesOpt,
    command,
    console,
    show_bundle,
)

CalibOpt = Annotated[
    str | None,
    typer.Option(
        help="ort-int8: calibration videos (a folder, a file listing them, or synthetic)."
    ),
]
CalibClipsOpt = Annotated[
    int | None, typer.Option(min=1, help="ort-int8: calibration clips per sub-network [32].")
]
CalibMethodOpt = Annotated[
    str | None, typer.Option(help="ort-int8: minmax (default), entropy or percentile.")
]
PrivateOpt = Annotated[
    bool,
    typer.Option(help="ort-int8: fold norms and alterations into private int8 weights."),
]
ValOpt = Annotated[
    str | None,
    typer.Option(
        help="ort-int8, fp16: labelled clips to measure top-1 against fp32 on (synthetic, a "
        ".csv of videos, a frame list); default the training run's validation data."
    ),
]
ValClipsOpt = Annotated[
    int | None, typer.Option(min=1, help="ort-int8, fp16: at most this many validation clips.")
]
Int8Opt = Annotated[bool, typer.Option(help="trt: int8 engines (needs --calib).")]


@command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from `fan-edge train`.")],
    frames: FramesOpt = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default models/<run>).")] = None,
    fold: Annotated[bool, typer.Option(help="Standalone graphs, norms folded (no sharing).")] = (
        False
    ),
    engine: Annotated[
        str | None,
        typer.Option(help=f"Also build for a target, as `fan-edge build` does: {targets_help()}."),
    ] = None,
    fp16: Annotated[bool, typer.Option(help="trt: fp16 engines.")] = False,
    strip: Annotated[bool, typer.Option(help="trt: weight-stripped plans.")] = False,
    calib: CalibOpt = None,
    calib_clips: CalibClipsOpt = None,
    calib_method: CalibMethodOpt = None,
    private: PrivateOpt = False,
    val: ValOpt = None,
    val_clips: ValClipsOpt = None,
    int8: Int8Opt = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
) -> None:
    """Split a FAN checkpoint into per-frame-count ONNX graphs sharing one weights file."""
    from exporters import export as export_bundle
    from fan_edge.bundle import Bundle

    target_options = _target_options(locals())
    out = out or Path("models") / checkpoint.resolve().parent.name
    path = export_bundle(
        checkpoint,
        frames,
        out,
        engine=engine,
        fold=fold,
        overwrite=overwrite,
        **target_options,
    )
    show_bundle(Bundle(path))


@command("build")
def build_(
    bundle: Annotated[Path, typer.Argument(help="A bundle from `fan-edge export`.")],
    target: Annotated[str, typer.Option(help=f"What to build: {targets_help()}.")],
    fp16: Annotated[
        bool, typer.Option(help="trt: fp16 engines; triton-repo: TensorRT accelerator in fp16.")
    ] = False,
    strip: Annotated[bool, typer.Option(help="trt: weight-stripped plans.")] = False,
    calib: CalibOpt = None,
    calib_clips: CalibClipsOpt = None,
    calib_method: CalibMethodOpt = None,
    private: PrivateOpt = False,
    val: ValOpt = None,
    val_clips: ValClipsOpt = None,
    int8: Int8Opt = False,
    repo: Annotated[
        Path | None,
        typer.Option("--repo", "--out", help="triton-repo: the model repository to write."),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(help="triton-repo: largest batch Triton's dynamic batcher forms [16].", min=1),
    ] = None,
) -> None:
    """Build a bundle's graphs for a target on this device (no PyTorch needed) and record
    the artifacts in its manifest, where `fan-edge run --backend trt` finds them
    (triton-repo: write a Triton model repository to --repo instead)."""
    from exporters import TARGETS, build
    from fan_edge.bundle import Bundle

    made = build(bundle, target, **_target_options(locals()))
    if target in TARGETS and TARGETS[target].external:
        console.print(f"wrote {made}: `tritonserver --model-repository {made}`")
        return
    show_bundle(Bundle(made))


def _target_options(given: dict) -> dict:
    """The target options among a command's arguments (the registry's list of them)."""
    from exporters.registry import OPTIONS

    return {k: v for k, v in given.items() if k in OPTIONS}
