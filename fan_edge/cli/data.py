"""`fan-edge synth`: the synthetic set as real video files."""

from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import (
    MAX_SIZE,
    MIN_SIZE,
    command,
    console,
)
from fan_edge.config import MAX_SEED
from fan_edge.errors import FanEdgeError


@command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create: videos/, annotations.csv.")],
    num_videos: Annotated[
        int, typer.Option(help="Number of clips.", min=1, max=999_999)
    ] = 200,  # six-digit file names
    seed: Annotated[
        int, typer.Option(help="Seed (clips are a pure function of it).", min=0, max=MAX_SEED)
    ] = 0,
    size: Annotated[
        int, typer.Option(help="Frame size in pixels.", min=MIN_SIZE, max=MAX_SIZE)
    ] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Write the synthetic temporal-action dataset as real .mp4 files + annotations.csv."""
    from fan_edge.data.export import write_synthetic

    check_free_space(out, synth_bytes(num_videos, size), "--num-videos or --size")
    path = write_synthetic(out, num_videos=num_videos, seed=seed, size=size, overwrite=overwrite)
    console.print(f"wrote {num_videos} videos and {path}")


def synth_bytes(num_videos: int, size: int) -> int:
    """A generous estimate of what `synth` writes: the clips' noise defeats H.264, which
    keeps about 0.1 byte per RGB byte (measured, 16 to 512 px; 0.2 counted here), up to 40
    frames a clip."""
    return num_videos * (40 * size * size * 3 // 5 + 8192)


def check_free_space(out: Path, need: int, lower: str) -> None:
    """Refuse before the work if the file system that will hold `out` has less than `need`."""
    import shutil

    place = out.absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return  # the output check names the problem
    if need > free:
        raise FanEdgeError(
            f"{out} would take about {need / 1e9:.1f} GB but {place} has "
            f"{free / 1e9:.1f} GB free: lower {lower}, or write elsewhere"
        )
