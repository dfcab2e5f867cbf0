"""`fan-edge import`: checkpoints from the wild -> fan-edge checkpoints."""

from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import FramesOpt, command, console


def _sources_help() -> str:
    from fan_edge.imports import SOURCES

    return "; ".join(f"{s.name}: {s.description}" for s in SOURCES.values())


@command("import")
def import_(
    src: Annotated[Path, typer.Argument(help="The checkpoint file (.pth, .pt, .tar).")],
    source: Annotated[str, typer.Option("--from", help="Where it comes from: " + _sources_help())],
    out: Annotated[Path, typer.Option(help="The fan-edge checkpoint to write.")],
    classes: Annotated[
        Path | None, typer.Option(help="Class names, one a line, in the classifier's order.")
    ] = None,
    frames: FramesOpt = None,
    size: Annotated[int, typer.Option(help="Input size (crop).", min=16, max=4096)] = 224,
) -> None:
    """Import a TSM-FFN (the FAN paper's), TSM, MMAction2 TSM or torchvision ResNet checkpoint:
    names mapped by explicit rules, loaded strictly, saved as a fan-edge checkpoint."""
    from fan_edge.imports import import_checkpoint

    r = import_checkpoint(src, source, out, classes_file=classes, frames=frames, size=size)
    console.print(
        f"{src} -> {r['checkpoint']}: {r['mode']} {r['model']}, frames {r['frames']}, "
        f"{r['classes']} classes, {r['tensors']} tensors mapped"
    )
    for note in r["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
