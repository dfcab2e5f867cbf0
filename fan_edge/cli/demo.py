"""`fan-edge demo`: the whole pipeline on built-in synthetic data with the tiny model."""

from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import DEFAULT_BUNDLE, command, console, show_bundle, stages_line
from fan_edge.frames import DEFAULT_FRAMES


@command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo run (replaced).")] = Path(
        "runs/demo"
    ),
    bundle: Annotated[Path, typer.Option(help="Bundle to export (replaced if it is one).")] = (
        DEFAULT_BUNDLE
    ),
    epochs: Annotated[int, typer.Option(help="Training epochs.", min=1, max=1000)] = 6,
) -> None:
    """End to end on built-in synthetic data with the tiny model: train, evaluate, export,
    classify a video."""
    run_demo(out, epochs=epochs, bundle=bundle)


def run_demo(out: Path, *, epochs: int = 6, bundle: Path = DEFAULT_BUNDLE) -> dict:
    """Train, evaluate, export, profile and classify, printing each step's results."""
    from exporters import export
    from fan_edge.bundle import Bundle, owned_files
    from fan_edge.config import RunConfig
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.data.video import write_video
    from fan_edge.fileio import check_new_dir
    from fan_edge.runtime import Predictor
    from fan_edge.runtime.bench import bench
    from fan_edge.train.api import evaluate_checkpoint, train_run

    out = Path(out)
    # the demo replaces its own bundle: refuse anything else now, not after training
    check_new_dir(bundle, overwrite=True, owned=owned_files, kind="bundle")
    console.rule("1/4  train a tiny FAN (4/8/16 frames) on synthetic clips")
    run = RunConfig().replace(
        mode="fan",
        preset="tiny",
        epochs=epochs,
        batch_size=16,
        lr=0.1,
        num_videos=800,
        num_val=200,
        seed=0,
    )
    result = train_run(run, out / "fan", overwrite=True)
    ckpt = Path(result["checkpoint"])
    console.rule("2/4  evaluate at every frame count (nearest sub-network)")
    console.print(
        f"  ({epochs} short epochs on 800 clips: barely trained, near chance; README "
        "shows a full run)"
    )
    report = evaluate_checkpoint(ckpt, [2, 4, 6, 8, 12, 16, 20])
    for n, r in report["results"].items():
        console.print(
            f"  {n:>2} frames -> {r['subnet_frames']:>2}F sub-network: top-1 {r['top1']:5.1f}%"
        )
    console.rule(f"3/4  export the 4/8/16 sub-networks to {bundle} (shared weights)")
    export(ckpt, DEFAULT_FRAMES, bundle, overwrite=True)
    show_bundle(Bundle(bundle))
    console.rule("4/4  profile this device, then classify a video under a whole-clip budget")
    bench(bundle, iters=5, warmup=2, decode_sizes=((64, 48), (160, 96), (426, 240), (854, 480)))
    console.print(
        f"  `fan-edge bench {bundle}` measured inference per sub-network and decode "
        "costs (H.264 clips it made, 48p to 480p)"
    )
    clips = SyntheticActions(num_videos=1, seed=12345)
    video = out / "example.mp4"
    write_video(video, clips.render(0))
    pred = Predictor(bundle).predict(video, budget="50ms", top_k=3, allow_over_budget=True)
    console.print(f"  {video}: true label '{clips.classes[clips.label(0)]}'")
    console.print(f"  decision: {pred.reason} (backend {pred.backend})")
    console.print(f"  measured: {stages_line(pred)}")
    for label, p in zip(pred.labels, pred.probs, strict=True):
        console.print(f"    {p:6.3f}  {label}")
    console.print(
        f"  the same from the shell: fan-edge run {video} --budget 50ms "
        "(decode + preprocess + inference of this clip)"
    )
    return {"checkpoint": ckpt, "eval": report, "bundle": bundle, "prediction": pred}
