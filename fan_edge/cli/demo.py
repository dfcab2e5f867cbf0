"""`fan-edge demo`: a trained model first, then the whole pipeline on built-in synthetic data
with the tiny model."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from fan_edge.cli.app import DEFAULT_BUNDLE, command, console, show_bundle, stages_line
from fan_edge.frames import DEFAULT_FRAMES

# The trained bundle shipped with the repository (models/tiny-synthetic/README.md: how it was
# trained, its accuracy per frame count on 500 validation clips).
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "tiny-synthetic" / "bundle"
SHIPPED_CARD = {4: 76.4, 8: 89.2, 16: 90.4}  # top-1 % from the model card
FRESH_SEED = 31337  # generated clips no run trained (seed 0...), validated (1000+) or calibrated on
FRESH_CLIPS = 300
SHEET_CLIPS = 6


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
    """A trained model on fresh clips, then end to end on built-in synthetic data with the
    tiny model: train, evaluate, export, classify a video."""
    console.rule("0/4  the shipped trained model on clips it has never seen")
    shipped_model(SHIPPED, out)
    run_demo(out, epochs=epochs, bundle=bundle)


def classify_fresh(bundle: Path, clips: int = FRESH_CLIPS, seed: int = FRESH_SEED) -> dict:
    """Top-1 (%) of each sub-network on `clips` newly generated synthetic clips, read as
    `fan-edge run` reads them (segment centres, the bundle's preprocessing); and the first
    clips' sampled frames with the 8-frame answer, for the contact sheet."""
    from fan_edge.data.sampling import segment_indices
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.runtime import Predictor

    pred = Predictor(bundle)
    data = SyntheticActions(num_videos=clips, seed=seed, size=pred.bundle.input["size"])
    if list(data.classes) != list(pred.bundle.classes):
        raise ValueError(f"{bundle} was not trained on the synthetic actions")
    correct = {s.frames: 0 for s in pred.bundle.subnetworks}
    sheet = []
    for i in range(clips):
        video, label = data.render(i), data.label(i)
        for s in pred.bundle.subnetworks:
            frames = video[segment_indices(len(video), s.frames)]
            z = pred.logits(pred.preprocess(frames), s)[0]
            correct[s.frames] += int(z.argmax() == label)
            if s.frames == 8 and i < SHEET_CLIPS:
                p = np.exp(z - z.max())
                p /= p.sum()
                top = int(p.argmax())
                sheet.append((frames, data.classes[top], float(p[top]), data.classes[label]))
    return {"top1": {n: 100.0 * c / clips for n, c in correct.items()}, "sheet": sheet}


def contact_sheet(path: Path, rows: list, scale: int = 3) -> Path:
    """One row per clip: its sampled frames, then the answer, its probability and the truth
    (green when right, red when wrong). Written atomically as a PNG."""
    import cv2

    from fan_edge.fileio import atomic_path

    tiles = []
    for frames, guess, prob, truth in rows:
        strip = np.concatenate(list(frames), axis=1)
        strip = cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        bar = np.full((28, strip.shape[1], 3), 255, np.uint8)
        color = (0, 140, 0) if guess == truth else (200, 0, 0)
        text = f"{guess} {prob:.2f} (true: {truth})"
        cv2.putText(bar, text, (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, 1, cv2.LINE_AA)
        tiles.append(np.concatenate([bar, strip], axis=0))
    width = max(t.shape[1] for t in tiles)
    tiles = [
        np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles
    ]
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(tiles), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the contact sheet")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return path


def shipped_model(bundle: Path, out: Path) -> dict:
    """Classify fresh clips with the shipped bundle; print accuracy beside the model card's;
    write the contact sheet."""
    result = classify_fresh(bundle)
    console.print(
        f"  {bundle} (a tiny FAN trained on the synthetic actions), {FRESH_CLIPS} newly "
        "generated clips, top-1 per sub-network (the model card's, on 500 validation clips):"
    )
    for n, top1 in result["top1"].items():
        console.print(f"    {n:>2} frames: {top1:5.1f}%  (card: {SHIPPED_CARD.get(n, '?')}%)")
    out.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(out / "shipped_model.png", result["sheet"])
    console.print(f"  the 8-frame sub-network on {len(result['sheet'])} of them: {sheet}")
    return {**result, "sheet": sheet}


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
