"""`fan-edge demo`: the whole pipeline on built-in synthetic data with the tiny model."""

from pathlib import Path

from rich.console import Console


def run_demo(out: Path, *, epochs: int = 4, console: Console | None = None) -> dict:
    from fan_edge.train.api import evaluate_checkpoint, train_from_options

    console = console or Console()
    out = Path(out)
    console.rule("1/2  train a tiny FAN (4/8/16 frames) on synthetic clips")
    result = train_from_options(
        out=out / "fan", data="synthetic", val=None, mode="fan", preset="tiny", frames=None,
        epochs=epochs, batch_size=16, lr=0.05, kd_lambda=1.0, seed=0, num_videos=600,
        num_val=200, resume=False,
    )  # fmt: skip
    ckpt = Path(result["checkpoint"])
    console.rule("2/2  evaluate at every frame count (nearest sub-network)")
    report = evaluate_checkpoint(ckpt, [2, 4, 6, 8, 12, 16, 20])
    for n, r in report["results"].items():
        console.print(f"  {n:>2} frames -> {r['subnet_frames']:>2}F sub-network: "
                      f"top-1 {r['top1']:5.1f}%")  # fmt: skip
    return {"checkpoint": ckpt, "eval": report}
